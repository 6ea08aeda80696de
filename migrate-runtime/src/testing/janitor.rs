//! Taking finished test databases back, in a thread of the test process (the janitor), so
//! that no test waits for it: a passing test's database is recycled into its template's warm
//! pool when what the test wrote can be undone exactly (see [`recycle`]), and dropped
//! otherwise; garbage and finished databases a process left at exit are taken back by the next.

use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use postgres::Client;
use postgres_protocol::escape::{escape_identifier, escape_literal};

use super::host::Host;
use super::key::TemplateKey;
use super::pool::{self, Pool};
use super::recycle;
use super::TestServerError;

/// Takes a passing test's database back without making the test wait: it is marked finished
/// and handed to this process's janitor thread, which returns it to its template's warm pool
/// when what the test wrote can be undone exactly (see [`recycle`]), and drops it otherwise.
/// A finished database left behind by a process that exited first is taken back by the next
/// process's janitor. Without a pool (or a baseline) the database is renamed out of the way
/// (`mtg_`, garbage) at once and dropped by the janitor.
pub(crate) fn discard(
    host: &'static Host,
    name: &str,
    template: Option<&str>,
) -> Result<(), TestServerError> {
    let recyclable = template
        .and_then(pool::recycling_pool_named)
        .filter(|_| pool::size() > 0);
    if let Some(pool) = recyclable {
        janitor(host);
        pool::with_admin(host, |admin| {
            Ok(admin.batch_execute(&format!(
                "COMMENT ON DATABASE {} IS {}",
                escape_identifier(name),
                escape_literal(&recycle::finished_comment(&pool.template.key.template()))
            ))?)
        })?;
        pool.returning_one();
        send(
            host,
            Finished::Recycle {
                name: name.to_owned(),
                pool,
                counted: true,
            },
        );
        return Ok(());
    }
    let garbage = format!("mtg_{:016x}", fastrand::u64(..));
    let renamed = pool::with_admin(host, |admin| {
        Ok(admin.batch_execute(&format!(
            "ALTER DATABASE {} RENAME TO {}",
            escape_identifier(name),
            escape_identifier(&garbage)
        )))
    })?;
    match renamed {
        Ok(()) => {
            send(host, Finished::Drop(garbage));
            Ok(())
        }
        Err(_) => pool::with_admin(host, |admin| drop_now(admin, name)),
    }
}

/// A finished database for the janitor.
enum Finished {
    /// Renamed to garbage: drop it.
    Drop(String),
    /// A passing test's database, marked finished: recycle it into `pool`, or drop it.
    /// `counted`: one of this process's, counted in the pool's `returning`.
    Recycle {
        name: String,
        pool: Arc<Pool>,
        counted: bool,
    },
}

fn send(host: &'static Host, finished: Finished) {
    let sent = janitor(host)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send(finished);
    if sent.is_err() {
        log::debug!("the test database janitor has stopped");
    }
}

fn drop_now(admin: &mut Client, name: &str) -> Result<(), TestServerError> {
    Ok(admin.batch_execute(&format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        escape_identifier(name)
    ))?)
}

