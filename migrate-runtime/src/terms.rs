//! The vocabulary the stages share: where a migration stands, what the action log records,
//! how a repair resolves a migration, and the other tools whose histories can be imported.

use std::fmt;

use crate::migration::Direction;

/// Where a version stands in `schema_migrations`.
///
/// ```
/// assert_eq!(migrate_runtime::MigrationStatus::Running.as_str(), "running");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MigrationStatus {
    /// Applied, and recorded together with its schema change.
    Applied,
    /// A no-transaction migration that failed part-way.
    Failed,
    /// A no-transaction migration whose statements are running (or were cut off).
    Running,
}

impl MigrationStatus {
    /// The text stored in the table.
    ///
    /// ```
    /// assert_eq!(migrate_runtime::MigrationStatus::Applied.as_str(), "applied");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationStatus::Applied => "applied",
            MigrationStatus::Failed => "failed",
            MigrationStatus::Running => "running",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<MigrationStatus> {
        [
            MigrationStatus::Applied,
            MigrationStatus::Failed,
            MigrationStatus::Running,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// What one row of the action log records.
///
/// ```
/// assert_eq!(migrate_runtime::ActionKind::Rollback.to_string(), "rollback");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActionKind {
    /// A migration's UP ran (or failed).
    Apply,
    /// A migration's DOWN ran (or failed).
    Rollback,
    /// A migration was recorded as applied without running it.
    Baseline,
    /// The history was changed by hand through `repair`.
    Repair,
}

impl ActionKind {
    /// The text stored in the table.
    ///
    /// ```
    /// assert_eq!(migrate_runtime::ActionKind::Baseline.as_str(), "baseline");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Apply => "apply",
            ActionKind::Rollback => "rollback",
            ActionKind::Baseline => "baseline",
            ActionKind::Repair => "repair",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<ActionKind> {
        [
            ActionKind::Apply,
            ActionKind::Rollback,
            ActionKind::Baseline,
            ActionKind::Repair,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }

    pub(crate) fn of(direction: Direction) -> ActionKind {
        match direction {
            Direction::Up => ActionKind::Apply,
            Direction::Down => ActionKind::Rollback,
        }
    }
}

/// How an action ended.
///
/// ```
/// assert_eq!(migrate_runtime::ActionStatus::Failed.as_str(), "failed");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActionStatus {
    /// It did what it says.
    Success,
    /// It failed; the row's error says why.
    Failed,
}

impl ActionStatus {
    /// The text stored in the table.
    ///
    /// ```
    /// assert_eq!(migrate_runtime::ActionStatus::Success.as_str(), "success");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Success => "success",
            ActionStatus::Failed => "failed",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<ActionStatus> {
        [ActionStatus::Success, ActionStatus::Failed]
            .into_iter()
            .find(|status| status.as_str() == text)
    }
}

macro_rules! display_as_str {
    ($($kind:ty),*) => {$(
        impl fmt::Display for $kind {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}
display_as_str!(MigrationStatus, ActionKind, ActionStatus);

/// What [`crate::Migrator::repair`] records about one migration.
///
/// ```
/// use migrate_runtime::{ActionKind, MigrationStatus, Migrator, Repair};
///
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let mut client = database.client()?;
/// # Migrator::new(&MIGRATIONS[..9]).run(&mut client)?;
/// # client.batch_execute("ALTER TABLE contracts RENAME COLUMN status TO state")?;
/// let migrator = Migrator::new(MIGRATIONS);
/// // Migration 10 (no transaction) stops at its second index: a column was renamed.
/// assert!(migrator.run(&mut client).is_err());
/// // The column is renamed back and the three remaining indexes are built by hand.
/// client.batch_execute("ALTER TABLE contracts RENAME COLUMN state TO status")?;
/// client.batch_execute("CREATE INDEX contracts_status_idx ON contracts (status) WHERE status <> 'terminated'")?;
/// client.batch_execute("CREATE INDEX audit_logs_resource_idx ON audit_logs (resource_type, resource_id, created_at DESC)")?;
/// client.batch_execute("CREATE INDEX notifications_unread_idx ON notifications (user_id, created_at DESC) WHERE read_at IS NULL")?;
/// migrator.repair(&mut client, 10, Repair::Applied, "indexes 2 to 4 built by hand")?;
/// assert_eq!(migrator.applied(&mut client)?[9].status, MigrationStatus::Applied);
/// assert_eq!(migrator.history(&mut client)?.pop().map(|action| action.action), Some(ActionKind::Repair));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Repair {
    /// A `failed` or `running` migration was undone by hand: forget it, so it runs again.
    #[cfg_attr(feature = "cli", value(help = "Undone by hand: it runs again."))]
    RolledBack,
    /// A `failed` or `running` migration was completed by hand: record it as applied.
    #[cfg_attr(
        feature = "cli",
        value(help = "Completed by hand: record it as applied.")
    )]
    Applied,
    /// An applied migration's file was edited on purpose (a comment, a harmless fix): record
    /// the binary's checksum for it. Choosing this variant is the explicit confirmation; the
    /// command line asks for `--yes` as well.
    #[cfg_attr(
        feature = "cli",
        value(
            help = "The applied file was edited on purpose: record its new checksum (needs --yes)."
        )
    )]
    AcceptChecksum,
}

