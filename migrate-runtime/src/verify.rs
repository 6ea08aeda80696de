//! Release checks on a throwaway server: `verify` (every migration's UP, DOWN, the schema as
//! before, UP again) and `drift` (a live database against what its applied migrations produce).

use std::collections::BTreeSet;
use std::fmt;

use postgres::Client;

use crate::testing::{TestDatabase, TestServer};
use crate::{Error, Migration, Migrator, SchemaDiff};

/// What [`Migrator::verify`] found for one migration.
///
/// ```
/// use migrate_runtime::verify::Verdict;
///
/// // An up/down pair set: `2_index-accounts.up.sql` and `10_seed_accounts.up.sql` have no DOWN.
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/valid/updown");
/// let server = migrate_runtime::testing::TestServer::shared();
/// let report = migrate_runtime::Migrator::new(MIGRATIONS).verify(server, false)?;
/// for checked in &report.migrations {
///     match &checked.verdict {
///         Verdict::Reversible => println!("{}: reversible", checked.path),
///         Verdict::Irreversible => println!("{}: no DOWN section", checked.path),
///         problem => eprintln!("{}: {problem:?}", checked.path),
///     }
/// }
/// assert!(matches!(report.migrations[0].verdict, Verdict::Reversible));
/// assert!(matches!(report.migrations[1].verdict, Verdict::Irreversible));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Verdict {
    /// UP, DOWN and UP again ran, and DOWN gave back exactly the schema from before UP.
    Reversible,
    /// No DOWN section, so there was nothing to check.
    Irreversible,
    /// Its UP failed; nothing after it was checked.
    UpFailed(Error),
    /// Its DOWN failed.
    DownFailed(Error),
    /// DOWN ran but left the schema different from before UP (before → after DOWN).
    DownDoesNotRestore(SchemaDiff),
    /// DOWN gave back the same objects, but some table's columns in another order (a column
    /// dropped and added again lands at the end). It matters to `SELECT *`, `INSERT` without
    /// a column list and `COPY`; [`VerifyReport::allow_column_order`] accepts it.
    DownReordersColumns(SchemaDiff),
    /// DOWN restored the schema, but UP failed when run again.
    UpAgainFailed(Error),
}

/// One migration's [`Verdict`].
///
/// ```
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/valid/updown");
/// let server = migrate_runtime::testing::TestServer::shared();
/// let report = migrate_runtime::Migrator::new(MIGRATIONS).verify(server, false)?;
/// let first = &report.migrations[0];
/// assert_eq!((first.version, first.name.as_str()), (1, "create_accounts"));
/// assert!(first.path.ends_with("1_create_accounts.up.sql"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Verified {
    /// The migration's version.
    pub version: i64,
    /// Its name.
    pub name: String,
    /// Its file.
    pub path: String,
    /// What the check found.
    pub verdict: Verdict,
}

/// The result of [`Migrator::verify`], in version order; `Display` is the human report.
///
/// ```
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// let server = migrate_runtime::testing::TestServer::shared();
/// let report = migrate_runtime::Migrator::new(MIGRATIONS).verify(server, false)?;
/// if !report.passed(false) {
///     panic!("{report}");
/// }
/// assert_eq!(report.migrations.len(), 10); // the production-only 11th is not selected
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Every migration checked, in order.
    pub migrations: Vec<Verified>,
    /// Whether [`Verdict::DownReordersColumns`] passes (`verify --allow-column-order`).
    pub allow_column_order: bool,
}

impl VerifyReport {
    /// Whether every checked migration is reversible (irreversible ones count as failures
    /// only with `deny_irreversible`).
    ///
    /// ```
    /// // `2_index-accounts.up.sql` and `10_seed_accounts.up.sql` have no DOWN section.
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/valid/updown");
    /// let server = migrate_runtime::testing::TestServer::shared();
    /// let report = migrate_runtime::Migrator::new(MIGRATIONS).verify(server, false)?;
    /// assert!(report.passed(false), "{report}");
    /// assert!(!report.passed(true)); // irreversible migrations denied
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn passed(&self, deny_irreversible: bool) -> bool {
        self.migrations
            .iter()
            .all(|m| self.passes(&m.verdict, deny_irreversible))
    }

