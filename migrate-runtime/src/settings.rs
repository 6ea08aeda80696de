//! The settings of a run, as the builder methods of `Migrator` leave them.

use std::time::Duration;

use crate::contention::{self, RetryPolicy};
use crate::history::{HistoryTables, Recorder};
use crate::lock::LockScope;
use crate::safety::SafetyPolicy;
use crate::{LockTimeout, Migration, Phase};

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
    /// `lock_timeout` of every migration transaction (`None`: the session's own).
    pub(crate) lock_timeout: Option<Duration>,
    /// `statement_timeout` of every migration transaction (`None`: the session's own).
    pub(crate) statement_timeout: Option<Duration>,
    /// How a unit that could not get its locks in time is tried again.
    pub(crate) retry: RetryPolicy,
    /// Which deploy phase the run applies (pre-deploy: stop before post-deploy migrations).
    pub(crate) phase: Phase,
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
            lock_timeout: Some(contention::DEFAULT_LOCK_TIMEOUT),
            statement_timeout: None,
            retry: RetryPolicy::default(),
            phase: Phase::PreDeploy,
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

    /// The lock wait `migration` runs with: its own directive's, else the run's.
    pub(crate) fn lock_timeout_of(&self, migration: &Migration) -> Option<LockTimeout> {
        migration
            .lock_timeout()
            .or(self.lock_timeout.map(LockTimeout::After))
    }

    /// The statements that give `migration`'s transaction its timeouts.
    pub(crate) fn timeouts_sql(&self, migration: &Migration) -> String {
        contention::set_local_sql(self.lock_timeout_of(migration), self.statement_timeout)
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
