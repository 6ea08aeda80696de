//! What a fleet run did to each tenant and in total, and where each tenant stands (`status`).

use std::fmt;
use std::time::Duration;

use crate::Error;

/// How one tenant's run ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum TenantOutcome {
    /// Nothing was pending.
    UpToDate,
    /// These migrations were applied, in order.
    Applied {
        /// Their versions.
        versions: Vec<i64>,
    },
    /// The run stopped with an error: a migration failed, or the tenant's history refused the
    /// run (a changed file, an unfinished migration, ...), or its lock stayed busy. What was
    /// applied before the error stays applied (each migration commits with its history row).
    Failed {
        /// The migration the error is about, when it is about one.
        version: Option<i64>,
        /// Versions applied before the error.
        applied: Vec<i64>,
        /// The error, as [`crate::Migrator::run`] returned it.
        error: Error,
    },
    /// No connection could be made (or it broke before anything ran).
    Unreachable {
        /// Why.
        error: Error,
    },
    /// Not started: see the reason.
    Skipped {
        /// Why.
        reason: SkipReason,
    },
    /// The run was stopped while this tenant was being migrated
    /// ([`FleetStopper::stop`](super::FleetStopper::stop), Ctrl-C): its running statement was
    /// cancelled, the migration it was applying rolled back, and a rerun applies the rest.
    Interrupted {
        /// Versions applied (and committed) before the stop.
        applied: Vec<i64>,
        /// The error the cancelled run returned.
        error: Error,
    },
}

/// Why a tenant was not started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum SkipReason {
    /// A canary tenant did not succeed.
    CanaryFailed,
    /// The failure policy is `Stop` and a tenant failed.
    StoppedAfterFailure,
    /// More tenants failed than the failure budget allows.
    BudgetExhausted,
    /// The run was stopped ([`FleetStopper::stop`](super::FleetStopper::stop), Ctrl-C).
    Interrupted,
}

impl SkipReason {
    /// The lowercase name used in JSON (`canary_failed`, ...).
    ///
    /// ```
    /// assert_eq!(migrate_runtime::fleet::SkipReason::CanaryFailed.as_str(), "canary_failed");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::CanaryFailed => "canary_failed",
            SkipReason::StoppedAfterFailure => "stopped_after_failure",
            SkipReason::BudgetExhausted => "failure_budget_exhausted",
            SkipReason::Interrupted => "interrupted",
        }
    }
}

impl TenantOutcome {
    /// The lowercase name used in JSON: `up_to_date`, `applied`, `failed`, `unreachable`,
    /// `skipped`.
    ///
    /// ```
    /// assert_eq!(migrate_runtime::fleet::TenantOutcome::UpToDate.as_str(), "up_to_date");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            TenantOutcome::UpToDate => "up_to_date",
            TenantOutcome::Applied { .. } => "applied",
            TenantOutcome::Failed { .. } => "failed",
            TenantOutcome::Unreachable { .. } => "unreachable",
            TenantOutcome::Skipped { .. } => "skipped",
            TenantOutcome::Interrupted { .. } => "interrupted",
        }
    }

    /// Whether the tenant ended up with everything applied.
    ///
    /// ```
    /// assert!(migrate_runtime::fleet::TenantOutcome::UpToDate.succeeded());
    /// ```
    pub fn succeeded(&self) -> bool {
        matches!(
            self,
            TenantOutcome::UpToDate | TenantOutcome::Applied { .. }
        )
    }

    /// Whether the tenant failed in a way that running again can fix without anyone changing
    /// anything: it was unreachable, its connection was lost, or another session kept its
    /// locks. A failed migration or a refused history is not: someone must look.
    ///
    /// ```
    /// use migrate_runtime::fleet::TenantOutcome;
    /// assert!(!TenantOutcome::UpToDate.retryable());
    /// ```
    pub fn retryable(&self) -> bool {
        match self {
            TenantOutcome::Unreachable { .. } | TenantOutcome::Interrupted { .. } => true,
            TenantOutcome::Failed { error, .. } => transient(error),
            _ => false,
        }
    }
}

/// Errors a rerun can get past by itself.
pub(crate) fn transient(error: &Error) -> bool {
    match error {
        Error::LockTimeout { .. }
        | Error::LockNotAvailable(_)
        | Error::ConnectionLost { .. }
        | Error::Connect(_) => true,
        // A server's refusal (permission denied, ...) needs a person; a broken socket does not.
        Error::Database { source, .. } => source.as_db_error().is_none() || source.is_closed(),
        _ => false,
    }
}

/// One tenant in a [`FleetReport`].
#[derive(Debug)]
#[non_exhaustive]
pub struct TenantResult {
    /// The tenant's name.
    pub tenant: String,
    /// How it ended.
    pub outcome: TenantOutcome,
    /// How long its run took (zero when skipped).
    pub elapsed: Duration,
}

/// What a fleet run did: every selected tenant, in fleet order.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct FleetReport {
    /// One entry per tenant.
    pub tenants: Vec<TenantResult>,
    /// The whole run's wall time.
    pub elapsed: Duration,
}