    fn passes(&self, verdict: &Verdict, deny_irreversible: bool) -> bool {
        match verdict {
            Verdict::Reversible => true,
            Verdict::Irreversible => !deny_irreversible,
            Verdict::DownReordersColumns(_) => self.allow_column_order,
            _ => false,
        }
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for m in &self.migrations {
            let head = format!("{:>6} {:<40}", m.version, m.name);
            match &m.verdict {
                Verdict::Reversible => writeln!(f, "ok       {head} up, down, up: the schema came back")?,
                Verdict::Irreversible => {
                    writeln!(f, "no down  {head} irreversible: no DOWN section to check")?
                }
                Verdict::UpFailed(error) => {
                    writeln!(f, "FAILED   {head} UP failed; nothing after it was checked\n{}", error.render())?
                }
                Verdict::DownFailed(error) => {
                    writeln!(f, "FAILED   {head} DOWN failed\n{}", error.render())?
                }
                Verdict::DownDoesNotRestore(diff) => writeln!(
                    f,
                    "FAILED   {head} DOWN does not restore the schema ({}): before UP → after DOWN\n{diff}",
                    m.path
                )?,
                Verdict::DownReordersColumns(diff) => writeln!(
                    f,
                    "{} {head} DOWN restores the columns in another order ({}){}\n{diff}",
                    if self.allow_column_order { "order   " } else { "FAILED  " },
                    m.path,
                    if self.allow_column_order { ", accepted" } else { "; --allow-column-order accepts it" }
                )?,
                Verdict::UpAgainFailed(error) => {
                    writeln!(f, "FAILED   {head} UP failed when run again after DOWN\n{}", error.render())?
                }
            }
        }
        let failed = self
            .migrations
            .iter()
            .filter(|m| !self.passes(&m.verdict, false))
            .count();
        let irreversible = self
            .migrations
            .iter()
            .filter(|m| matches!(m.verdict, Verdict::Irreversible))
            .count();
        write!(
            f,
            "{} checked: {failed} failed, {irreversible} irreversible",
            self.migrations.len()
        )
    }
}

/// A live database compared with the schema its applied migrations produce.
///
/// ```
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let server = migrate_runtime::testing::TestServer::shared();
/// # let database = server.create_database()?;
/// # let mut live = database.client()?;
/// # let migrator = migrate_runtime::Migrator::new(MIGRATIONS);
/// # migrator.run(&mut live)?;
/// // Someone added an index by hand.
/// live.batch_execute("CREATE INDEX users_full_name ON users (full_name)")?;
/// let drift = migrator.drift(&mut live, server)?;
/// if !drift.diff.is_empty() {
///     eprintln!("{drift}");
/// }
/// assert!(drift.diff.added.iter().any(|(object, _)| object.contains("users_full_name")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Drift {
    /// The versions applied in the live database (and so on the throwaway one).
    pub applied: Vec<i64>,
    /// From the expected schema (removed: missing in the database) to the live one (added:
    /// only in the database).
    pub diff: SchemaDiff,
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.diff.is_empty() {
            return write!(
                f,
                "no drift: the database has exactly the schema its {} applied migration(s) produce",
                self.applied.len()
            );
        }
        write!(
            f,
            "drift: the database differs from the schema its {} applied migration(s) produce\n   \
             (- expected but missing, + only in the database, ~ different)\n{}",
            self.applied.len(),
            self.diff
        )
    }
}

