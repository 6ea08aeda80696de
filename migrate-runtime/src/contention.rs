//! Living with the application's traffic: the timeouts every migration transaction runs
//! with, the retry of a unit that could not get its locks in time, and the sessions that
//! stood in its way.
//!
//! Why: an `ALTER TABLE` waiting behind a long reader sits in the lock queue, and every later
//! query on that table queues behind the `ALTER`. A short `lock_timeout` bounds that stall;
//! the whole transaction is then rolled back and tried again after a pause, within a budget.

use std::fmt;
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::{Client, SimpleQueryMessage};

use crate::history::literal;
use crate::migration::LockTimeout;
use crate::source::format_duration;
use crate::source::lexer::{Lexer, TokenKind};

/// The default `lock_timeout` of a migration's transaction: long enough for the locks of a
/// busy OLTP table (held for milliseconds) to come free, short enough that the queries queued
/// behind a waiting `ALTER` stall for at most half a second.
///
/// ```
/// // 001_settings_seen.sql records the `lock_timeout` its transaction sees.
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/valid/lock_timeouts");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let mut client = database.client()?;
/// assert_eq!(migrate_runtime::DEFAULT_LOCK_TIMEOUT, std::time::Duration::from_millis(500));
/// migrate_runtime::Migrator::new(&MIGRATIONS[..1]).run(&mut client)?;
/// let seen: String = client.query_one("SELECT lock_timeout FROM settings_seen", &[])?.get(0);
/// assert_eq!(seen, "500ms");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_millis(500);

/// The default time one unit may spend retrying before the run gives up.
///
/// ```
/// use std::time::Duration;
///
/// assert_eq!(migrate_runtime::DEFAULT_RETRY_BUDGET, Duration::from_secs(60));
/// // A deployment that may wait longer for a busy table:
/// # static MIGRATIONS: &[migrate_runtime::Migration] = &[];
/// let migrator = migrate_runtime::Migrator::new(MIGRATIONS)
///     .lock_retry_budget(migrate_runtime::DEFAULT_RETRY_BUDGET * 5);
/// # let _ = migrator;
/// ```
pub const DEFAULT_RETRY_BUDGET: Duration = Duration::from_secs(60);

/// How a run retries a unit that could not get its locks in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// All attempts of one unit, pauses included, take at most this long.
    pub(crate) budget: Duration,
    /// At most this many attempts (`None`: as many as the budget allows).
    pub(crate) max_attempts: Option<u32>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            budget: DEFAULT_RETRY_BUDGET,
            max_attempts: None,
        }
    }
}

