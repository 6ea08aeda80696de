//! Fleet mode: one migration set applied to many tenants (schemas of one database, or whole
//! databases), in parallel, each tenant exactly as [`Migrator::run`] migrates one database.
//!
//! Each tenant's own history table is the only record: there is no central state that could
//! disagree with it. A tenant runs under its own advisory lock (its key derives from the
//! tenant's history table), so two runners on the same fleet never apply a migration twice,
//! and a rerun applies only what is still pending.
//!
//! ```
//! use migrate_runtime::config::ConnectionSettings;
//! use migrate_runtime::fleet::{FailurePolicy, Fleet, Tenants};
//! use migrate_runtime::testing::TestServer;
//!
//! static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
//! // The first six create tables with unqualified names: they land in each tenant's schema.
//! let per_tenant = &MIGRATIONS[..6];
//!
//! let database = TestServer::shared().create_database()?;
//! let settings = ConnectionSettings::from_url(&database.url())?;
//! let tenants = Tenants::schemas(settings, ["acme", "globex", "initech"])?;
//! let report = Fleet::new(per_tenant, tenants)
//!     .parallel(2)
//!     .canary(1)
//!     .on_failure(FailurePolicy::Stop)
//!     .run()?;
//! assert!(report.succeeded());
//! println!("{}", report.summary());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod apply;
mod report;
mod schedule;
mod select;
mod stop;
mod tenants;

use std::time::{Duration, Instant};

use postgres::Client;

pub use report::{
    FleetReport, FleetStatus, SkipReason, Summary, TenantOutcome, TenantResult, TenantState,
};
pub use schedule::FailurePolicy;
pub use select::{Canary, Shard};
pub use stop::FleetStopper;
pub use tenants::{FleetError, Tenants, PLACEHOLDER};

use crate::{Migration, Migrator};
use schedule::Gate;
use tenants::Tenant;

/// The callback told about each tenant as it finishes (see [`Fleet::on_tenant`]).
type TenantObserver<'m> = &'m (dyn Fn(&TenantResult) + Send + Sync);

/// A migration set, the tenants to apply it to, and how: parallelism, canary stage, failure
/// policy and shard.
///
/// ```no_run
/// use migrate_runtime::config::ConnectionSettings;
/// use migrate_runtime::fleet::{FailurePolicy, Fleet, Tenants};
///
/// static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
///
/// let tenants = Tenants::databases("postgres://app@db/{tenant}", ["acme", "globex"])?;
/// let report = Fleet::new(MIGRATIONS, tenants)
///     .parallel(8)
///     .on_failure(FailurePolicy::Continue { budget: Some(5) })
///     .run()?;
/// for tenant in &report.tenants {
///     println!("{}: {}", tenant.tenant, tenant.outcome.as_str());
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Fleet<'m> {
    migrator: Migrator<'m>,
    tenants: Tenants,
    parallel: usize,
    canary: Canary,
    policy: FailurePolicy,
    shard: Option<Shard>,
    observer: Option<TenantObserver<'m>>,
    stopper: FleetStopper,
}

impl std::fmt::Debug for Fleet<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("tenants", &self.tenants.len())
            .field("parallel", &self.parallel)
            .field("canary", &self.canary)
            .field("policy", &self.policy)
            .field("shard", &self.shard)
            .finish_non_exhaustive()
    }
}

