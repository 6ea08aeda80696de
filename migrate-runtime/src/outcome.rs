//! One table for every runtime error: its `kind` in JSON documents, the exit code the command
//! line gives it, and the HTTP status the admin endpoint answers with. A new variant of
//! [`Error`] does not compile until it has a row here.

use crate::Error;

/// The documented exit codes.
pub mod exit {
    /// Success.
    pub const SUCCESS: u8 = 0;
    /// A migration failed, a check refused to go on, or a dry run found a failure.
    pub const FAILED: u8 = 1;
    /// Usage, configuration or connection error (nothing was attempted).
    pub const USAGE: u8 = 2;
    /// `status --exit-code`: something is pending.
    ///
    /// ```
    /// use migrate_runtime::cli::{exit, run_embedded};
    /// use std::process::ExitCode;
    ///
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let url = database.url();
    /// let code = run_embedded(MIGRATIONS, ["migrate", "status", "--exit-code", "--database-url", &url]);
    /// // `ExitCode` has no `==`: compare what it prints.
    /// assert_eq!(format!("{code:?}"), format!("{:?}", ExitCode::from(exit::PENDING)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const PENDING: u8 = 3;
    /// `check`: the database lacks a migration this binary needs (after `--wait-ready`, if
    /// given). The same code as [`RETRY`]: not done yet, and a later run gets past it.
    pub const NOT_READY: u8 = 4;
    /// `fleet`: no migration failed and no history refused, but some tenants are not done
    /// for reasons a rerun gets past by itself: a tenant (or the database listing them) was
    /// unreachable, a connection was lost, or a migration lock stayed busy. Retry the job.
    pub const RETRY: u8 = 4;
    /// Stopped by SIGINT (Ctrl-C): the running statement was cancelled (128 + 2).
    pub const INTERRUPTED: u8 = 130;
    /// Stopped by SIGTERM: the running statement was cancelled (128 + 15).
    pub const TERMINATED: u8 = 143;
}

/// How the edges present one error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// `kind` in `{"error": {...}}`.
    pub(crate) kind: &'static str,
    /// The command line's exit code.
    pub(crate) exit_code: u8,
    /// The HTTP status: 409 when the database's state stands in the way (another run holds
    /// the lock, the history disagrees with the binary), 422 when a migration was refused,
    /// 503 when the database went away, 500 for the server's own configuration.
    pub(crate) http_status: u16,
}

/// The row for `error`.
pub(crate) fn of(error: &Error) -> Outcome {
    use exit::{FAILED, USAGE};
    let (kind, exit_code, http_status) = match error {
        Error::MigrationFailed(_) => ("migration_failed", FAILED, 422),
        Error::PolicyViolation(_) => ("policy_violation", FAILED, 422),
        Error::ChecksumMismatch { .. } => ("checksum_mismatch", FAILED, 409),
        Error::VersionConflict { .. } => ("version_conflict", FAILED, 409),
        Error::TouchesHistoryTable { .. } => ("touches_history_table", FAILED, 409),
        Error::MissingFromBinary(_) => ("missing_from_binary", FAILED, 409),
        Error::OutOfOrder { .. } => ("out_of_order", FAILED, 409),
        Error::PartlySquashed(_) => ("partly_squashed", FAILED, 409),
        Error::CannotSquash { .. } => ("cannot_squash", USAGE, 500),
        Error::UnmetSetRequirement { .. } => ("unmet_set_requirement", FAILED, 409),
        Error::Unfinished(_) => ("unfinished", FAILED, 409),
        Error::Irreversible { .. } => ("irreversible", FAILED, 409),
        Error::ForeignHistoryTable { .. } => ("foreign_history_table", FAILED, 409),
        Error::OtherHistoryDirty { .. } => ("other_history_dirty", FAILED, 409),
        Error::LockTimeout { .. } => ("lock_timeout", FAILED, 409),
        Error::LockNotAvailable(_) => ("lock_not_available", FAILED, 409),
        Error::BehindTransactionPooler => ("behind_transaction_pooler", USAGE, 500),
        Error::Connect(_) => ("connection", USAGE, 503),
        Error::TaskFailed { .. } => ("task_failed", FAILED, 500),
        Error::ConnectionLost { .. } => ("connection_lost", FAILED, 503),
        Error::Database { .. } => ("database", USAGE, 503),
        Error::HistoryTableName { .. }
        | Error::GroupedWithSafety
        | Error::GroupedNoTransaction { .. }
        | Error::NotApplied { .. }
        | Error::UnknownVersion { .. }
        | Error::HistoryNotEmpty { .. }
        | Error::NoOtherHistory { .. }
        | Error::UnreadableOtherHistory { .. }
        | Error::ReasonRequired
        | Error::NothingToRepair { .. } => ("invalid_setting", USAGE, 500),
        Error::Throwaway(_) => ("throwaway_server", FAILED, 500),
    };
    Outcome {
        kind,
        exit_code,
        http_status,
    }
}