/// Another tool's history that [`crate::Migrator::baseline_from`] can import.
///
/// dbmate, Rails and golang-migrate keep theirs in `schema_migrations`, this runtime's default
/// name: to import one, give this runtime's history another name
/// ([`crate::Migrator::history_table`], `--history-table`).
///
/// ```
/// use migrate_runtime::{Migrator, OtherTool};
///
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let mut client = database.client()?;
/// // dbmate applied the first two migrations and recorded them in `schema_migrations`.
/// client.batch_execute(
///     "CREATE TABLE schema_migrations (version varchar(128) PRIMARY KEY);
///      INSERT INTO schema_migrations VALUES ('001'), ('002')",
/// )?;
/// // So this runtime keeps its own history under another name.
/// let migrator = Migrator::new(MIGRATIONS).history_table("public", "migrate_history");
/// assert_eq!(migrator.baseline_from(&mut client, OtherTool::Dbmate)?, [1, 2]);
/// assert_eq!(migrator.plan(&mut client)?.pending[0].version(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[non_exhaustive]
pub enum OtherTool {
    /// diesel's `__diesel_schema_migrations` (versions map as in the diesel layout).
    #[cfg_attr(feature = "cli", value(help = "`__diesel_schema_migrations`"))]
    Diesel,
    /// sqlx's `_sqlx_migrations` (successful rows only).
    #[cfg_attr(feature = "cli", value(help = "`_sqlx_migrations`"))]
    Sqlx,
    /// refinery's `refinery_schema_history`.
    #[cfg_attr(feature = "cli", value(help = "`refinery_schema_history`"))]
    Refinery,
    /// dbmate's `schema_migrations (version varchar)`: one row per applied version.
    #[cfg_attr(
        feature = "cli",
        value(help = "`schema_migrations (version varchar)`, one row per version")
    )]
    Dbmate,
    /// Rails' (Active Record's) `schema_migrations (version varchar)`: one row per applied
    /// version.
    #[cfg_attr(
        feature = "cli",
        value(help = "`schema_migrations (version varchar)` beside `ar_internal_metadata`")
    )]
    Rails,
    /// golang-migrate's `schema_migrations (version bigint, dirty boolean)`: only the latest
    /// version, so every migration up to it counts as applied; refused while `dirty`.
    #[cfg_attr(
        feature = "cli",
        value(
            help = "`schema_migrations (version bigint, dirty boolean)`: everything up to its version"
        )
    )]
    GolangMigrate,
}

impl OtherTool {
    /// The table where the tool keeps its history.
    pub(crate) fn table(self) -> &'static str {
        match self {
            OtherTool::Diesel => "__diesel_schema_migrations",
            OtherTool::Sqlx => "_sqlx_migrations",
            OtherTool::Refinery => "refinery_schema_history",
            OtherTool::Dbmate | OtherTool::Rails | OtherTool::GolangMigrate => "schema_migrations",
        }
    }

    /// The tool's name as people write it.
    ///
    /// ```
    /// use migrate_runtime::OtherTool;
    ///
    /// assert_eq!(OtherTool::GolangMigrate.name(), "golang-migrate");
    /// assert_eq!(OtherTool::Rails.name(), "Rails");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            OtherTool::Diesel => "diesel",
            OtherTool::Sqlx => "sqlx",
            OtherTool::Refinery => "refinery",
            OtherTool::Dbmate => "dbmate",
            OtherTool::Rails => "Rails",
            OtherTool::GolangMigrate => "golang-migrate",
        }
    }

    /// The value of `baseline --from` that names it.
    pub(crate) fn flag_value(self) -> &'static str {
        match self {
            OtherTool::Rails => "rails",
            other => other.name(),
        }
    }

    /// The `OtherTool::...` path, for `help:` lines that show the Rust call.
    pub(crate) fn rust_name(self) -> &'static str {
        match self {
            OtherTool::Diesel => "OtherTool::Diesel",
            OtherTool::Sqlx => "OtherTool::Sqlx",
            OtherTool::Refinery => "OtherTool::Refinery",
            OtherTool::Dbmate => "OtherTool::Dbmate",
            OtherTool::Rails => "OtherTool::Rails",
            OtherTool::GolangMigrate => "OtherTool::GolangMigrate",
        }
    }
}
