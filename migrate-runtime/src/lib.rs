//! PostgreSQL migrations that ship inside the executable.
//!
//! `migrate_macros::embed_migrations!` reads a directory of SQL files at compile time, checks
//! them with the parser in [`source`], and embeds them as a `&'static [Migration]`. With the
//! default `runtime` feature, [`Migrator`] applies them at start-up: each migration and its
//! history row in one transaction, under an advisory lock, after checking that the database's
//! history agrees with the binary.
//!
//! ```no_run
//! static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let mut client = postgres::Client::connect(&std::env::var("DATABASE_URL")?, postgres::NoTls)?;
//!     migrate_runtime::Migrator::new(MIGRATIONS).run(&mut client)?;
//!     Ok(())
//! }
//! ```
#![warn(missing_docs)]

pub mod build;
#[cfg(feature = "runtime")]
mod cancel;
mod migration;
pub mod source;

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "runtime")]
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
mod repair;
#[cfg(feature = "runtime")]
mod run;
#[cfg(feature = "runtime")]
mod safety;
#[cfg(feature = "runtime")]
mod schema;
#[cfg(feature = "runtime")]
mod settings;
#[cfg(feature = "cli")]
mod shapes;
#[cfg(all(feature = "runtime", debug_assertions))]
mod stale;
#[cfg(feature = "runtime")]
mod terms;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "tokio")]
pub mod tokio;
#[cfg(feature = "testing")]
pub mod verify;

#[cfg(feature = "runtime")]
pub use cancel::CancelHandle;
#[doc(hidden)]
pub use migration::{EmbeddedMigration, EmbeddedSection};
pub use migration::{LockTimeout, Migration, Section};
pub use source::checksum::Checksum;

#[cfg(feature = "runtime")]
pub use contention::{Blocker, DEFAULT_LOCK_TIMEOUT, DEFAULT_RETRY_BUDGET};
#[cfg(feature = "runtime")]
pub use error::{
    Error, HistoryNameProblem, Located, LockContention, MigrationFailure, PolicyViolation,
    Rendered, StatementProgress, Unfinished,
};
#[cfg(feature = "runtime")]
pub use history::{Action, AppliedMigration};
#[cfg(feature = "runtime")]
pub use lock::LockScope;
#[cfg(feature = "runtime")]
pub use migrator::Migrator;
#[cfg(feature = "runtime")]
pub use ops::{Plan, Rehearsed, State, Status, StatusEntry};
#[cfg(feature = "runtime")]
pub use run::{AppliedReport, Progress, Report, Waiting};
#[cfg(feature = "runtime")]
pub use safety::SafetyPolicy;
#[cfg(feature = "runtime")]
pub use schema::{SchemaDiff, SchemaSnapshot};
#[cfg(feature = "runtime")]
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