impl<'m> Fleet<'m> {
    /// A fleet with the defaults: one tenant at a time, no canary, stop after a failure,
    /// every tenant, and each tenant migrated with [`Migrator::new`]'s defaults.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/crates/queue/migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let tenants = migrate_runtime::fleet::Tenants::schemas(migrate_runtime::config::ConnectionSettings::from_url(&database.url())?, ["acme", "globex"])?;
    /// let fleet = migrate_runtime::fleet::Fleet::new(MIGRATIONS, tenants);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(migrations: &'m [Migration], tenants: Tenants) -> Fleet<'m> {
        Fleet {
            migrator: Migrator::new(migrations),
            tenants,
            parallel: 1,
            canary: Canary::None,
            policy: FailurePolicy::Stop,
            shard: None,
            observer: None,
            stopper: FleetStopper::default(),
        }
    }

    /// Migrates each tenant with this migrator's settings (lock wait, timeouts, environment,
    /// target, ...). For schema tenants its history table's name is used inside each
    /// tenant's schema; its history schema is not.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/crates/queue/migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let tenants = migrate_runtime::fleet::Tenants::schemas(migrate_runtime::config::ConnectionSettings::from_url(&database.url())?, ["acme", "globex"])?;
    /// use migrate_runtime::{fleet::Fleet, Migrator};
    /// let fleet = Fleet::new(MIGRATIONS, tenants)
    ///     .migrator(Migrator::new(MIGRATIONS).environment("production"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn migrator(mut self, migrator: Migrator<'m>) -> Self {
        self.migrator = migrator;
        self
    }

    /// At most `threads` tenants at once, each thread with its own connection (so also the
    /// fleet's connection budget). At least 1.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/crates/queue/migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let tenants = migrate_runtime::fleet::Tenants::schemas(migrate_runtime::config::ConnectionSettings::from_url(&database.url())?, ["acme", "globex"])?;
    /// # let fleet = migrate_runtime::fleet::Fleet::new(MIGRATIONS, tenants);
    /// let fleet = fleet.parallel(8);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn parallel(mut self, threads: usize) -> Self {
        self.parallel = threads.max(1);
        self
    }

    /// The first `count` tenants (of this runner's shard) go first; the others start only
    /// when every one of them succeeded.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/crates/queue/migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let tenants = migrate_runtime::fleet::Tenants::schemas(migrate_runtime::config::ConnectionSettings::from_url(&database.url())?, ["acme", "globex"])?;
    /// # let fleet = migrate_runtime::fleet::Fleet::new(MIGRATIONS, tenants);
    /// let fleet = fleet.canary(3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn canary(mut self, count: usize) -> Self {
        self.canary = if count == 0 {
            Canary::None
        } else {
            Canary::First(count)
        };
        self
    }

    /// These tenants go first; the others start only when every one of them succeeded. A
    /// name that is not one of the fleet's tenants makes [`run`](Self::run) refuse.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/crates/queue/migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let tenants = migrate_runtime::fleet::Tenants::schemas(migrate_runtime::config::ConnectionSettings::from_url(&database.url())?, ["acme", "globex"])?;
    /// # let fleet = migrate_runtime::fleet::Fleet::new(MIGRATIONS, tenants);
    /// let fleet = fleet.canary_tenants(["internal_demo"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn canary_tenants<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.canary = Canary::Named(names.into_iter().map(Into::into).collect());
        self
    }

    /// What happens after a tenant fails or cannot be reached (default
    /// [`FailurePolicy::Stop`]).
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/crates/queue/migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let tenants = migrate_runtime::fleet::Tenants::schemas(migrate_runtime::config::ConnectionSettings::from_url(&database.url())?, ["acme", "globex"])?;
    /// # let fleet = migrate_runtime::fleet::Fleet::new(MIGRATIONS, tenants);
    /// use migrate_runtime::fleet::FailurePolicy;
    /// let fleet = fleet.on_failure(FailurePolicy::Continue { budget: Some(3) });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_failure(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Only the tenants of this shard (for one of several runners, e.g. a Kubernetes
    /// Indexed Job's pods).
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/crates/queue/migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let tenants = migrate_runtime::fleet::Tenants::schemas(migrate_runtime::config::ConnectionSettings::from_url(&database.url())?, ["acme", "globex"])?;
    /// # let fleet = migrate_runtime::fleet::Fleet::new(MIGRATIONS, tenants);
    /// use migrate_runtime::fleet::Shard;
    /// let fleet = fleet.shard(Shard::new(2, 8)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shard(mut self, shard: Shard) -> Self {
        self.shard = Some(shard);
        self
    }

    /// A handle that stops this fleet's run from another thread: no tenant starts after it,
    /// and the running ones are cancelled (see [`FleetStopper`]).
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/crates/queue/migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let tenants = migrate_runtime::fleet::Tenants::schemas(migrate_runtime::config::ConnectionSettings::from_url(&database.url())?, ["acme", "globex"])?;
    /// let fleet = migrate_runtime::fleet::Fleet::new(MIGRATIONS, tenants);
    /// let stopper = fleet.stopper();
    /// std::thread::scope(|scope| {
    ///     let run = scope.spawn(|| fleet.run());
    ///     stopper.stop(); // e.g. from a shutdown hook
    ///     let report = run.join().unwrap()?;
    ///     println!("{}", report.summary());
    ///     Ok::<(), migrate_runtime::fleet::FleetError>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stopper(&self) -> FleetStopper {
        self.stopper.clone()
    }

    /// Calls `observer` with each tenant's result as it finishes (and for each tenant not
    /// started, when it is skipped), from the thread that ran it.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/crates/queue/migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let tenants = migrate_runtime::fleet::Tenants::schemas(migrate_runtime::config::ConnectionSettings::from_url(&database.url())?, ["acme", "globex"])?;
    /// # let fleet = migrate_runtime::fleet::Fleet::new(MIGRATIONS, tenants);
    /// use migrate_runtime::fleet::TenantResult;
    /// let print = |done: &TenantResult| eprintln!("{}: {}", done.tenant, done.outcome.as_str());
    /// let report = fleet.on_tenant(&print).run()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_tenant(mut self, observer: TenantObserver<'m>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The names of the tenants this runner takes (its shard), in fleet order.
    ///
    /// ```
    /// use migrate_runtime::fleet::{Fleet, Shard, Tenants};
    ///
    /// let names = ["a", "b", "c", "d", "e", "f"];
    /// let shard = |i| -> Vec<String> {
    ///     let tenants = Tenants::databases("postgres://db/{tenant}", names).unwrap();
    ///     let fleet = Fleet::new(&[], tenants).shard(Shard::new(i, 2).unwrap());
    ///     fleet.selected().into_iter().map(str::to_owned).collect()
    /// };
    /// let (first, second) = (shard(0), shard(1));
    /// assert_eq!(first.len() + second.len(), names.len());
    /// assert!(first.iter().all(|name| !second.contains(name)));
    /// ```
    pub fn selected(&self) -> Vec<&str> {
        self.chosen()
            .iter()
            .map(|tenant| tenant.name.as_str())
            .collect()
    }

    fn chosen(&self) -> Vec<&Tenant> {
        self.tenants
            .list
            .iter()
            .filter(|tenant| self.shard.is_none_or(|shard| shard.contains(&tenant.name)))
            .collect()
    }

    /// Migrates the selected tenants: the canary stage first, then the rest, at most
    /// [`parallel`](Self::parallel) at a time, starting no tenant once the failure policy
    /// says stop. A tenant's failure is in the report, not an `Err`: `Err` means nothing ran.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/crates/queue/migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let tenants = migrate_runtime::fleet::Tenants::schemas(migrate_runtime::config::ConnectionSettings::from_url(&database.url())?, ["acme", "globex"])?;
    /// # let fleet = migrate_runtime::fleet::Fleet::new(MIGRATIONS, tenants);
    /// let report = fleet.run()?;
    /// if !report.succeeded() {
    ///     eprintln!("{}", report.summary());
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run(&self) -> Result<FleetReport, FleetError> {
        let started = Instant::now();
        if self.tenants.database.is_some()
            && self.migrator.settings.lock_scope == crate::LockScope::Transaction
        {
            return Err(FleetError::SchemaTenantsBehindPooler);
        }
        if let Canary::Named(names) = &self.canary {
            if let Some(unknown) = names
                .iter()
                .find(|n| !self.tenants.names().any(|t| t == *n))
            {
                return Err(FleetError::UnknownCanary(unknown.clone()));
            }
        }
        let chosen = self.chosen();
        let names: Vec<&str> = chosen.iter().map(|t| t.name.as_str()).collect();
        let (canaries, rest) = select::stages(&names, &self.canary);
        let mut slots: Vec<Option<TenantResult>> = chosen.iter().map(|_| None).collect();

        let gate = Gate::new(self.policy);
        if !canaries.is_empty() {
            let canary_gate = Gate::new(FailurePolicy::Stop);
            let results = self.stage(&chosen, &canaries, &canary_gate, true);
            if let Some(reason) = canary_gate.closed() {
                gate.close(reason);
            }
            place(&mut slots, &canaries, results);
        }
        let results = self.stage(&chosen, &rest, &gate, false);
        place(&mut slots, &rest, results);
        Ok(FleetReport {
            tenants: slots.into_iter().flatten().collect(),
            elapsed: started.elapsed(),
        })
    }

    /// Runs the tenants at `order` through the gate.
    fn stage(
        &self,
        chosen: &[&Tenant],
        order: &[usize],
        gate: &Gate,
        canary: bool,
    ) -> Vec<TenantResult> {
        let tell = |result: TenantResult| {
            if let Some(observer) = self.observer {
                observer(&result);
            }
            result
        };
        schedule::run(
            order,
            self.parallel,
            gate,
            || None::<Client>,
            |connection, position| {
                let tenant = chosen[position];
                let started = Instant::now();
                // After a stop the rest are skipped without connecting to them (`migrate`
                // itself only sees a stop that lands between its connecting and its run).
                let outcome = if self.stopper.is_stopped() {
                    TenantOutcome::Skipped {
                        reason: SkipReason::Interrupted,
                    }
                } else {
                    let stopper = &self.stopper;
                    apply::migrate(&self.migrator, &self.tenants, tenant, connection, stopper)
                };
                // A stopped tenant did not fail: it closes no gate.
                let failed = !outcome.succeeded()
                    && !matches!(
                        outcome,
                        TenantOutcome::Skipped { .. } | TenantOutcome::Interrupted { .. }
                    );
                if canary && failed {
                    gate.close(SkipReason::CanaryFailed);
                }
                gate.finished(failed);
                tell(TenantResult {
                    tenant: tenant.name.clone(),
                    outcome,
                    elapsed: started.elapsed(),
                })
            },
            |position, reason| {
                tell(TenantResult {
                    tenant: chosen[position].name.clone(),
                    outcome: TenantOutcome::Skipped { reason },
                    elapsed: Duration::ZERO,
                })
            },
        )
    }

    /// Where each selected tenant stands, read from its history without taking any lock
    /// (one round trip per tenant, [`parallel`](Self::parallel) at a time). What
    /// `migrate fleet status` and `migrate fleet plan` print.
    ///
    /// ```
    /// use migrate_runtime::config::ConnectionSettings;
    /// use migrate_runtime::fleet::{Fleet, TenantState, Tenants};
    /// use migrate_runtime::testing::TestServer;
    ///
    /// static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    ///
    /// let database = TestServer::shared().create_database()?;
    /// let settings = ConnectionSettings::from_url(&database.url())?;
    /// let fleet = Fleet::new(&MIGRATIONS[..6], Tenants::schemas(settings, ["acme"])?);
    /// let (_, state) = &fleet.status().tenants[0];
    /// assert!(matches!(state, TenantState::Pending { versions } if versions.len() == 6));
    /// fleet.run()?;
    /// assert!(matches!(fleet.status().tenants[0].1, TenantState::UpToDate));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn status(&self) -> FleetStatus {
        let started = Instant::now();
        let chosen = self.chosen();
        let order: Vec<usize> = (0..chosen.len()).collect();
        let gate = Gate::new(FailurePolicy::Continue { budget: None });
        let states = schedule::run(
            &order,
            self.parallel,
            &gate,
            || None::<Client>,
            |connection, position| {
                apply::state(&self.migrator, &self.tenants, chosen[position], connection)
            },
            |_, _| unreachable!("the status gate never closes"),
        );
        FleetStatus {
            tenants: chosen
                .iter()
                .map(|tenant| tenant.name.clone())
                .zip(states)
                .collect(),
            elapsed: started.elapsed(),
        }
    }
}

/// Puts a stage's results at their tenants' positions.
fn place(slots: &mut [Option<TenantResult>], order: &[usize], results: Vec<TenantResult>) {
    for (&position, result) in order.iter().zip(results) {
        slots[position] = Some(result);
    }
}
