//! The settings of a run, as the builder methods of `Migrator` leave them.

use std::time::Duration;

use crate::history::{HistoryTables, Recorder};
use crate::lock::LockScope;
use crate::safety::SafetyPolicy;
use crate::Migration;

/// Everything a run is told besides the migrations themselves.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) tables: HistoryTables,
    pub(crate) target: Option<i64>,
    pub(crate) grouped: bool,
    pub(crate) allow_out_of_order: bool,
    pub(crate) environment: Option<String>,
    pub(crate) applied_by: Option<String>,
    pub(crate) lock_wait: Duration,
    pub(crate) lock_scope: LockScope,
    pub(crate) safety: Option<SafetyPolicy>,
    /// Going down, a migration without a DOWN section is recorded as rolled back without
    /// running any SQL, instead of refusing.
    pub(crate) through_irreversible: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            tables: HistoryTables::new("public", "schema_migrations"),
            target: None,
            grouped: false,
            allow_out_of_order: false,
            environment: None,
            applied_by: None,
            lock_wait: Duration::from_secs(60),
            lock_scope: LockScope::Session,
            safety: None,
            through_irreversible: false,
        }
    }
}

impl Settings {
    /// Whether `migration` belongs to this run's environment.
    pub(crate) fn in_environment(&self, migration: &Migration) -> bool {
        match &self.environment {
            Some(environment) => migration.applies_in(environment),
            None => migration.environments().next().is_none(),
        }
    }

    /// Whether `migration` is within the target version.
    pub(crate) fn within_target(&self, migration: &Migration) -> bool {
        self.target
            .is_none_or(|target| migration.version() <= target)
    }

    /// The writer of this run's history rows.
    pub(crate) fn recorder(&self) -> Recorder<'_> {
        Recorder::new(
            &self.tables,
            self.applied_by.as_deref(),
            self.environment.as_deref(),
        )
    }
}
