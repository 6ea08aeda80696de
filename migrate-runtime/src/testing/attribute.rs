//! What `#[migrate_macros::test]` expands to: a test's database from the persistent server,
//! turned into the argument the test asked for, and kept when the test fails.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// `MIGRATE_TEST_KEEP_FAILED=0` (or `false`, `no`) drops a failed test's database too.
pub(crate) const KEEP_VARIABLE: &str = "MIGRATE_TEST_KEEP_FAILED";

/// Whether a failed test's database is kept (the default).
pub(crate) fn keep_failed() -> bool {
    !matches!(
        std::env::var(KEEP_VARIABLE)
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
            .as_str(),
        "0" | "false" | "no" | "never"
    )
}

/// Tells the developer where the failed test's database is: on stderr, which the test harness
/// shows with the failure.
#[allow(clippy::print_stderr)]
pub(crate) fn announce_kept(url: &str) {
    eprintln!(
        "migrate-runtime: the failed test's database is kept: {url}\n  \
         help: look inside with `psql {url}`; drop it with `DROP DATABASE`, \
         or set {KEEP_VARIABLE}=0 to drop failed tests' databases too"
    );
}

/// Items the attribute's expansion names; not a stable interface.
#[doc(hidden)]
pub mod __private {
    use super::*;
    use crate::testing::TestDatabase;
    use crate::{Migration, Migrator};

    /// The argument a test asked for, the database behind it (unless the argument is the
    /// database itself), and the flag that keeps it when the test returns an error.
    pub struct Parts<T> {
        pub value: T,
        pub database: Option<TestDatabase<'static>>,
        pub failure: FailureFlag,
    }

    /// Set when the test returned an error.
    pub struct FailureFlag(Arc<AtomicBool>);

    impl FailureFlag {
        pub fn record<R: Outcome>(&self, outcome: &R) {
            if outcome.failed() {
                self.0.store(true, Ordering::Relaxed);
            }
        }
    }

    /// A test function's return value: `()` or a `Result`.
    pub trait Outcome {
        fn failed(&self) -> bool;
    }

    impl Outcome for () {
        fn failed(&self) -> bool {
            false
        }
    }

    impl<T, E> Outcome for Result<T, E> {
        fn failed(&self) -> bool {
            self.is_err()
        }
    }

    /// The argument types a `#[migrate_macros::test]` function may take.
    #[diagnostic::on_unimplemented(
        message = "`#[migrate_macros::test]` cannot give a test a `{Self}`",
        label = "not a test database argument",
        note = "the argument may be `&mut postgres::Client`, `postgres::Client`, `migrate_runtime::testing::TestDatabase` or `String` (its URL)"
    )]
    pub trait TestArgument: Sized {
        fn from_database(database: TestDatabase<'static>) -> (Self, Option<TestDatabase<'static>>);
    }

    impl TestArgument for TestDatabase<'static> {
        fn from_database(database: TestDatabase<'static>) -> (Self, Option<TestDatabase<'static>>) {
            (database, None)
        }
    }

    impl TestArgument for String {
        fn from_database(database: TestDatabase<'static>) -> (Self, Option<TestDatabase<'static>>) {
            (database.url(), Some(database))
        }
    }

    impl TestArgument for postgres::Client {
        fn from_database(database: TestDatabase<'static>) -> (Self, Option<TestDatabase<'static>>) {
            match database.client() {
                Ok(client) => (client, Some(database)),
                Err(error) => panic!(
                    "cannot connect to the test database {}: {error}",
                    database.url_without_password()
                ),
            }
        }
    }

    /// The test's database and argument; panics (failing the test) with the reason when there
    /// is none.
    pub fn prepare<T: TestArgument>(set: &str, migrations: &'static [Migration]) -> Parts<T> {
        let database = match crate::testing::migrated_database(set, &Migrator::new(migrations)) {
            Ok(database) => database,
            Err(error) => panic!("cannot hand out a migrated test database: {error}"),
        };
        let failure = FailureFlag(database.failure_flag());
        let (value, database) = T::from_database(database);
        Parts {
            value,
            database,
            failure,
        }
    }
}