/// The counts of a [`FleetReport`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// Tenants in the run.
    pub tenants: usize,
    /// Tenants that had nothing pending.
    pub up_to_date: usize,
    /// Tenants that had migrations applied.
    pub applied: usize,
    /// Migrations applied, over all tenants.
    pub migrations: usize,
    /// Tenants whose run failed.
    pub failed: usize,
    /// Tenants that could not be reached.
    pub unreachable: usize,
    /// Tenants not started.
    pub skipped: usize,
    /// Tenants whose run was stopped part-way (see [`TenantOutcome::Interrupted`]).
    pub interrupted: usize,
    /// Failed or unreachable tenants a rerun can fix by itself (see
    /// [`TenantOutcome::retryable`]).
    pub retryable: usize,
}

impl FleetReport {
    /// The counts.
    ///
    /// ```
    /// let report = migrate_runtime::fleet::FleetReport::default();
    /// assert_eq!(report.summary().tenants, 0);
    /// assert!(report.succeeded());
    /// ```
    pub fn summary(&self) -> Summary {
        let mut summary = Summary {
            tenants: self.tenants.len(),
            ..Summary::default()
        };
        for result in &self.tenants {
            match &result.outcome {
                TenantOutcome::UpToDate => summary.up_to_date += 1,
                TenantOutcome::Applied { versions } => {
                    summary.applied += 1;
                    summary.migrations += versions.len();
                }
                TenantOutcome::Failed { applied, .. } => {
                    summary.failed += 1;
                    summary.migrations += applied.len();
                }
                TenantOutcome::Unreachable { .. } => summary.unreachable += 1,
                TenantOutcome::Skipped { .. } => summary.skipped += 1,
                TenantOutcome::Interrupted { applied, .. } => {
                    summary.interrupted += 1;
                    summary.migrations += applied.len();
                }
            }
            if result.outcome.retryable() {
                summary.retryable += 1;
            }
        }
        summary
    }

    /// Whether every tenant ended up with everything applied.
    ///
    /// ```
    /// assert!(migrate_runtime::fleet::FleetReport::default().succeeded());
    /// ```
    pub fn succeeded(&self) -> bool {
        self.tenants.iter().all(|result| result.outcome.succeeded())
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} tenants: {} applied ({} migrations), {} up to date, {} failed, {} unreachable, {} skipped",
            self.tenants,
            self.applied,
            self.migrations,
            self.up_to_date,
            self.failed,
            self.unreachable,
            self.skipped
        )?;
        if self.interrupted > 0 {
            write!(f, ", {} interrupted", self.interrupted)?;
        }
        Ok(())
    }
}

/// Where one tenant stands, in [`FleetStatus`].
#[derive(Debug)]
#[non_exhaustive]
pub enum TenantState {
    /// Everything this binary has is applied.
    UpToDate,
    /// A run would apply these versions, in order.
    Pending {
        /// The versions.
        versions: Vec<i64>,
    },
    /// A migration is recorded `failed` or `running` (a no-transaction migration that
    /// stopped part-way, or one running now): a run refuses until it is repaired.
    FailedAt {
        /// Its version.
        version: i64,
    },
    /// A run would refuse for another reason (a changed file, a version conflict, ...).
    Refused {
        /// The refusal.
        error: Error,
    },
    /// The tenant could not be reached or read.
    Unreachable {
        /// Why.
        error: Error,
    },
}

impl TenantState {
    /// The lowercase name used in JSON: `up_to_date`, `pending`, `failed`, `refused`,
    /// `unreachable`.
    ///
    /// ```
    /// assert_eq!(migrate_runtime::fleet::TenantState::UpToDate.as_str(), "up_to_date");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            TenantState::UpToDate => "up_to_date",
            TenantState::Pending { .. } => "pending",
            TenantState::FailedAt { .. } => "failed",
            TenantState::Refused { .. } => "refused",
            TenantState::Unreachable { .. } => "unreachable",
        }
    }
}

impl fmt::Display for TenantState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TenantState::UpToDate => f.write_str("up to date"),
            TenantState::Pending { versions } => write!(f, "pending {}", versions.len()),
            TenantState::FailedAt { version } => write!(f, "failed at {version}"),
            TenantState::Refused { error } => write!(f, "refused: {error}"),
            TenantState::Unreachable { error } => write!(f, "unreachable: {error}"),
        }
    }
}

/// Where every selected tenant stands (see [`crate::fleet::Fleet::status`]), in fleet order.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct FleetStatus {
    /// Each tenant's name and state.
    pub tenants: Vec<(String, TenantState)>,
    /// How long reading them took.
    pub elapsed: Duration,
}

impl FleetStatus {
    /// How many tenants are in each state: up to date, pending, failed or refused, unreachable.
    ///
    /// ```
    /// let status = migrate_runtime::fleet::FleetStatus::default();
    /// assert_eq!(status.counts(), (0, 0, 0, 0));
    /// ```
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let mut counts = (0, 0, 0, 0);
        for (_, state) in &self.tenants {
            match state {
                TenantState::UpToDate => counts.0 += 1,
                TenantState::Pending { .. } => counts.1 += 1,
                TenantState::FailedAt { .. } | TenantState::Refused { .. } => counts.2 += 1,
                TenantState::Unreachable { .. } => counts.3 += 1,
            }
        }
        counts
    }
}
