//! Handing out test databases on the persistent server: from a warm pool of clones made ahead
//! of demand (the hand-out is a rename), or by cloning the template when the pool is empty.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::Client;
use postgres_protocol::escape::escape_identifier;

use super::host::Host;
use super::key::TemplateKey;
use super::template::{self, Template};
use super::{off_async, Owner, TestDatabase, TestServerError};
use crate::Migrator;

/// How many clones each template keeps ready on the server (default 8; 0: no pool).
pub(crate) const POOL_SIZE_VARIABLE: &str = "MIGRATE_TEST_POOL_SIZE";
const DEFAULT_POOL_SIZE: usize = 8;

/// How a test database was made.
///
/// ```no_run
/// # static MIGRATIONS: &[migrate_runtime::Migration] = &[];
/// let database = migrate_runtime::testing::migrated_database("app", &migrate_runtime::Migrator::new(MIGRATIONS))?;
/// let hand_out = database.hand_out().expect("from the persistent server");
/// println!("{} in {:?}, from the pool: {}", database.name(), hand_out.elapsed, hand_out.from_pool);
/// # Ok::<(), migrate_runtime::testing::TestServerError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandOut {
    /// The template it was cloned from.
    pub template: String,
    /// Whether this process migrated that template (once per set, server and content).
    pub built_template: bool,
    /// Whether it was a ready clone from the warm pool (renamed), not a clone made on demand.
    pub from_pool: bool,
    /// From the call to the database being there.
    pub elapsed: Duration,
}

/// A database with `migrator`'s migrations applied, on the persistent test server: the one
/// `MIGRATE_TEST_DATABASE_URL` names, else the machine's shared throwaway server (started on
/// first use, reused by later processes and `cargo test` runs, stopped after
/// `MIGRATE_TEST_SERVER_IDLE_MINUTES` idle minutes; see [`stop_shared_server`](super::stop_shared_server)).
///
/// `set` names the migration set (for example `"my-crate:migrations"`): its template is keyed
/// by the migrations' checksums, the history table, environment, target and deploy phase, and
/// the server's major version; it is migrated once, under an advisory lock, whoever asks at the same time,
/// and building a new one drops the set's older templates. Clones are made ahead of demand
/// (`MIGRATE_TEST_POOL_SIZE`, default 8), so handing one out is a rename.
///
/// Dropping the database gives it back: recycled into the pool when what the test wrote can
/// be undone exactly, dropped otherwise (see the testing guide). When the thread is panicking
/// (a failed test) it is kept instead and its password-free URL printed, unless
/// `MIGRATE_TEST_KEEP_FAILED=0`.
///
/// ```no_run
/// static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
///
/// let migrator = migrate_runtime::Migrator::new(MIGRATIONS);
/// let database = migrate_runtime::testing::migrated_database("docs:migrations", &migrator)?;
/// let mut client = database.client()?;
/// # Ok::<(), migrate_runtime::testing::TestServerError>(())
/// ```
pub fn migrated_database(
    set: &str,
    migrator: &Migrator<'_>,
) -> Result<TestDatabase<'static>, TestServerError> {
    let started = Instant::now();
    let host = off_async(Host::get)?;
    let (name, template, from_pool) = off_async(|| hand_out(host, set, migrator))?;
    host.touch();
    Ok(TestDatabase {
        owner: Owner::Host(host),
        name,
        failed: Arc::new(AtomicBool::new(false)),
        hand_out: Some(HandOut {
            template: template.key.template(),
            built_template: template.built_here,
            from_pool,
            elapsed: started.elapsed(),
        }),
    })
}

/// A template's ready clones, topped up by a thread of this process.
pub(super) struct Pool {
    pub(super) template: Template,
    /// This process's finished clones in the janitor's hands, and a signal when one is done
    /// (see [`Pool::returning_one`]):
    /// a hand-out that finds the pool empty waits for them rather than cloning.
    pub(super) returning: (Mutex<usize>, Condvar),
    /// Rung on each hand-out, so that the filler replaces what was taken.
    wake: (Mutex<bool>, Condvar),
}

fn pools() -> &'static Mutex<HashMap<TemplateKey, Arc<Pool>>> {
    static POOLS: OnceLock<Mutex<HashMap<TemplateKey, Arc<Pool>>>> = OnceLock::new();
    POOLS.get_or_init(Mutex::default)
}

/// Administrative connections kept for the next hand-out (connecting costs more than renaming).
fn idle_admins() -> &'static Mutex<Vec<Client>> {
    static IDLE: OnceLock<Mutex<Vec<Client>>> = OnceLock::new();
    IDLE.get_or_init(Mutex::default)
}

