//! The migration lock: a PostgreSQL advisory lock whose key is derived from the history
//! table, so two applications with different history tables never block each other.

use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use postgres::{Client, SimpleQueryMessage};
use sha2::{Digest, Sha256};

use crate::history::{self, AppliedMigration, HistoryTables};
use crate::Error;

/// How the migration lock is held.
///
/// ```
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let mut client = database.client()?;
/// use migrate_runtime::{LockScope, Migrator};
///
/// assert_eq!(LockScope::default(), LockScope::Session);
/// // Behind PgBouncer in transaction pooling mode:
/// let migrator = Migrator::new(MIGRATIONS).lock_scope(LockScope::Transaction);
/// assert_eq!(migrator.run(&mut client)?.applied.len(), 10);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum LockScope {
    /// One session-level advisory lock for the whole run (the default). Everything the run
    /// does, including no-transaction migrations, is exclusive.
    #[default]
    #[cfg_attr(
        feature = "cli",
        value(help = "A session-level advisory lock held for the whole run.")
    )]
    Session,
    /// For connection poolers in transaction mode (PgBouncer `pool_mode = transaction`), where
    /// a session lock could be taken on one server connection and released on another: every
    /// transaction the run commits takes a transaction-level advisory lock first, and history
    /// is re-checked inside it. A no-transaction migration is claimed by a `running` row under
    /// that lock; a concurrent run that finds it `running` waits (up to the lock wait) for it
    /// to become `applied`, and refuses if it does not.
    #[cfg_attr(
        feature = "cli",
        value(
            help = "A transaction-level advisory lock in every transaction (connection poolers)."
        )
    )]
    Transaction,
}

/// The advisory lock key for a history table: the first 8 bytes of a SHA-256 of its name.
pub(crate) fn key(tables: &HistoryTables) -> i64 {
    let digest = Sha256::digest(format!("migrate-runtime lock {}", tables.migrations()));
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// Statements that take the transaction-level lock, waiting at most `wait`, without changing
/// `lock_timeout` for the migration's own statements. Must run inside a transaction.
///
/// A session-level lock on this server session can only be one a session-scoped run left
/// behind a pooler (its owner moved on to other server sessions and could not release it
/// here): it is released first, or it would block every transaction-scoped run.
pub(crate) fn transaction_lock_sql(key: i64, wait: Duration) -> String {
    format!(
        "DO $migrate$ BEGIN IF {} THEN WHILE pg_advisory_unlock({key}) LOOP NULL; END LOOP; END IF; END $migrate$;\n\
         SELECT set_config('migrate.lock_timeout', current_setting('lock_timeout'), true);\n\
         SET LOCAL lock_timeout = '{}ms';\n\
         SELECT pg_advisory_xact_lock({key});\n\
         SELECT set_config('lock_timeout', current_setting('migrate.lock_timeout'), true);\n",
        held_here(key),
        wait.as_millis().max(1)
    )
}

/// `BEGIN`, and behind a pooler ([`LockScope::Transaction`]) the transaction's migration lock.
pub(crate) fn begin_sql(tables: &HistoryTables, scope: LockScope, wait: Duration) -> String {
    match scope {
        LockScope::Session => "BEGIN;\n".to_owned(),
        LockScope::Transaction => format!("BEGIN;\n{}", transaction_lock_sql(key(tables), wait)),
    }
}

/// A held session lock; dropping it releases the lock, on every path including panics.
pub(crate) struct SessionLock<'c> {
    client: &'c mut Client,
    key: Option<i64>,
}

impl Deref for SessionLock<'_> {
    type Target = Client;

    fn deref(&self) -> &Client {
        self.client
    }
}

impl DerefMut for SessionLock<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client
    }
}

impl Drop for SessionLock<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            // A broken connection has already lost the lock with its session.
            if let Err(error) = self
                .client
                .simple_query(&format!("SELECT pg_advisory_unlock({key})"))
            {
                log::debug!("releasing the migration lock: {error}");
            }
        }
    }
}

