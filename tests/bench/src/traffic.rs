//! A migration on a table with traffic: client threads query `orders` in a loop while a
//! reader holds ACCESS SHARE on it in an open transaction, and a migration adds a column.
//! Without a lock timeout the `ALTER` waits in the lock queue and every client queues behind
//! it until the reader ends; with ours, the `ALTER` gives up after `lock_timeout`, the clients
//! go on, and the migration is retried until the reader has gone.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use migrate_runtime::testing::TestServer;
use migrate_runtime::Migrator;

use crate::peers;
use crate::tools::Tool;

/// The migration every runner applies.
const ALTER: &str = "ALTER TABLE orders ADD COLUMN note text;\n";

/// What runs the migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Runner {
    /// This runtime with its defaults (lock timeout 500 ms, retries for 60 s).
    Ours,
    /// This runtime with `lock_timeout(None)`: the "without" column.
    OursWithoutTimeout,
    /// refinery 0.10's runner, in process.
    Refinery,
    /// A peer's own command line (sqlx-cli, dbmate), when installed.
    Peer(Tool),
}

impl Runner {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Runner::Ours => "ours (defaults: lock_timeout 500ms, retries)",
            Runner::OursWithoutTimeout => "ours, lock_timeout off",
            Runner::Refinery => "refinery 0.10",
            Runner::Peer(tool) => tool.label(),
        }
    }

    /// Every runner this machine has.
    pub(crate) fn all() -> Vec<Runner> {
        [Runner::Ours, Runner::OursWithoutTimeout, Runner::Refinery]
            .into_iter()
            .chain(peers::available().into_iter().map(Runner::Peer))
            .collect()
    }
}

/// The scenario's knobs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scenario {
    pub(crate) clients: usize,
    pub(crate) hold: Duration,
    pub(crate) rows: i64,
}

/// What one run measured.
#[derive(Clone, Debug)]
pub(crate) struct Outcome {
    pub(crate) runner: Runner,
    /// Client queries that started while the reader held the table or the migration ran.
    pub(crate) queries: usize,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) max: Duration,
    pub(crate) over_one_second: usize,
    /// From starting the migration to its end.
    pub(crate) migration: Duration,
    /// From the reader's end to the migration's (how long after the reader it finished).
    pub(crate) after_reader: Duration,
    /// Attempts the runner made (ours: from the action log's note).
    pub(crate) attempts: Option<u32>,
}

