//! Running each tool on a fresh database and timing it: apply-all, the no-op start-up, round
//! trips and commits per migration, and apply-all through a proxy that adds latency.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use migrate_runtime::testing::{TestDatabase, TestServer};
use migrate_runtime::Migrator;
use migrate_tests::RoundTripCounter;
use postgres::Client;

use crate::server_cpu::{self, Cpu};
use crate::workload::Workload;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Tool {
    Psql,
    Ours,
    OursGrouped,
    Refinery,
    RefineryGrouped,
    Dbmate,
    Sqlx,
}

impl Tool {
    pub(crate) const ALL: [Tool; 5] = [
        Tool::Psql,
        Tool::Ours,
        Tool::OursGrouped,
        Tool::Refinery,
        Tool::RefineryGrouped,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Tool::Psql => "psql -1 -f (floor)",
            Tool::Ours => "ours, per-migration",
            Tool::OursGrouped => "ours, grouped",
            Tool::Refinery => "refinery 0.10, per-migration",
            Tool::RefineryGrouped => "refinery 0.10, grouped",
            Tool::Dbmate => "dbmate 2 (own process)",
            Tool::Sqlx => "sqlx-cli 0.8 (own process)",
        }
    }

    /// The name `--tools` takes.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Tool::Psql => "psql",
            Tool::Ours => "ours",
            Tool::OursGrouped => "ours-grouped",
            Tool::Refinery => "refinery",
            Tool::RefineryGrouped => "refinery-grouped",
            Tool::Dbmate => "dbmate",
            Tool::Sqlx => "sqlx",
        }
    }

    /// Tools that run as their own process, given a URL.
    pub(crate) fn is_process(self) -> bool {
        matches!(self, Tool::Psql | Tool::Dbmate | Tool::Sqlx)
    }
}

/// Applies the whole workload with `tool` on `client` (already connected; not timed).
fn apply(tool: Tool, client: &mut Client, workload: &Workload) {
    match tool {
        Tool::Ours | Tool::OursGrouped => {
            let report = Migrator::new(&workload.ours)
                .grouped(tool == Tool::OursGrouped)
                .run(client)
                .expect("ours applies the workload");
            assert_eq!(report.applied.len(), workload.n);
        }
        Tool::Refinery | Tool::RefineryGrouped => {
            refinery::Runner::new(&workload.refinery)
                .set_grouped(tool == Tool::RefineryGrouped)
                .run(client)
                .expect("refinery applies the workload");
        }
        Tool::Psql | Tool::Dbmate | Tool::Sqlx => unreachable!("runs as its own process"),
    }
}

/// Drops the databases `kept` (all of one repetition), after the repetition rather than
/// between its runs: on the project's machine (ext4 without a journal) creating a file checks
/// each recently deleted inode it passes (`recently_deleted` is hot in `perf` of the slow
/// runs), and dropping a database of 10,000 tables deletes some 50,000 files.
pub(crate) fn drop_all(kept: &mut Vec<TestDatabase<'_>>) {
    kept.clear();
}

/// A new database, after a checkpoint (see [`apply_time`]).
fn fresh_after_checkpoint(server: &TestServer) -> TestDatabase<'_> {
    let database = server.create_database().unwrap();
    server
        .connect("postgres")
        .unwrap()
        .batch_execute("CHECKPOINT")
        .unwrap();
    // And the file system's own backlog (the last run's files, the last repetition's dropped
    // databases), so it is not written back in the middle of the next run.
    let _ = Command::new("sync").status();
    database
}

/// One timed apply-all: its wall-clock time and the CPU the server spent on it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sample {
    pub(crate) time: Duration,
    pub(crate) server_cpu: Option<Cpu>,
}

/// One apply-all on a fresh database, which is added to `kept` (drop it with
/// [`drop_all`]); `None` when the tool is unavailable. A checkpoint first, so every run
/// starts from the same state: a run of thousands of tables leaves gigabytes of WAL behind,
/// and whoever ran next would pay for its checkpoint.
pub(crate) fn apply_time<'s>(
    tool: Tool,
    server: &'s TestServer,
    workload: &Workload,
    meter: &server_cpu::Meter,
    kept: &mut Vec<TestDatabase<'s>>,
) -> Option<Sample> {
    let database = fresh_after_checkpoint(server);
    let cpu_before = meter.so_far();
    let time = if tool == Tool::Psql {
        psql_floor(&database, workload)?
    } else if tool.is_process() {
        let url = format!("{}?sslmode=disable", database.url());
        crate::peers::apply(tool, &url, &workload.dir_for(tool))
    } else {
        let mut client = database.client().unwrap();
        let started = Instant::now();
        apply(tool, &mut client, workload);
        started.elapsed()
    };
    server_cpu::wait_for_backends_to_exit(server, database.name());
    let server_cpu = cpu_before
        .zip(meter.so_far())
        .map(|(before, after)| after - before);
    kept.push(database);
    Some(Sample { time, server_cpu })
}