/// Whether `error` means "try the same transaction again later": a lock not granted within
/// `lock_timeout` (or `NOWAIT`), a deadlock, a serialization failure.
pub(crate) fn is_contention(error: &postgres::Error) -> bool {
    error.code().is_some_and(|code| {
        *code == SqlState::LOCK_NOT_AVAILABLE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

/// The attempts of one unit so far.
#[derive(Debug)]
pub(crate) struct Attempts {
    policy: RetryPolicy,
    started: Instant,
    /// Attempts that ended on contention.
    lost: u32,
    pause: Duration,
}

impl Attempts {
    pub(crate) fn new(policy: RetryPolicy) -> Self {
        Attempts {
            policy,
            started: Instant::now(),
            lost: 0,
            pause: Duration::from_millis(100),
        }
    }

    /// An attempt ended on contention: the pause before the next one, or `None` when the
    /// budget (time or attempts) does not allow another.
    pub(crate) fn lost(&mut self) -> Option<Duration> {
        self.lost += 1;
        let attempts = self.lost + 1;
        if self.policy.max_attempts.is_some_and(|max| attempts > max) {
            return None;
        }
        // Full jitter in [pause / 2, pause]: two runners (or a runner and a retrying
        // application) that collided do not collide again in step.
        let half = self.pause / 2;
        let pause = half + half.mul_f64(fastrand::f64());
        if self.started.elapsed() + pause >= self.policy.budget {
            return None;
        }
        self.pause = (self.pause * 2).min(Duration::from_secs(2));
        Some(pause)
    }

    /// How many attempts ended on contention.
    pub(crate) fn lost_count(&self) -> u32 {
        self.lost
    }

    /// Time since the first attempt started.
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The action log's note for a unit that succeeded after lost attempts.
    pub(crate) fn note(&self) -> Option<String> {
        (self.lost > 0).then(|| {
            format!(
                "applied on attempt {}: {} earlier attempt(s) could not get a lock in time and were rolled back",
                self.lost + 1,
                self.lost
            )
        })
    }
}

/// The statements that set a migration transaction's timeouts (`SET LOCAL`, so they end with
/// the transaction and the session keeps its own values).
pub(crate) fn set_local_sql(
    lock_timeout: Option<LockTimeout>,
    statement_timeout: Option<Duration>,
) -> String {
    let mut sql = String::new();
    if let Some(timeout) = lock_timeout {
        sql.push_str(&format!(
            "SET LOCAL lock_timeout = '{}';\n",
            lock_timeout_setting(timeout)
        ));
    }
    if let Some(timeout) = statement_timeout {
        sql.push_str(&format!(
            "SET LOCAL statement_timeout = '{}';\n",
            milliseconds(timeout)
        ));
    }
    sql
}

/// The value for PostgreSQL's `lock_timeout` setting (here, not on `LockTimeout`, so that
/// the file format's types know nothing of the runtime).
pub(crate) fn lock_timeout_setting(timeout: LockTimeout) -> String {
    match timeout {
        LockTimeout::Off => "0".to_owned(),
        LockTimeout::After(limit) => milliseconds(limit),
    }
}

/// A positive time limit as a PostgreSQL setting value (`0` would mean no limit).
pub(crate) fn milliseconds(limit: Duration) -> String {
    format!("{}ms", limit.as_millis().max(1))
}

/// A session that held a lock on a table the blocked migration names.
///
/// ```
/// use migrate_runtime::{Error, Migrator};
/// use std::time::Duration;
///
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let mut client = database.client()?;
/// # Migrator::new(&MIGRATIONS[..1]).run(&mut client)?;
/// // A session keeps `users` locked; migration 2 references it.
/// let mut other = database.client()?;
/// other.batch_execute("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE")?;
///
/// let migrator = Migrator::new(&MIGRATIONS[..2])
///     .lock_timeout(Some(Duration::from_millis(100)))
///     .lock_attempts(1);
/// let Err(Error::LockNotAvailable(contention)) = migrator.run(&mut client) else {
///     panic!("migration 2 waits for `users`");
/// };
/// let blocker = &contention.blockers[0];
/// eprintln!("{blocker}"); // pid ... holds AccessExclusiveLock on public.users: LOCK TABLE ...
/// assert_eq!(blocker.mode, "AccessExclusiveLock");
/// assert_eq!(blocker.state, "idle in transaction");
/// assert!(blocker.table.contains("users"), "{blocker}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Blocker {
    /// Its server process id (`pg_terminate_backend(pid)` ends it).
    pub pid: i32,
    /// Its `application_name`.
    pub application_name: String,
    /// The role it is connected as.
    pub user: String,
    /// `active`, `idle in transaction`, ...
    pub state: String,
    /// How long its transaction (or, outside one, its query) has been running.
    pub held_for: Duration,
    /// The table, and the lock mode it holds there.
    pub table: String,
    /// The lock mode (`AccessShareLock`, ...).
    pub mode: String,
    /// The start of its current (or last) query.
    pub query: String,
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pid {} (application `{}`, user {}, {}, for {}) holds {} on {}: {}",
            self.pid,
            self.application_name,
            self.user,
            self.state,
            format_duration(Duration::from_millis(self.held_for.as_millis() as u64)),
            self.mode,
            self.table,
            self.query
        )
    }
}