impl Migrator<'_> {
    /// Checks every migration this migrator would apply, in order, on fresh databases of
    /// `server`: the schema before its UP, UP, DOWN, the schema must equal the one before, UP
    /// again. After a problem the check goes on (unless `stop_at_first_problem`) from a fresh
    /// database migrated up to and including that migration, so each is checked against the
    /// schema it was written for. A failing UP ends the check.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// let server = migrate_runtime::testing::TestServer::shared();
    /// let report = migrate_runtime::Migrator::new(MIGRATIONS).verify(server, false)?;
    /// assert!(report.passed(false), "{report}");
    /// # Ok::<(), migrate_runtime::Error>(())
    /// ```
    pub fn verify(
        &self,
        server: &TestServer,
        stop_at_first_problem: bool,
    ) -> Result<VerifyReport, Error> {
        let quiet = self.clone().quiet();
        let this = &quiet;
        let selected: Vec<&Migration> = this.selected().collect();
        let mut report = VerifyReport::default();
        let (mut _database, mut client) = fresh(server)?;
        for migration in selected {
            let version = migration.version();
            let up_to_here = this.clone().target(version);
            let before = this.schema_snapshot(&mut client)?;
            if let Err(error) = up_to_here.run(&mut client) {
                report.push(migration, Verdict::UpFailed(error));
                break;
            }
            let verdict = if migration.down().is_none() {
                Verdict::Irreversible
            } else {
                match this.down(&mut client, 1) {
                    Err(error) => Verdict::DownFailed(error),
                    Ok(_) => {
                        let diff = before.diff(&this.schema_snapshot(&mut client)?);
                        if diff.only_column_order() {
                            Verdict::DownReordersColumns(diff)
                        } else if !diff.is_empty() {
                            Verdict::DownDoesNotRestore(diff)
                        } else {
                            match up_to_here.run(&mut client) {
                                Ok(_) => Verdict::Reversible,
                                Err(error) => Verdict::UpAgainFailed(error),
                            }
                        }
                    }
                }
            };
            let problem = !matches!(verdict, Verdict::Reversible | Verdict::Irreversible);
            report.push(migration, verdict);
            if problem {
                if stop_at_first_problem {
                    break;
                }
                (_database, client) = fresh(server)?;
                up_to_here.run(&mut client)?;
            }
        }
        Ok(report)
    }

    /// Compares the `live` database with the schema this binary's migrations produce on a
    /// fresh database of `server` when exactly the versions `live` has applied are applied.
    /// The live history is checked first, as [`Migrator::run`] checks it (an edited file or a
    /// version this binary lacks is refused).
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let live_database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let url = live_database.url();
    /// # migrate_runtime::Migrator::new(MIGRATIONS).run(&mut live_database.client()?)?;
    /// // e.g. url = "postgresql://localhost/app"
    /// let mut live = postgres::Client::connect(&url, postgres::NoTls)?;
    /// let server = migrate_runtime::testing::TestServer::start()?;
    /// let drift = migrate_runtime::Migrator::new(MIGRATIONS).drift(&mut live, &server)?;
    /// println!("{drift}");
    /// assert!(drift.diff.is_empty());
    /// assert_eq!(drift.applied, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn drift(&self, live: &mut Client, server: &TestServer) -> Result<Drift, Error> {
        let rows = self.applied(live)?;
        self.clone().allow_out_of_order(true).pending(&rows)?;
        let applied: BTreeSet<i64> = rows.iter().map(|row| row.version).collect();
        let chosen: Vec<Migration> = self
            .migrations
            .iter()
            .filter(|m| applied.contains(&m.version()))
            .cloned()
            .collect();
        let (_database, mut client) = fresh(server)?;
        let mut replay = self.clone().quiet().allow_out_of_order(true).untargeted();
        replay.migrations = &chosen;
        replay.run(&mut client)?;
        let expected = self.schema_snapshot(&mut client)?;
        Ok(Drift {
            applied: applied.into_iter().collect(),
            diff: expected.diff(&self.schema_snapshot(live)?),
        })
    }
}

/// The test helper for an application's own `cargo test`: runs [`Migrator::verify`] on the
/// shared throwaway server and panics with the report unless every migration with a DOWN
/// section gives the schema back (`deny_irreversible`: and every migration has one).
///
/// ```
/// static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
///
/// #[test]
/// fn migrations_are_reversible() {
///     migrate_runtime::verify::assert_reversible(MIGRATIONS, false);
/// }
/// # // `#[test]` functions exist only under `cargo test`: the same call, run here.
/// # migrate_runtime::verify::assert_reversible(MIGRATIONS, false);
/// ```
#[track_caller]
pub fn assert_reversible(migrations: &[Migration], deny_irreversible: bool) {
    let report = Migrator::new(migrations)
        .verify(TestServer::shared(), false)
        .unwrap_or_else(|error| panic!("verify could not run:\n{}", error.render()));
    assert!(
        report.passed(deny_irreversible),
        "a migration's DOWN does not undo its UP:\n{report}"
    );
}

impl VerifyReport {
    fn push(&mut self, migration: &Migration, verdict: Verdict) {
        self.migrations.push(Verified {
            version: migration.version(),
            name: migration.name().to_owned(),
            path: migration.path().to_owned(),
            verdict,
        });
    }
}

fn fresh(server: &TestServer) -> Result<(TestDatabase<'_>, Client), Error> {
    let database = server.create_database()?;
    let client = database.client()?;
    Ok((database, client))
}
