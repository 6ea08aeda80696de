//! `--squash 100,500`: what a squash saves a fresh database, what recording it in place of an
//! applied chain costs, and what a readiness check (`Migrator::check`) costs.

use std::time::{Duration, Instant};

use migrate_runtime::testing::TestServer;
use migrate_runtime::{Migration, Migrator, Phase};

/// One row of the table.
struct Row {
    n: usize,
    build: Duration,
    chain: Duration,
    squash: Duration,
    record: Duration,
    check: Duration,
}

/// N migrations, each a table with an index and one seed row; every tenth builds its index
/// outside a transaction.
fn chain(n: usize) -> (tempfile::TempDir, Vec<Migration>) {
    let dir = tempfile::tempdir().unwrap();
    for v in 1..=n {
        let sql = if v % 10 == 0 {
            format!(
                "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY t{0}_b ON t{1} (id);\n",
                v,
                v - 1
            )
        } else {
            format!("CREATE TABLE t{v} (id bigint PRIMARY KEY, label text NOT NULL);\nCREATE INDEX t{v}_label ON t{v} (label);\nINSERT INTO t{v} VALUES (1, 'seed');\n")
        };
        std::fs::write(dir.path().join(format!("{v:05}_m{v}.sql")), sql).unwrap();
    }
    let set = migrate_runtime::source::read_dir(dir.path(), ".")
        .unwrap()
        .migrations;
    (dir, set)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// A fresh database's run of `set`, timed.
fn fresh_run(server: &TestServer, set: &[Migration]) -> Duration {
    let database = server.create_database().unwrap();
    let mut client = database.client().unwrap();
    let started = Instant::now();
    Migrator::new(set)
        .phase(Phase::PostDeploy)
        .run(&mut client)
        .unwrap();
    started.elapsed()
}

pub(crate) fn run(server: &TestServer, sizes: &[usize], reps: usize) -> String {
    let mut rows = Vec::new();
    for &n in sizes {
        eprintln!("squash N = {n}: building, then {reps} repetitions...");
        let (_dir, set) = chain(n);
        let started = Instant::now();
        let squash = Migrator::new(&set).squash(server, n as i64).unwrap();
        let build = started.elapsed();
        let squashed_dir = tempfile::tempdir().unwrap();
        std::fs::write(squashed_dir.path().join(&squash.file_name), &squash.text).unwrap();
        let squashed = migrate_runtime::source::read_dir(squashed_dir.path(), ".")
            .unwrap()
            .migrations;
        let (mut chain_runs, mut squash_runs, mut records, mut checks) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..reps {
            chain_runs.push(fresh_run(server, &set));
            squash_runs.push(fresh_run(server, &squashed));
            // A database that applied the chain, taking the squash: recorded, no SQL.
            let database = server.create_database().unwrap();
            let mut client = database.client().unwrap();
            Migrator::new(&set).run(&mut client).unwrap();
            let started = Instant::now();
            let report = Migrator::new(&squashed).run(&mut client).unwrap();
            records.push(started.elapsed());
            assert!(report.applied.is_empty(), "recording runs no migration");
            for _ in 0..20 {
                let started = Instant::now();
                assert!(Migrator::new(&squashed)
                    .check(&mut client)
                    .unwrap()
                    .is_ready());
                checks.push(started.elapsed());
            }
        }
        rows.push(Row {
            n,
            build,
            chain: median(chain_runs),
            squash: median(squash_runs),
            record: median(records),
            check: median(checks),
        });
    }
    render(&rows, reps)
}

fn render(rows: &[Row], reps: usize) -> String {
    let mut out = format!(
        "| migrations | build the squash (replay + pg_dump) | fresh database: chain | fresh database: squash | speed-up | applied chain: record the squash | `check` (median of {}) |\n|---:|---:|---:|---:|---:|---:|---:|\n",
        20 * reps
    );
    for row in rows {
        out.push_str(&format!(
            "| {} | {:.0?} | {:.0?} | {:.0?} | {:.1}x | {:.1?} | {:.2?} |\n",
            row.n,
            row.build,
            row.chain,
            row.squash,
            row.chain.as_secs_f64() / row.squash.as_secs_f64(),
            row.record,
            row.check
        ));
    }
    out
}