/// Sessions other than ours that hold locks on the tables `sql` names, the longest-running
/// first. Best effort: a blocker that went away in between is not found.
pub(crate) fn blockers(client: &mut Client, sql: &[&str]) -> Vec<Blocker> {
    let names = named_relations(sql);
    if names.is_empty() {
        return Vec::new();
    }
    let list = names
        .iter()
        .map(|name| literal(name))
        .collect::<Vec<_>>()
        .join(", ");
    let query = format!(
        "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''), coalesce(a.state, ''), \
         (extract(epoch FROM clock_timestamp() - coalesce(a.xact_start, a.query_start)) * 1000)::bigint, \
         n.nspname || '.' || c.relname, l.mode, left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 120) \
         FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'relation' AND l.granted AND l.pid <> pg_backend_pid() \
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND c.relname IN ({list}) \
         ORDER BY coalesce(a.xact_start, a.query_start) NULLS LAST, a.pid LIMIT 5"
    );
    let Ok(messages) = client.simple_query(&query) else {
        return Vec::new();
    };
    messages
        .iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some(Blocker {
                pid: row.get(0)?.parse().ok()?,
                application_name: row.get(1)?.to_owned(),
                user: row.get(2)?.to_owned(),
                state: row.get(3)?.to_owned(),
                held_for: Duration::from_millis(row.get(4)?.parse::<i64>().ok()?.max(0) as u64),
                table: row.get(5)?.to_owned(),
                mode: row.get(6)?.to_owned(),
                query: row.get(7)?.to_owned(),
            }),
            _ => None,
        })
        .collect()
}

/// The words and quoted identifiers of `sql` that could name a table, as PostgreSQL folds
/// them (unquoted lowercased), without duplicates.
fn named_relations(sql: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for text in sql {
        for token in Lexer::new(text) {
            let name = match token.kind {
                TokenKind::Word => token.text.to_ascii_lowercase(),
                TokenKind::QuotedIdentifier if token.text.starts_with('"') => {
                    token.text[1..token.text.len() - 1].replace("\"\"", "\"")
                }
                _ => continue,
            };
            if !names.contains(&name) && names.len() < 1_000 {
                names.push(name);
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_like_the_server() {
        assert_eq!(
            named_relations(&["ALTER TABLE Orders ADD COLUMN \"Note\" text; -- users\n"]),
            ["alter", "table", "orders", "add", "column", "Note", "text"]
        );
    }

    #[test]
    fn attempts_stop_at_the_budget_or_the_count() {
        let mut counted = Attempts::new(RetryPolicy {
            budget: Duration::from_secs(600),
            max_attempts: Some(3),
        });
        assert!(counted.lost().is_some());
        assert!(counted.lost().is_some());
        assert_eq!(counted.lost(), None, "a fourth attempt is over the count");
        assert_eq!(counted.lost_count(), 3);

        let mut timed = Attempts::new(RetryPolicy {
            budget: Duration::from_millis(10),
            max_attempts: None,
        });
        assert_eq!(
            timed.lost(),
            None,
            "the first pause alone is over the budget"
        );
    }

    #[test]
    fn pauses_grow_and_stay_bounded() {
        let mut attempts = Attempts::new(RetryPolicy {
            budget: Duration::from_secs(3600),
            max_attempts: None,
        });
        let pauses: Vec<Duration> = (0..10).map(|_| attempts.lost().unwrap()).collect();
        assert!(pauses[0] >= Duration::from_millis(50) && pauses[0] <= Duration::from_millis(100));
        assert!(pauses.iter().all(|p| *p <= Duration::from_secs(2)));
        assert!(pauses[9] >= Duration::from_secs(1));
        assert_eq!(
            attempts.note().as_deref(),
            Some("applied on attempt 11: 10 earlier attempt(s) could not get a lock in time and were rolled back")
        );
    }

    #[test]
    fn timeouts_are_set_for_the_transaction_only() {
        assert_eq!(set_local_sql(None, None), "");
        assert_eq!(
            set_local_sql(
                Some(LockTimeout::After(Duration::from_millis(500))),
                Some(Duration::from_secs(30))
            ),
            "SET LOCAL lock_timeout = '500ms';\nSET LOCAL statement_timeout = '30000ms';\n"
        );
        assert_eq!(
            set_local_sql(Some(LockTimeout::Off), None),
            "SET LOCAL lock_timeout = '0';\n"
        );
    }
}
