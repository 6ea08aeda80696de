//! PostgreSQL migrations that ship inside the executable.
//!
//! [`migrate_macros::embed_migrations!`](https://docs.rs/migrate-macros) reads a directory of
//! SQL files when your crate compiles, checks them (a bad file is a compile error naming the
//! file and line), and embeds them as a `&'static [Migration]`. At start-up, [`Migrator`]
//! applies what is pending: each migration and its history row in one transaction, under an
//! advisory lock, after checking that the database's history agrees with the binary. The
//! runner is synchronous, on the blocking [`postgres`](https://docs.rs/postgres) driver; the
//! [`tokio`] module runs it from async code.
//!
//! # Quick start
//!
//! ```toml
//! [dependencies]
//! migrate-macros = "0.1"
//! migrate-runtime = "0.1"
//! postgres = "0.19"
//!
//! [build-dependencies]
//! migrate-runtime = { version = "0.1", default-features = false }
//! ```
//!
//! `build.rs`, so that a migration file *added* to the directory rebuilds the crate (editing
//! or removing one always does):
//!
//! ```no_run
//! fn main() {
//!     migrate_runtime::build::rerun_if_migrations_change("migrations");
//! }
//! ```
//!
//! `migrations/001_create_users.sql` (the [file format](guide::file_format) also takes
//! `V1__name.sql`, `1_name.up.sql`/`.down.sql`, timestamped and diesel layouts):
//!
//! ```sql
//! -- UP
//! CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL);
//! -- DOWN
//! DROP TABLE users;
//! ```
//!
//! `src/main.rs`:
//!
//! ```no_run
//! # /* the crate's own directory; this documentation embeds the repository's
//! static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("migrations");
//! # */
//! # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let mut client = postgres::Client::connect(&std::env::var("DATABASE_URL")?, postgres::NoTls)?;
//!     let report = migrate_runtime::Migrator::new(MIGRATIONS).run(&mut client)?;
//!     println!("{} applied", report.applied.len());
//!     // ... start the service
//!     Ok(())
//! }
//! ```
//!
//! The same, run here against a throwaway server (feature `testing`):
//!
//! ```
//! # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
//! let server = migrate_runtime::testing::TestServer::shared();
//! let database = server.create_database()?;
//! let mut client = database.client()?;
//! let report = migrate_runtime::Migrator::new(MIGRATIONS).run(&mut client)?;
//! // All but the last, which says `-- migrate:env production`.
//! assert_eq!(report.applied.len(), MIGRATIONS.len() - 1);
//! // A second start applies nothing.
//! assert!(migrate_runtime::Migrator::new(MIGRATIONS).run(&mut client)?.applied.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! In a tokio service (feature `tokio`), where a blocking client must not be created or
//! dropped on an async thread:
//!
//! ```no_run
//! # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
//! #[tokio::main]
//! async fn main() -> Result<(), migrate_runtime::Error> {
//!     let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
//!     let database = migrate_runtime::config::ConnectionSettings::from_url(&url)?;
//!     migrate_runtime::tokio::run(migrate_runtime::Migrator::new(MIGRATIONS), database).await?;
//!     // ... build the pool and serve
//!     Ok(())
//! }
//! ```
//!
//! Tests get a migrated database from a throwaway server that the tests start themselves
//! (feature `testing`, see [`testing`]); the `migrate` subcommands
//! (`up`, `status`, `plan`, `down`, `repair`, `baseline`, `verify`, `drift`, `lint`, ...) are
//! one line in an application's own `main` with the `cli` feature (see [`cli`]).
//!
//! # Features
//!
//! | Feature | Default | What it adds |
//! |---|---|---|
//! | `runtime` | yes | [`Migrator`] and everything that talks to PostgreSQL. Without it the crate is the file format only (parser, lint, checksum, [`build`]): what `migrate-macros` and build scripts use |
//! | `testing` | | [`testing`]: a throwaway PostgreSQL server and migrated databases for tests; [`verify`]: DOWN-undoes-UP and drift checks |
//! | `tokio` | | [`tokio`]: run, status and plan from async code |
//! | `tls` | | `sslmode=require`, `verify-ca`, `verify-full` for [`config::ConnectionSettings`] (native-tls: OpenSSL on Linux) |
//! | `cli` | | [`cli`]: the `migrate` command line, for an application's binary or standalone (`cargo install migrate-runtime --features cli`) |
//! | `http` | | [`http`]: the admin endpoint, a handler any web framework can call, and `migrate serve` |
//!
//! # Guides
//!
//! - [File format](guide::file_format): names and layouts, sections, directives, checksums,
//!   compile errors.
//! - [Applying migrations](guide::operations): settings, live databases (lock timeouts and
//!   retries), no-transaction migrations, failures, repair, baseline.
//! - [The command line](guide::cli): commands, configuration, exit codes, JSON.
//! - [Test databases](guide::testing): `#[migrate_macros::test]`, the persistent template
//!   and its warm pool, the shared test server.
//! - [Release checks](guide::release_checks): `verify`, `drift`, data-safety snapshots, SQL
//!   syntax at compile time, `lint`.
//! - [Deploy phases and readiness](guide::phases): post-deploy migrations, `migrate check`
//!   for rolling deploys, per-migration out-of-order.
//! - [Squashing a long history](guide::squash) and [migration sets from library
//!   crates](guide::sets).
//! - [Fleet mode](guide::fleet): one migration set applied to many tenant schemas or
//!   databases, in parallel, with canaries, failure budgets and shards.
//! - [Deployment and the admin endpoint](guide::deployment).
//! - [Reliability guarantees](guide::reliability) and [performance](guide::performance).
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// The examples show what users write: a `build.rs` is a `fn main`, a check is a `#[test]`.
#![allow(clippy::needless_doctest_main, clippy::test_attr_in_doctest)]