/// The channel to this process's janitor thread, started on first use by taking back every
/// garbage or finished database on the server (left by processes that exited first): a
/// finished clone of one of this process's templates is recycled, any other dropped.
fn janitor(host: &'static Host) -> &'static Mutex<Sender<Finished>> {
    static JANITOR: OnceLock<Mutex<Sender<Finished>>> = OnceLock::new();
    JANITOR.get_or_init(|| {
        let (send, receive) = channel::<Finished>();
        // Listed here, before this process has marked anything finished (`discard` starts
        // the janitor first): what is found was left by another process.
        let left: Vec<Finished> = host
            .admin()
            .and_then(|mut admin| {
                Ok(admin.query(
                    "SELECT datname::text, shobj_description(oid, 'pg_database') FROM pg_database \
                      WHERE datname LIKE 'mtg\\_%' \
                         OR (datname LIKE 'mtd\\_%' AND shobj_description(oid, 'pg_database') LIKE $1)",
                    &[&recycle::finished_pattern()],
                )?)
            })
            .map(|rows| rows.iter().map(|row| left_behind(row.get(0), row.get(1))).collect())
            .unwrap_or_default();
        let spawned = std::thread::Builder::new()
            .name("migrate-test-janitor".to_owned())
            .spawn(move || {
                let Ok(mut admin) = host.admin() else { return };
                for finished in left.into_iter().chain(receive) {
                    let (name, outcome) = match finished {
                        Finished::Drop(name) => {
                            let dropped = drop_now(&mut admin, &name);
                            (name, dropped)
                        }
                        Finished::Recycle {
                            name,
                            pool,
                            counted,
                        } => {
                            let outcome = recycle_or_drop(host, &mut admin, &name, &pool);
                            if counted {
                                pool.returned_one();
                            }
                            (name, outcome)
                        }
                    };
                    if let Err(error) = outcome {
                        log::debug!("taking back the test database {name}: {error}");
                    }
                }
            });
        if let Err(error) = spawned {
            log::debug!("starting the test database janitor: {error}");
        }
        Mutex::new(send)
    })
}

/// What to do with a database a process left behind: recycle a finished clone of one of this
/// process's templates, drop anything else.
fn left_behind(name: String, comment: Option<String>) -> Finished {
    let pool = comment
        .as_deref()
        .and_then(recycle::finished_template)
        .and_then(pool::recycling_pool_named);
    match pool {
        Some(pool) => Finished::Recycle {
            name,
            pool,
            counted: false,
        },
        None => Finished::Drop(name),
    }
}

/// Returns the finished database `name` to `pool` if the test's writes can be undone
/// and the pool wants it; drops it otherwise.
fn recycle_or_drop(
    host: &Host,
    admin: &mut Client,
    name: &str,
    pool: &Pool,
) -> Result<(), TestServerError> {
    let key = &pool.template.key;
    let recycled = match &pool.template.baseline {
        Some(baseline) => reset(host, admin, name, key, baseline).unwrap_or_else(|error| {
            // A server that refuses part of it (`pg_stat_reset` needs a superuser or a
            // grant, for one) gets its databases dropped, never left behind.
            log::debug!("test database {name} is not recycled: {error}");
            false
        }),
        None => false,
    };
    if !recycled {
        return drop_now(admin, name);
    }
    // Not while a new template of the set is built (its build drops the older contents'
    // pools): the build holds the set's lock, and the clone is then dropped instead.
    let lock = key.build_lock();
    let locked = admin
        .query_one("SELECT pg_try_advisory_lock_shared($1)", &[&lock])
        .is_ok_and(|row| row.get(0));
    let returned = locked && {
        let returned = return_to_pool(admin, name, key);
        let unlocked = admin.execute("SELECT pg_advisory_unlock_shared($1)", &[&lock]);
        returned.is_ok_and(|done| done) && unlocked.is_ok()
    };
    if returned {
        Ok(())
    } else {
        drop_now(admin, name)
    }
}

/// Undoes what the test did in the finished database `name`, if that can be done exactly and
/// the pool wants it back. Whether it did (and the database is alone again).
fn reset(
    host: &Host,
    admin: &mut Client,
    name: &str,
    key: &TemplateKey,
    baseline: &recycle::Baseline,
) -> Result<bool, TestServerError> {
    let wanted = i64::try_from(pool::size().saturating_mul(2)).unwrap_or(i64::MAX);
    if !alone(admin, name)? || pool::ready(admin, key)? >= wanted {
        return Ok(false);
    }
    // Most tests only read, or write only rows: the first needs no session in the database
    // at all, the second one to empty what was written.
    let untouched = recycle::untouched(admin, name)?;
    if untouched && baseline.untouched_is_enough() {
        return Ok(true);
    }
    let mut database = host.connect(name)?;
    let reset = recycle::reset(&mut database, baseline, untouched)?;
    database.close()?;
    match reset {
        Ok(()) => alone(admin, name),
        Err(reason) => {
            log::debug!("test database {name} is not recycled: {reason:?}");
            Ok(false)
        }
    }
}

/// Renames a reset clone into `key`'s pool, if its template is still there. Whether it did.
fn return_to_pool(
    admin: &mut Client,
    name: &str,
    key: &TemplateKey,
) -> Result<bool, TestServerError> {
    let template = admin.query_opt(
        "SELECT 1 FROM pg_database WHERE datname = $1",
        &[&key.template()],
    )?;
    if template.is_none() {
        return Ok(false);
    }
    // One transaction: the finished mark goes only with the rename.
    let renamed = admin.batch_execute(&format!(
        "COMMENT ON DATABASE {name} IS NULL; ALTER DATABASE {name} RENAME TO {}",
        escape_identifier(&key.pool_database()),
        name = escape_identifier(name),
    ));
    Ok(renamed.is_ok())
}

/// Waits (briefly) until no session is in `name`: the test's connections were closed, but
/// their server processes exit on their own time, and renaming a database in use waits in
/// steps of 100 ms. False when a session stays (a connection the test leaked).
fn alone(admin: &mut Client, name: &str) -> Result<bool, TestServerError> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let sessions: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                &[&name],
            )?
            .get(0);
        if sessions == 0 {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
