//! `Migrator::check`: whether a database is ready for this binary, tolerating one that a newer
//! release has already migrated further (a rolling deploy).

use std::collections::BTreeSet;

use postgres::Client;

use crate::history::AppliedMigration;
use crate::plan;
use crate::settings::Settings;
use crate::terms::MigrationStatus;
use crate::{Error, Migration, Migrator, Phase};

/// What [`Migrator::check`] found: whether every migration this binary needs is applied.
///
/// The binary needs its pre-deploy migrations (in its environment, up to its target); its
/// post-deploy ones run after the rollout, so it works without them. Applied versions newer
/// than every migration of the binary are a newer release's: they are listed in
/// [`ahead`](Self::ahead), and do not make the database unready.
///
/// ```
/// use migrate_runtime::testing::TestServer;
/// use migrate_runtime::{Migration, Migrator};
///
/// static OLD: &[Migration] = migrate_macros::embed_migrations!("../tests/fixtures/valid/phases/old");
/// static NEW: &[Migration] = migrate_macros::embed_migrations!("../tests/fixtures/valid/phases/new");
///
/// let database = TestServer::shared().create_database()?;
/// let mut client = database.client()?;
/// assert!(!Migrator::new(NEW).check(&mut client)?.is_ready());
/// Migrator::new(NEW).run(&mut client)?;
/// // The old release still finds what it needs; the new one applied migration 3 beyond it.
/// let old = Migrator::new(OLD).check(&mut client)?;
/// assert!(old.is_ready());
/// assert_eq!(old.ahead[0].version, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Readiness<'m> {
    /// The migrations the binary needs that are not applied (or still running), in order.
    pub missing: Vec<&'m Migration>,
    /// Post-deploy migrations not applied yet; the binary does not need them.
    pub post_deploy_pending: Vec<&'m Migration>,
    /// Applied migrations newer than every migration of the binary (a newer release's).
    pub ahead: Vec<AppliedMigration>,
}

impl Readiness<'_> {
    /// Whether the database has everything the binary needs.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// let readiness = migrate_runtime::Migrator::new(MIGRATIONS).check(&mut client)?;
    /// for migration in &readiness.missing {
    ///     eprintln!("not ready: {} {} is not applied", migration.version(), migration.name());
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_ready(&self) -> bool {
        self.missing.is_empty()
    }
}

impl<'m> Migrator<'m> {
    /// Whether the database is ready for this binary: every migration it needs is applied
    /// (see [`Readiness`]). For readiness probes and for replicas that must not migrate
    /// themselves. One round trip; takes no lock and writes nothing.
    ///
    /// A history this binary cannot trust is an error rather than "not ready": an applied
    /// migration whose file changed ([`Error::ChecksumMismatch`]), an applied version the
    /// binary lacks below its newest migration ([`Error::MissingFromBinary`]), a
    /// no-transaction migration that failed ([`Error::Unfinished`]). A `running` one counts
    /// as missing: a run is busy with it.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// # migrate_runtime::Migrator::new(MIGRATIONS).run(&mut client)?; // another replica migrated it
    /// while !migrate_runtime::Migrator::new(MIGRATIONS).check(&mut client)?.is_ready() {
    ///     std::thread::sleep(std::time::Duration::from_secs(1));
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check(&self, client: &mut Client) -> Result<Readiness<'m>, Error> {
        self.settings.tables.check()?;
        let applied = self.applied(client)?;
        assess(self.migrations, &self.settings, &applied)
    }
}

/// The pure part of [`Migrator::check`].
pub(crate) fn assess<'m>(
    migrations: &'m [Migration],
    settings: &Settings,
    applied: &[AppliedMigration],
) -> Result<Readiness<'m>, Error> {
    let newest = migrations.iter().map(Migration::version).max();
    // Migrations a squash of this binary replaces count as the squash.
    let applied = crate::squashed::reconcile(migrations, applied)?.applied;
    let (ahead, known): (Vec<AppliedMigration>, Vec<AppliedMigration>) = applied
        .iter()
        .cloned()
        .partition(|row| newest.is_none_or(|newest| row.version > newest));
    // A migration still running is not there yet, and judging it is its run's business.
    let settled: Vec<AppliedMigration> = known
        .into_iter()
        .filter(|row| row.status != MigrationStatus::Running)
        .collect();
    plan::check_history(migrations, &settled)?;
    let done: BTreeSet<i64> = settled.iter().map(|row| row.version).collect();
    let mut readiness = Readiness {
        missing: Vec::new(),
        post_deploy_pending: Vec::new(),
        ahead,
    };
    for migration in plan::selected(migrations, settings) {
        if done.contains(&migration.version()) {
            continue;
        }
        if migration.phase() == Phase::PostDeploy && settings.phase == Phase::PreDeploy {
            readiness.post_deploy_pending.push(migration);
        } else {
            readiness.missing.push(migration);
        }
    }
    Ok(readiness)
}