pub mod build;
#[cfg(feature = "runtime")]
mod cancel;
pub mod guide;
mod migration;
pub mod source;

#[cfg(feature = "cli")]
#[cfg_attr(docsrs, doc(cfg(feature = "cli")))]
pub mod cli;
#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub mod config;
#[cfg(feature = "runtime")]
mod contention;
#[cfg(feature = "runtime")]
mod error;
#[cfg(feature = "runtime")]
mod execute;
#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub mod fleet;
#[cfg(feature = "runtime")]
mod history;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
#[cfg(feature = "runtime")]
mod lock;
#[cfg(feature = "runtime")]
mod migrator;
#[cfg(feature = "runtime")]
mod ops;
#[cfg(feature = "cli")]
mod outcome;
#[cfg(feature = "runtime")]
mod plan;
#[cfg(feature = "runtime")]
mod readiness;
#[cfg(feature = "runtime")]
mod repair;
#[cfg(feature = "runtime")]
mod run;
#[cfg(feature = "runtime")]
mod safety;
#[cfg(feature = "runtime")]
mod schema;
#[cfg(feature = "runtime")]
mod sets;
#[cfg(feature = "runtime")]
mod settings;
#[cfg(feature = "cli")]
mod shapes;
#[cfg(feature = "testing")]
mod squash;
#[cfg(feature = "runtime")]
mod squashed;
#[cfg(all(feature = "runtime", debug_assertions))]
mod stale;
#[cfg(feature = "runtime")]
mod terms;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod verify;

#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub use cancel::CancelHandle;
#[doc(hidden)]
pub use migration::{EmbeddedMigration, EmbeddedSection};
pub use migration::{LockTimeout, Migration, Phase, Section};
pub use source::checksum::Checksum;

#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub use contention::{Blocker, DEFAULT_LOCK_TIMEOUT, DEFAULT_RETRY_BUDGET};
#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub use error::{
    Error, HistoryNameProblem, Located, LockContention, MigrationFailure, PartlySquashed,
    PolicyViolation, Rendered, StatementProgress, Unfinished,
};
#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub use history::{Action, AppliedMigration};
#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub use lock::LockScope;
#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub use migrator::Migrator;
#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub use ops::{Plan, Rehearsed, State, Status, StatusEntry};
#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub use readiness::Readiness;
#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub use run::{AppliedReport, Progress, Report, Waiting};
#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub use safety::SafetyPolicy;
#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub use schema::{SchemaDiff, SchemaSnapshot};
#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub use sets::{MigrationSet, Sets};
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub use squash::Squash;
#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub use terms::{ActionKind, ActionStatus, MigrationStatus, OtherTool, Repair};

/// The values an async service moves to a blocking thread, or shares with one.
#[cfg(feature = "runtime")]
const _: () = {
    const fn send_sync_static<T: Send + Sync + 'static>() {}
    send_sync_static::<Migrator<'static>>();
    send_sync_static::<Report>();
    send_sync_static::<Error>();
    send_sync_static::<config::ConnectionSettings>();
};
