//! A live database with traffic: a migration that cannot get its table lock in time gives
//! up quickly (so the application's queries do not queue behind it), is rolled back and
//! retried, and when the budget runs out the error names the session in the way. Against a
//! real PostgreSQL 15, with real sessions holding the locks.

use std::thread;
use std::time::{Duration, Instant};

use migrate_runtime::testing::{TestDatabase, TestServer};
use migrate_runtime::{Error, LockContention, LockTimeout, Migration, Migrator};
use migrate_tests::{migrations, scalar};
use postgres::error::SqlState;
use postgres::{Client, NoTls};

static LOCK_TIMEOUTS: &[Migration] =
    migrate_macros::embed_migrations!("fixtures/valid/lock_timeouts");

const SHORT: Duration = Duration::from_millis(100);

/// A database where migration 1 created `orders` with a row; the returned set adds migration
/// 2, `2_add_note`, whose SQL is `second`.
fn orders(second: &str) -> (TestDatabase<'static>, Client, Vec<Migration>) {
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    let first = (
        "001_orders.sql",
        "CREATE TABLE orders (id int PRIMARY KEY);\nINSERT INTO orders VALUES (1);\n",
    );
    Migrator::new(&migrations(&[first]))
        .run(&mut client)
        .unwrap();
    let set = migrations(&[first, ("002_add_note.sql", second)]);
    (database, client, set)
}

/// A session named `application` that reads `orders` in a transaction it keeps open: it
/// holds ACCESS SHARE on the table until it ends, as a long report (or `pg_dump`) does.
fn reader(database: &TestDatabase<'_>, application: &str) -> (Client, i32) {
    let mut reader = database
        .config()
        .application_name(application)
        .connect(NoTls)
        .unwrap();
    let pid = scalar(&mut reader, "SELECT pg_backend_pid()") as i32;
    reader
        .batch_execute("BEGIN; SELECT count(*) FROM orders;")
        .unwrap();
    (reader, pid)
}

