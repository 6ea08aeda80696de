//! PostgreSQL migrations that ship inside the executable.
//!
//! `migrate_macros::embed_migrations!` reads a directory of SQL files at compile time, checks
//! them with the parser in [`source`], and embeds them as a `&'static [Migration]`. This crate
//! holds that parser (always) and, with the default `runtime` feature, the code that applies
//! migrations to a database.
//!
//! ```no_run
//! static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
//!
//! for migration in MIGRATIONS {
//!     println!("{:>4} {}", migration.version(), migration.name());
//! }
//! ```
#![warn(missing_docs)]

pub mod build;
mod migration;
pub mod source;

pub use migration::{Migration, Section};
pub use source::checksum::Checksum;