/// Takes the lock for `tables` (session or transaction scope), creates the history tables if
/// needed and reads them, all in one round trip when nobody else holds the lock. With
/// [`LockScope::Transaction`] the returned guard holds nothing: the lock ended with that
/// transaction.
///
/// The session lock is waited for by trying again, not by a blocking `pg_advisory_lock`: a
/// session blocked inside a statement keeps a snapshot, and `CREATE INDEX CONCURRENTLY` in
/// the holder's no-transaction migration waits for every older snapshot to go away, which
/// would be a deadlock between the two.
pub(crate) fn acquire<'c>(
    client: &'c mut Client,
    tables: &HistoryTables,
    scope: LockScope,
    wait: Duration,
) -> Result<(SessionLock<'c>, Vec<AppliedMigration>), Error> {
    tables.check()?;
    let key = key(tables);
    // A session that already holds the lock before taking it can only be another client's,
    // handed to us by a transaction pooler: refuse rather than share it.
    let lock = match scope {
        LockScope::Session => format!(
            "DO $migrate$ BEGIN IF {held} THEN \
             RAISE EXCEPTION USING ERRCODE = '{NOT_OURS}', MESSAGE = 'this server session already holds the migration lock: it is shared through a transaction pooler'; \
             END IF; IF NOT pg_try_advisory_lock({key}) THEN \
             RAISE EXCEPTION USING ERRCODE = '{BUSY}', MESSAGE = 'the migration lock is held by another session'; \
             END IF; END $migrate$;\n",
            held = held_here(key),
        ),
        LockScope::Transaction => transaction_lock_sql(key, wait),
    };
    let batch = format!(
        "BEGIN;\n{lock}{}{};\nCOMMIT;",
        tables.create_sql(),
        tables.select_sql()
    );
    let started = Instant::now();
    let mut pause = Duration::from_millis(2);
    let result = loop {
        match client.simple_query(&batch) {
            Err(error) if error.code().is_some_and(|c| c.code() == BUSY) => {
                // Nothing was granted, so there is nothing to release.
                let _ = client.simple_query("ROLLBACK");
                if started.elapsed() >= wait {
                    let (holder_pid, holder_application) = holder(client, key);
                    return Err(Error::LockTimeout {
                        table: tables.display(),
                        waited: started.elapsed(),
                        holder_pid,
                        holder_application,
                    });
                }
                std::thread::sleep(pause.min(wait.saturating_sub(started.elapsed())));
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            result => break result,
        }
    };
    let mut guard = SessionLock {
        client,
        key: (scope == LockScope::Session).then_some(key),
    };
    match result {
        Ok(messages) => Ok((guard, history::parse_rows(&messages))),
        Err(error) if is_not_ours(&error) => {
            // Nothing was granted to us: nothing to release.
            guard.key = None;
            let _ = guard.simple_query("ROLLBACK");
            Err(Error::BehindTransactionPooler)
        }
        Err(error) => {
            let _ = guard.simple_query("ROLLBACK");
            Err(history::foreign::read_failed(
                &mut guard,
                tables,
                "taking the migration lock and creating the history tables",
                error,
            ))
        }
    }
}

/// Our own SQLSTATE for "this server session is not the one that took the session lock".
const NOT_OURS: &str = "MG001";

/// Whether `error` says the server session running a message does not hold our session lock
/// (or held it before we took it): a transaction pooler moves us between server sessions.
pub(crate) fn is_not_ours(error: &postgres::Error) -> bool {
    error.code().is_some_and(|code| code.code() == NOT_OURS)
}

/// `EXISTS (...)`: whether the server session running it holds the session lock `key`.
fn held_here(key: i64) -> String {
    let key = key as u64;
    format!(
        "EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid() \
         AND classid = {} AND objid = {} AND objsubid = 1)",
        key >> 32,
        key & 0xffff_ffff
    )
}

/// A statement that fails unless the server session running it holds our session lock. Each
/// message of a session-scoped run starts with it: behind a transaction pooler consecutive
/// messages can land on different server sessions, and the lock would protect nothing. (One
/// message always runs on one server session.)
pub(crate) fn still_held_sql(tables: &HistoryTables, scope: LockScope) -> String {
    match scope {
        LockScope::Transaction => String::new(),
        LockScope::Session => format!(
            "DO $migrate$ BEGIN IF NOT {} THEN \
             RAISE EXCEPTION USING ERRCODE = '{NOT_OURS}', MESSAGE = 'this server session does not hold the migration lock: a transaction pooler moved the run to another one'; \
             END IF; END $migrate$;\n",
            held_here(key(tables))
        ),
    }
}

/// SQLSTATE `lock_not_available`: the lock is busy (session scope), or the transaction lock
/// was not granted within the lock wait (transaction scope, through `lock_timeout`).
const BUSY: &str = "55P03";

/// The session holding the advisory lock `key` in this database (advisory locks are per
/// database, so a session migrating another database on the same server is not it).
fn holder(client: &mut Client, key: i64) -> (Option<i32>, Option<String>) {
    let key = key as u64;
    let query = format!(
        "SELECT a.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.classid = {} AND l.objid = {} AND l.objsubid = 1 \
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) LIMIT 1",
        key >> 32,
        key & 0xffff_ffff
    );
    let row = client.simple_query(&query).ok().and_then(|messages| {
        messages.into_iter().find_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
    });
    match row {
        Some(row) => (
            row.get(0).and_then(|pid| pid.parse().ok()),
            row.get(1).map(str::to_owned),
        ),
        None => (None, None),
    }
}