fn psql_floor(database: &TestDatabase<'_>, workload: &Workload) -> Option<Duration> {
    let psql = psql_binary()?;
    let started = Instant::now();
    let status = Command::new(psql)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-f"])
        .arg(workload.all_sql())
        .arg(database.url())
        .status()
        .ok()?;
    assert!(status.success(), "psql failed on the workload");
    Some(started.elapsed())
}

fn psql_binary() -> Option<PathBuf> {
    let packaged = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|entry| entry.path().join("bin/psql"))
        .find(|path| path.is_file());
    packaged.or_else(|| Some(PathBuf::from("psql")))
}

/// Round trips and committed transactions per migration, for one apply-all.
pub(crate) fn counts(tool: Tool, server: &TestServer, workload: &Workload) -> (f64, f64) {
    let database = server.create_database().unwrap();
    let commits_before = committed(server, database.name());
    let proxy = RoundTripCounter::start(server.port());
    let from = proxy.ready_messages();
    if tool.is_process() {
        let url = format!(
            "postgresql://postgres@127.0.0.1:{}/{}?sslmode=disable",
            proxy.port(),
            database.name()
        );
        crate::peers::apply(tool, &url, &workload.dir_for(tool));
    } else {
        let mut client = proxy.connect(database.name());
        apply(tool, &mut client, workload);
    }
    // Each connection's start-up also ends with one ReadyForQuery; count only the work.
    let round_trips = proxy.ready_messages() - from - 1;
    // A backend reports its counters when it exits; give it the moment it needs.
    std::thread::sleep(Duration::from_millis(1500));
    let commits = committed(server, database.name()) - commits_before;
    let n = workload.n as f64;
    (round_trips as f64 / n, commits as f64 / n)
}

/// Transactions committed in `database` so far, read from another database so the reading
/// does not count.
fn committed(server: &TestServer, database: &str) -> i64 {
    let mut admin = server.connect("postgres").unwrap();
    admin
        .batch_execute("SELECT pg_stat_clear_snapshot()")
        .unwrap();
    admin
        .query_one(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = $1",
            &[&database],
        )
        .unwrap()
        .get(0)
}

/// Start-up with everything applied: connect is not timed, the tool's whole check is.
/// Returns the times and the round trips of one such start-up.
pub(crate) fn noop_times(
    tool: Tool,
    server: &TestServer,
    workload: &Workload,
    reps: usize,
) -> (Vec<Duration>, usize) {
    let database = server.create_database().unwrap();
    apply(tool, &mut database.client().unwrap(), workload);
    let proxy = RoundTripCounter::start(server.port());
    let mut samples = Vec::new();
    let mut round_trips = 0;
    for _ in 0..reps {
        let mut client = proxy.connect(database.name());
        let from = proxy.ready_messages();
        let started = Instant::now();
        noop(tool, &mut client, workload);
        samples.push(started.elapsed());
        round_trips = proxy.ready_messages() - from;
    }
    (samples, round_trips)
}

fn noop(tool: Tool, client: &mut Client, workload: &Workload) {
    match tool {
        Tool::Ours | Tool::OursGrouped => {
            assert!(Migrator::new(&workload.ours)
                .run(client)
                .unwrap()
                .applied
                .is_empty());
        }
        _ => {
            let report = refinery::Runner::new(&workload.refinery)
                .run(client)
                .unwrap();
            assert!(report.applied_migrations().is_empty());
        }
    }
}

/// One apply-all through a proxy that adds `delay` in each direction, on a fresh database
/// added to `kept`.
pub(crate) fn delayed_time<'s>(
    tool: Tool,
    server: &'s TestServer,
    workload: &Workload,
    delay: Duration,
    kept: &mut Vec<TestDatabase<'s>>,
) -> Duration {
    let database = fresh_after_checkpoint(server);
    let proxy = RoundTripCounter::with_delay(server.port(), delay);
    let mut client = proxy.connect(database.name());
    let started = Instant::now();
    apply(tool, &mut client, workload);
    let time = started.elapsed();
    drop(client);
    kept.push(database);
    time
}
