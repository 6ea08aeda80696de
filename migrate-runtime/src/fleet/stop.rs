//! Stopping a fleet run from another thread (a signal handler, an admin endpoint): no tenant
//! starts after the stop, and the statements of the tenants being migrated are cancelled, so
//! each rolls back what it had not committed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::CancelHandle;

/// How often the cancel requests are sent again while tenants are still running: a request
/// that arrives between two statements cancels nothing, and the tenant goes on to the next.
const RESEND: Duration = Duration::from_millis(250);

/// Stops the [`Fleet`](super::Fleet) it came from ([`Fleet::stopper`](super::Fleet::stopper)).
/// Cheap to clone and to send to another thread.
///
/// ```
/// use migrate_runtime::config::ConnectionSettings;
/// use migrate_runtime::fleet::{Fleet, SkipReason, TenantOutcome, Tenants};
///
/// static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/crates/queue/migrations");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// let settings = ConnectionSettings::from_url(&database.url())?;
/// let fleet = Fleet::new(MIGRATIONS, Tenants::schemas(settings, ["acme", "globex"])?);
/// // Stopped before it runs, nothing starts (a Ctrl-C handler calls `stop` mid-run).
/// fleet.stopper().stop();
/// let report = fleet.run()?;
/// assert!(report.tenants.iter().all(|t| matches!(
///     t.outcome,
///     TenantOutcome::Skipped { reason: SkipReason::Interrupted }
/// )));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct FleetStopper(Arc<Shared>);

impl std::fmt::Debug for FleetStopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetStopper")
            .field("stopped", &self.is_stopped())
            .field("running", &self.0.lock().len())
            .finish()
    }
}

#[derive(Default)]
struct Shared {
    stopped: AtomicBool,
    /// The connections of the tenants being migrated now, by registration.
    running: Mutex<HashMap<u64, CancelHandle>>,
    next: AtomicU64,
}

impl FleetStopper {
    /// Stops the run: tenants not started are skipped ([`SkipReason::Interrupted`](super::SkipReason::Interrupted)),
    /// and the running ones are cancelled ([`TenantOutcome::Interrupted`](super::TenantOutcome::Interrupted)).
    /// Returns at once; the run returns its report when the cancelled tenants have rolled back.
    pub fn stop(&self) {
        if self.0.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        let shared = Arc::clone(&self.0);
        let resend = std::thread::Builder::new()
            .name("migrate-fleet-stop".to_owned())
            .spawn(move || loop {
                let handles: Vec<CancelHandle> = shared.lock().values().cloned().collect();
                if handles.is_empty() {
                    return;
                }
                for handle in handles {
                    if let Err(error) = handle.cancel() {
                        log::warn!("cancelling a tenant's statement: {error}");
                    }
                }
                std::thread::sleep(RESEND);
            });
        if let Err(error) = resend {
            log::warn!("cannot start cancelling the fleet's running tenants: {error}");
        }
    }

    /// Whether [`stop`](Self::stop) was called.
    ///
    /// ```
    /// let stopper = migrate_runtime::fleet::FleetStopper::default();
    /// assert!(!stopper.is_stopped());
    /// stopper.stop();
    /// assert!(stopper.is_stopped());
    /// ```
    pub fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::SeqCst)
    }

    /// Registers a tenant's connection while it is migrated: a stop cancels its statements.
    /// `None` when the fleet is already stopped (the tenant must not start).
    pub(crate) fn enter(&self, handle: CancelHandle) -> Option<Running<'_>> {
        let id = self.0.next.fetch_add(1, Ordering::SeqCst);
        self.0.lock().insert(id, handle);
        let running = Running { stopper: self, id };
        // Checked after registering: a stop between the two still cancels this tenant.
        (!self.is_stopped()).then_some(running)
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, CancelHandle>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A tenant being migrated; unregisters its connection when dropped.
pub(crate) struct Running<'s> {
    stopper: &'s FleetStopper,
    id: u64,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.stopper.0.lock().remove(&self.id);
    }
}