/// Runs the scenario once with `runner` on a fresh database of `server`.
pub(crate) fn run(server: &TestServer, scenario: Scenario, runner: Runner) -> Outcome {
    let database = server.create_database().unwrap();
    let mut setup = database.client().unwrap();
    setup
        .batch_execute(&format!(
            "CREATE TABLE orders (id bigint PRIMARY KEY, total int NOT NULL);\
             INSERT INTO orders SELECT g, g % 1000 FROM generate_series(1, {}) g; ANALYZE orders;",
            scenario.rows
        ))
        .unwrap();

    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::<(Duration, Duration)>::new()));
    let clients: Vec<_> = (0..scenario.clients)
        .map(|index| {
            let mut client = database.client().unwrap();
            let (stop, samples) = (stop.clone(), samples.clone());
            let rows = scenario.rows;
            thread::spawn(move || {
                let query = client
                    .prepare("SELECT total FROM orders WHERE id = $1")
                    .unwrap();
                let mut mine = Vec::new();
                let mut id = index as i64;
                while !stop.load(Ordering::Relaxed) {
                    id = (id * 7_919 + 13) % rows + 1;
                    let at = started.elapsed();
                    client.query(&query, &[&id]).unwrap();
                    mine.push((at, started.elapsed() - at));
                }
                samples.lock().unwrap().extend(mine);
            })
        })
        .collect();

    thread::sleep(Duration::from_millis(300));
    let mut reader = database.client().unwrap();
    reader
        .batch_execute("BEGIN; SELECT count(*) FROM orders;")
        .unwrap();
    let reader_started = started.elapsed();
    let hold = scenario.hold;
    let reader = thread::spawn(move || {
        thread::sleep(hold);
        reader.batch_execute("COMMIT").unwrap();
        started.elapsed()
    });
    thread::sleep(Duration::from_millis(200));

    let dir = tempfile::tempdir().unwrap();
    let migration_started = Instant::now();
    let mut client = database.client().unwrap();
    match runner {
        Runner::Ours | Runner::OursWithoutTimeout => {
            write(dir.path(), "1_add_note.sql", ALTER);
            let set = migrate_runtime::source::read_dir(dir.path(), "")
                .unwrap()
                .migrations;
            let mut migrator = Migrator::new(&set);
            if runner == Runner::OursWithoutTimeout {
                migrator = migrator.lock_timeout(None);
            }
            migrator.run(&mut client).unwrap();
        }
        Runner::Refinery => {
            let migration = refinery::Migration::unapplied("V1__add_note", ALTER).unwrap();
            refinery::Runner::new(&[migration])
                .run(&mut client)
                .unwrap();
        }
        Runner::Peer(tool) => {
            let body = match tool {
                Tool::Dbmate => format!("-- migrate:up\n{ALTER}-- migrate:down\n"),
                _ => ALTER.to_owned(),
            };
            write(dir.path(), "1_add_note.sql", &body);
            peers::apply(
                tool,
                &format!("{}?sslmode=disable", database.url()),
                dir.path(),
            );
        }
    }
    let migration = migration_started.elapsed();
    let migration_ended = started.elapsed();
    let reader_ended = reader.join().unwrap();
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }

    let attempts = matches!(runner, Runner::Ours | Runner::OursWithoutTimeout).then(|| {
        let note: Option<String> = client
            .query_one(
                "SELECT note FROM schema_migrations_history WHERE version = 1",
                &[],
            )
            .unwrap()
            .get(0);
        note.and_then(|note| {
            note.strip_prefix("applied on attempt ")?
                .split(':')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(1)
    });
    let window = reader_started..migration_ended.max(reader_ended);
    let mut latencies: Vec<Duration> = samples
        .lock()
        .unwrap()
        .iter()
        .filter(|(at, _)| window.contains(at))
        .map(|(_, took)| *took)
        .collect();
    latencies.sort();
    let at = |fraction: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * fraction).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    Outcome {
        runner,
        queries: latencies.len(),
        p50: at(0.5),
        p99: at(0.99),
        max: latencies.last().copied().unwrap_or_default(),
        over_one_second: latencies
            .iter()
            .filter(|took| **took > Duration::from_secs(1))
            .count(),
        migration,
        after_reader: migration_ended.saturating_sub(reader_ended),
        attempts,
    }
}

fn write(dir: &Path, name: &str, body: &str) {
    std::fs::write(dir.join(name), body).unwrap();
}

/// The Markdown table of `outcomes`.
pub(crate) fn render(scenario: Scenario, outcomes: &[Outcome]) -> String {
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
    let mut out = format!(
        "\n#### A migration on a busy table ({} client threads, {} rows, a reader holding ACCESS SHARE for {} s)\n\n\
         | runner | client queries | p50 ms | p99 ms | max ms | queries over 1 s | migration wall ms | finished after the reader by ms | attempts |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        scenario.clients,
        scenario.rows,
        scenario.hold.as_secs_f64()
    );
    for outcome in outcomes {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            outcome.runner.label(),
            outcome.queries,
            ms(outcome.p50),
            ms(outcome.p99),
            ms(outcome.max),
            outcome.over_one_second,
            ms(outcome.migration),
            ms(outcome.after_reader),
            outcome
                .attempts
                .map_or_else(|| "n/a".to_owned(), |a| a.to_string())
        ));
    }
    out
}