/// `action version status [note]` rows of the action log for version 2.
fn actions_of_2(client: &mut Client) -> Vec<String> {
    client
        .query(
            "SELECT action || ' ' || status || coalesce(' ' || note, '') FROM schema_migrations_history WHERE version = 2 ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

fn has_note_column(client: &mut Client) -> bool {
    scalar(
        client,
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'note'",
    ) == 1
}

fn contention(error: &Error) -> &LockContention {
    match error {
        Error::LockNotAvailable(contention) => contention,
        other => panic!("expected lock contention, got {}", other.render()),
    }
}

#[test]
fn a_blocked_alter_is_retried_and_applied_once_after_the_reader_ends() {
    let (database, mut client, set) = orders("ALTER TABLE orders ADD COLUMN note text;\n");
    let (mut reader, _) = reader(&database, "report");
    let release = thread::spawn(move || {
        thread::sleep(Duration::from_millis(1_200));
        reader.batch_execute("COMMIT").unwrap();
    });
    let started = Instant::now();
    let waits = std::sync::atomic::AtomicU32::new(0);
    let count_waits = |progress: migrate_runtime::Progress<'_>| {
        if let migrate_runtime::Progress::Waiting(waiting) = progress {
            assert_eq!(waiting.during, "applying migration 2 (add_note)");
            waits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    };
    let report = Migrator::new(&set)
        .lock_timeout(Some(SHORT))
        .on_progress(&count_waits)
        .run(&mut client)
        .unwrap();
    release.join().unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(1_200),
        "it applied while the reader held the table"
    );
    assert_eq!(report.applied.len(), 1);
    assert!(has_note_column(&mut client));
    let actions = actions_of_2(&mut client);
    assert_eq!(
        actions.len(),
        1,
        "one action, no failed attempt recorded: {actions:?}"
    );
    assert!(
        actions[0].starts_with("apply success applied on attempt "),
        "{actions:?}"
    );
    let attempt: u32 = actions[0]["apply success applied on attempt ".len()..]
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(attempt > 1, "{actions:?}");
    assert_eq!(
        waits.load(std::sync::atomic::Ordering::Relaxed),
        attempt - 1,
        "every retry was told to the observer"
    );
}

#[test]
fn a_blocked_statement_outside_a_transaction_is_retried_on_its_own() {
    let (database, mut client, set) = orders(
        "-- migrate:no-transaction\nCREATE TABLE notes (id int);\nALTER TABLE orders ADD COLUMN note text;\n",
    );
    let (mut reader, _) = reader(&database, "report");
    let release = thread::spawn(move || {
        thread::sleep(Duration::from_millis(800));
        reader.batch_execute("COMMIT").unwrap();
    });
    Migrator::new(&set)
        .lock_timeout(Some(SHORT))
        .run(&mut client)
        .unwrap();
    release.join().unwrap();
    assert!(has_note_column(&mut client));
    assert_eq!(
        scalar(
            &mut client,
            "SELECT count(*) FROM schema_migrations WHERE version = 2 AND status = 'applied'"
        ),
        1
    );
    let actions = actions_of_2(&mut client);
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert!(
        actions[0].starts_with("apply success applied on attempt "),
        "{actions:?}"
    );
}

#[test]
fn when_the_budget_runs_out_the_error_names_the_blocker_and_nothing_is_applied() {
    let (database, mut client, set) = orders("ALTER TABLE orders ADD COLUMN note text;\n");
    let (_reader, reader_pid) = reader(&database, "nightly-report");
    let error = Migrator::new(&set)
        .lock_timeout(Some(SHORT))
        .lock_retry_budget(Duration::from_millis(1_500))
        .run(&mut client)
        .unwrap_err();
    let found = contention(&error);
    assert!(found.attempts >= 3, "{found:?}");
    assert_eq!(error.sqlstate(), Some(SqlState::LOCK_NOT_AVAILABLE));
    let blocker = &found.blockers[0];
    assert_eq!(blocker.pid, reader_pid);
    assert_eq!(blocker.application_name, "nightly-report");
    assert_eq!(blocker.state, "idle in transaction");
    assert_eq!(blocker.mode, "AccessShareLock");
    assert_eq!(blocker.table, "public.orders");
    assert!(
        blocker.query.contains("SELECT count(*) FROM orders"),
        "{blocker:?}"
    );

    let text = error.render().to_string();
    assert!(
        text.starts_with("error: gave up applying migration 2 (add_note) after "),
        "{text}"
    );
    assert!(text.contains("--> 002_add_note.sql"), "{text}");
    assert!(text.contains("= note: each attempt ran with a lock_timeout of 100ms and was rolled back; nothing of it is applied and it stays pending"), "{text}");
    assert!(
        text.contains(&format!(
            "= blocked by: pid {reader_pid} (application `nightly-report`"
        )),
        "{text}"
    );
    assert!(text.contains("idle in transaction"), "{text}");
    let terminate = format!("SELECT pg_terminate_backend({reader_pid})");
    assert!(text.contains(&terminate), "{text}");

    // Nothing applied; the one failed action is the blocked migration's own.
    assert!(!has_note_column(&mut client));
    assert_eq!(
        scalar(
            &mut client,
            "SELECT count(*) FROM schema_migrations WHERE version = 2"
        ),
        0
    );
    assert_eq!(
        scalar(&mut client, "SELECT count(*) FROM schema_migrations_history WHERE status = 'failed' AND version <> 2"),
        0
    );
    assert_eq!(actions_of_2(&mut client).len(), 1);

    // The help: end the blocking session, run again.
    client.simple_query(&terminate).unwrap();
    let report = Migrator::new(&set)
        .lock_timeout(Some(SHORT))
        .run(&mut client)
        .unwrap();
    assert_eq!(report.applied.len(), 1);
    assert!(has_note_column(&mut client));
}

#[test]
fn the_retry_budget_can_be_raised_as_the_help_says() {
    let (database, mut client, set) = orders("ALTER TABLE orders ADD COLUMN note text;\n");
    let (mut reader, _) = reader(&database, "report");
    let release = thread::spawn(move || {
        thread::sleep(Duration::from_millis(2_000));
        reader.batch_execute("COMMIT").unwrap();
    });
    // A budget shorter than the reader's hold gives up; the raised one waits it out.
    let short = Migrator::new(&set)
        .lock_timeout(Some(SHORT))
        .lock_retry_budget(Duration::from_millis(300))
        .run(&mut client);
    assert!(matches!(short, Err(Error::LockNotAvailable(_))));
    Migrator::new(&set)
        .lock_timeout(Some(SHORT))
        .lock_retry_budget(Duration::from_secs(600))
        .run(&mut client)
        .unwrap();
    release.join().unwrap();
    assert!(has_note_column(&mut client));
}

#[test]
fn a_deadlock_with_a_client_transaction_is_retried() {
    // The migration updates b then a; the client updates a then b: a true deadlock, which
    // PostgreSQL breaks by cancelling the session whose deadlock_timeout ran out first.
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    client
        .batch_execute("CREATE TABLE a (id int PRIMARY KEY, n int); CREATE TABLE b (id int PRIMARY KEY, n int); INSERT INTO a VALUES (1, 0); INSERT INTO b VALUES (1, 0);")
        .unwrap();
    let set = migrations(&[(
        "001_touch_both.sql",
        "-- migrate:lock-timeout off\nUPDATE b SET n = n + 10 WHERE id = 1;\nUPDATE a SET n = n + 10 WHERE id = 1;\n",
    )]);
    let mut other = database.client().unwrap();
    other
        .batch_execute("SET deadlock_timeout = '5s'; BEGIN; UPDATE a SET n = n + 1 WHERE id = 1;")
        .unwrap();
    let mut watcher = database.client().unwrap();
    let application = thread::spawn(move || {
        // Once the migration waits for a's row, take b's: each now waits for the other.
        let deadline = Instant::now() + Duration::from_secs(20);
        while scalar(
            &mut watcher,
            "SELECT count(*) FROM pg_locks WHERE NOT granted",
        ) == 0
        {
            assert!(Instant::now() < deadline, "the migration never waited");
            thread::sleep(Duration::from_millis(20));
        }
        other
            .batch_execute("UPDATE b SET n = n + 1 WHERE id = 1; COMMIT;")
            .unwrap();
    });
    // The migration's own deadlock_timeout (1 s) runs out first: it is the one cancelled.
    Migrator::new(&set).run(&mut client).unwrap();
    application.join().unwrap();
    assert_eq!(scalar(&mut client, "SELECT n FROM a"), 11);
    assert_eq!(scalar(&mut client, "SELECT n FROM b"), 11);
    let note: String = client
        .query_one(
            "SELECT note FROM schema_migrations_history WHERE version = 1",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(note.starts_with("applied on attempt 2"), "{note}");
}

#[test]
fn each_transaction_gets_its_timeouts_and_the_session_keeps_its_own() {
    assert_eq!(
        LOCK_TIMEOUTS[1].lock_timeout(),
        Some(LockTimeout::After(Duration::from_secs(30)))
    );
    assert_eq!(LOCK_TIMEOUTS[2].lock_timeout(), Some(LockTimeout::Off));
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    client
        .batch_execute("SET lock_timeout = '7s'; SET statement_timeout = '9min'")
        .unwrap();
    Migrator::new(LOCK_TIMEOUTS)
        .statement_timeout(Some(Duration::from_secs(120)))
        .run(&mut client)
        .unwrap();
    let seen: Vec<String> = client
        .query("SELECT version || ' ' || lock_timeout || ' ' || statement_timeout FROM settings_seen ORDER BY version", &[])
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        seen,
        [
            "1 500ms 2min",
            "2 30s 2min",
            "3 0 2min",
            "4 500ms 2min",
            "4 500ms 2min"
        ]
    );
    let show = |client: &mut Client, setting: &str| -> String {
        client
            .query_one(&format!("SHOW {setting}"), &[])
            .unwrap()
            .get(0)
    };
    assert_eq!(show(&mut client, "lock_timeout"), "7s");
    assert_eq!(show(&mut client, "statement_timeout"), "9min");

    // `None` leaves the session's own values inside the migrations too.
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    client.batch_execute("SET lock_timeout = '7s'").unwrap();
    Migrator::new(&LOCK_TIMEOUTS[..1])
        .lock_timeout(None)
        .run(&mut client)
        .unwrap();
    let seen: String = client
        .query_one("SELECT lock_timeout FROM settings_seen", &[])
        .unwrap()
        .get(0);
    assert_eq!(seen, "7s");
}