/// Takes an idle administrative connection (or opens one), runs `work`, and keeps the
/// connection for the next caller.
pub(super) fn with_admin<T>(
    host: &Host,
    work: impl FnOnce(&mut Client) -> Result<T, TestServerError>,
) -> Result<T, TestServerError> {
    let popped = idle_admins()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop();
    let mut admin = match popped {
        Some(admin) if !admin.is_closed() => admin,
        _ => host.admin()?,
    };
    let result = work(&mut admin);
    idle_admins()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(admin);
    result
}

/// This process's recycling pool whose template is called `template`.
pub(super) fn recycling_pool_named(template: &str) -> Option<Arc<Pool>> {
    pools()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .find(|pool| pool.template.key.template() == template && pool.template.baseline.is_some())
        .cloned()
}

impl Pool {
    /// One of this process's finished clones is in the janitor's hands.
    pub(super) fn returning_one(&self) {
        *self.returning.0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    }

    /// The janitor is done with one of them.
    pub(super) fn returned_one(&self) {
        let (count, signal) = &self.returning;
        let mut count = count.lock().unwrap_or_else(|e| e.into_inner());
        *count = count.saturating_sub(1);
        signal.notify_all();
    }
}

/// Waits until the janitor is done with one of this process's finished clones of `pool`, if
/// it holds any (at most a second). Whether there was one to wait for.
fn await_return(pool: &Pool) -> bool {
    let (count, signal) = &pool.returning;
    let count = count.lock().unwrap_or_else(|e| e.into_inner());
    if *count == 0 {
        return false;
    }
    let before = *count;
    let _ = signal
        .wait_timeout_while(count, Duration::from_secs(1), |now| *now >= before)
        .unwrap_or_else(|e| e.into_inner());
    true
}

/// How many clones of `key` are ready in the pool.
pub(super) fn ready(admin: &mut Client, key: &TemplateKey) -> Result<i64, postgres::Error> {
    Ok(admin
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname LIKE $1",
            &[&like_prefix(&key.pool_prefix())],
        )?
        .get(0))
}

/// [`TemplateKey::new`], remembered: hashing a large set on every hand-out costs more than
/// comparing its versions and checksums (an unoptimised test build hashes slowly).
fn cached_key(set: &str, migrator: &Migrator<'_>, major: u32) -> TemplateKey {
    type Fingerprint = (String, Vec<(i64, crate::Checksum)>, String, u32);
    static KEYS: OnceLock<Mutex<Vec<(Fingerprint, TemplateKey)>>> = OnceLock::new();
    let fingerprint: Fingerprint = (
        set.to_owned(),
        migrator
            .migrations
            .iter()
            .map(|migration| (migration.version(), migration.checksum()))
            .collect(),
        TemplateKey::settings(migrator),
        major,
    );
    let mut keys = KEYS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some((_, key)) = keys.iter().find(|(known, _)| *known == fingerprint) {
        return key.clone();
    }
    let key = TemplateKey::new(set, migrator, major);
    keys.push((fingerprint, key.clone()));
    key
}

fn hand_out(
    host: &'static Host,
    set: &str,
    migrator: &Migrator<'_>,
) -> Result<(String, Template, bool), TestServerError> {
    with_admin(host, |admin| {
        let (major, _) = template::server_facts(admin)?;
        let key = cached_key(set, migrator, major);
        let mut result = take(host, admin, &key, migrator);
        if let Err(TestServerError::Database(error)) = &result {
            if error.code() == Some(&SqlState::UNDEFINED_DATABASE) {
                // A newer set's build dropped this template (another checkout of the project):
                // build it again.
                pools()
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key);
                result = take(host, admin, &key, migrator);
            }
        }
        result
    })
}

fn take(
    host: &'static Host,
    admin: &mut Client,
    key: &TemplateKey,
    migrator: &Migrator<'_>,
) -> Result<(String, Template, bool), TestServerError> {
    let (pool, built_here) = pool_for(host, admin, key, migrator)?;
    let mut template = pool.template.clone();
    template.built_here = built_here;
    let name = key.test_database();
    let mut from_pool = claim(admin, key, &name)?;
    // The pool is empty, but finished clones are on their way back: one is much sooner
    // ready than a new clone (but a janitor that is slow for once must not hold tests up).
    let deadline = Instant::now() + Duration::from_secs(2);
    while !from_pool && Instant::now() < deadline && await_return(&pool) {
        from_pool = claim(admin, key, &name)?;
    }
    if !from_pool {
        admin.batch_execute(&template.clone_sql(&name))?;
    }
    let (woken, signal) = &pool.wake;
    *woken.lock().unwrap_or_else(|e| e.into_inner()) = true;
    signal.notify_one();
    Ok((name, template, from_pool))
}

/// This process's pool for `key`, creating the template (or finding it) and the pool's filler
/// on first use. Whether this call built the template.
fn pool_for(
    host: &'static Host,
    admin: &mut Client,
    key: &TemplateKey,
    migrator: &Migrator<'_>,
) -> Result<(Arc<Pool>, bool), TestServerError> {
    let mut pools = pools().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(pool) = pools.get(key) {
        return Ok((Arc::clone(pool), false));
    }
    // Under the map's lock: this process's other threads wait rather than build twice.
    let template = template::ensure(host, admin, key, migrator)?;
    let built_here = template.built_here;
    let pool = Arc::new(Pool {
        template,
        returning: (Mutex::new(0), Condvar::new()),
        wake: (Mutex::new(true), Condvar::new()),
    });
    pools.insert(key.clone(), Arc::clone(&pool));
    let wanted = size();
    if wanted > 0 {
        let filler = Arc::clone(&pool);
        std::thread::Builder::new()
            .name("migrate-test-pool".to_owned())
            .spawn(move || fill(host, &filler, wanted))
            .map_err(super::io("starting the test database pool's filler"))?;
    }
    Ok((pool, built_here))
}

/// The pool size wanted (`MIGRATE_TEST_POOL_SIZE`).
pub(super) fn size() -> usize {
    std::env::var(POOL_SIZE_VARIABLE)
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(DEFAULT_POOL_SIZE)
}

fn like_prefix(prefix: &str) -> String {
    format!("{}%", prefix.replace('_', "\\_"))
}

/// Renames a ready clone to `name`. Several processes may race for one: the loser's rename
/// finds it gone (or busy) and tries the next.
fn claim(admin: &mut Client, key: &TemplateKey, name: &str) -> Result<bool, TestServerError> {
    let rows = admin.query(
        "SELECT datname FROM pg_database WHERE datname LIKE $1 ORDER BY random()",
        &[&like_prefix(&key.pool_prefix())],
    )?;
    for row in rows {
        let ready: String = row.get(0);
        let renamed = admin.batch_execute(&format!(
            "ALTER DATABASE {} RENAME TO {}",
            escape_identifier(&ready),
            escape_identifier(name)
        ));
        match renamed {
            Ok(()) => return Ok(true),
            Err(error)
                if matches!(
                    error.code(),
                    Some(&SqlState::UNDEFINED_DATABASE | &SqlState::OBJECT_IN_USE)
                ) =>
            {
                continue
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(false)
}

/// The filler: whenever woken (or every few seconds), and if no other process is filling this
/// template's pool, clones it until `wanted` are ready.
fn fill(host: &Host, pool: &Pool, wanted: usize) {
    let key = &pool.template.key;
    let mut admin: Option<Client> = None;
    loop {
        {
            let (woken, signal) = &pool.wake;
            let guard = woken.lock().unwrap_or_else(|e| e.into_inner());
            let (mut guard, _) = signal
                .wait_timeout_while(guard, Duration::from_secs(5), |woken| !*woken)
                .unwrap_or_else(|e| e.into_inner());
            *guard = false;
        }
        let client = match admin.take().filter(|client| !client.is_closed()) {
            Some(client) => Ok(client),
            None => host.admin(),
        };
        let mut client = match client {
            Ok(client) => client,
            Err(error) => {
                log::debug!("test database pool: {error}");
                continue;
            }
        };
        match top_up(&mut client, pool, key, wanted) {
            Ok(()) => {}
            Err(error) if error.code() == Some(&SqlState::UNDEFINED_DATABASE) => {
                log::debug!("test database pool: template {} is gone", key.template());
                return;
            }
            Err(error) => log::debug!("test database pool: {error}"),
        }
        admin = Some(client);
    }
}

fn top_up(
    admin: &mut Client,
    pool: &Pool,
    key: &TemplateKey,
    wanted: usize,
) -> Result<(), postgres::Error> {
    let lock = key.fill_lock();
    let locked: bool = admin
        .query_one("SELECT pg_try_advisory_lock($1)", &[&lock])?
        .get(0);
    if !locked {
        return Ok(());
    }
    let filled = (|| loop {
        // Clones on their way back from finished tests count: they refill the pool sooner.
        let returning = *pool.returning.0.lock().unwrap_or_else(|e| e.into_inner());
        let coming = i64::try_from(returning).unwrap_or(i64::MAX);
        if ready(admin, key)?.saturating_add(coming) >= i64::try_from(wanted).unwrap_or(i64::MAX) {
            return Ok(());
        }
        admin.batch_execute(&pool.template.clone_sql(&key.pool_database()))?;
    })();
    let unlocked = admin.execute("SELECT pg_advisory_unlock($1)", &[&lock]);
    filled?;
    unlocked.map(|_| ())
}
