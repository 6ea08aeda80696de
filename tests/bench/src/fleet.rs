//! Fleet mode at scale: many tenants (schemas of one database, or databases) each given the
//! same migrations, by `migrate_runtime::fleet` at several parallelisms, by a shell loop
//! running the `migrate` binary once per tenant, and by a loop over refinery's runner; wall
//! time, tenants per second, server CPU and WAL flushes; then a fleet status of every tenant.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use migrate_runtime::config::ConnectionSettings;
use migrate_runtime::fleet::{Fleet, TenantState, Tenants};
use migrate_runtime::testing::{TestDatabase, TestServer};
use postgres::Client;

use crate::server_cpu::{Cpu, Meter};
use crate::tools::Tool;
use crate::workload::Workload;

/// The sizes of a fleet run.
#[derive(Clone, Debug)]
pub(crate) struct Scenario {
    pub(crate) schemas: usize,
    pub(crate) databases: usize,
    pub(crate) migrations: usize,
    pub(crate) parallel: Vec<usize>,
}

/// Who migrates the tenants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Runner {
    /// `Fleet::run` with this many threads.
    Fleet(usize),
    /// `bash`: `migrate up` once per tenant.
    ShellLoop,
    /// One process looping over tenants with `refinery::Runner::run`.
    RefineryLoop,
}

impl Runner {
    fn label(self) -> String {
        match self {
            Runner::Fleet(parallel) => format!("fleet --parallel {parallel}"),
            Runner::ShellLoop => "shell loop: `migrate up` per tenant".to_owned(),
            Runner::RefineryLoop => "loop over refinery 0.10 `Runner::run`".to_owned(),
        }
    }
}

/// One timed run.
struct Sample {
    runner: Runner,
    time: Duration,
    cpu: Option<Cpu>,
    wal_syncs: Option<i64>,
}

/// Tenant kinds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Schemas,
    Databases,
}

/// The `migrate` binary next to this one (`cargo build --release -p migrate-runtime
/// --features cli --bin migrate`).
fn migrate_binary() -> Option<PathBuf> {
    let path = std::env::current_exe().ok()?.parent()?.join("migrate");
    path.is_file().then_some(path)
}

fn tenant_name(i: usize) -> String {
    format!("tenant_{i:04}")
}

/// Runs both scenarios and returns the markdown report.
pub(crate) fn run(server: &TestServer, scenario: &Scenario) -> String {
    let workload = Workload::generate(scenario.migrations);
    let mut runners: Vec<Runner> = scenario
        .parallel
        .iter()
        .map(|&p| Runner::Fleet(p))
        .collect();
    match migrate_binary() {
        Some(_) => runners.push(Runner::ShellLoop),
        None => eprintln!("no `migrate` binary next to the benchmark: the shell loop is left out"),
    }
    runners.push(Runner::RefineryLoop);
    let meter = Meter::of(server);
    let mut out = String::new();
    // Databases made for a run are kept until the process ends: the server's directory is
    // removed then, far faster than DROP DATABASE (a checkpoint each, and tens of thousands
    // of files deleted one by one).
    let mut kept = Vec::new();
    for (kind, count) in [
        (Kind::Schemas, scenario.schemas),
        (Kind::Databases, scenario.databases),
    ] {
        if count == 0 {
            continue;
        }
        let what = match kind {
            Kind::Schemas => format!("{count} tenant schemas in one database"),
            Kind::Databases => format!("{count} tenant databases"),
        };
        eprintln!("{what} x {} migrations...", scenario.migrations);
        let mut samples = Vec::new();
        let mut status_times = Vec::new();
        // The tenant databases are made once and emptied between runs (see `reset`).
        let tenant_databases: Vec<TestDatabase<'_>> = match kind {
            Kind::Schemas => Vec::new(),
            Kind::Databases => (0..count)
                .map(|_| server.create_database().unwrap())
                .collect(),
        };
        for &runner in &runners {
            let sample = match kind {
                Kind::Schemas => schemas(
                    server,
                    &meter,
                    &workload,
                    count,
                    runner,
                    &mut status_times,
                    &mut kept,
                ),
                Kind::Databases => databases(server, &meter, &workload, &tenant_databases, runner),
            };
            eprintln!(
                "  {}: {:.2?}, server CPU {:?}, WAL syncs {:?}",
                runner.label(),
                sample.time,
                sample.cpu.map(|cpu| cpu.user + cpu.system),
                sample.wal_syncs
            );
            samples.push(sample);
        }
        let mut part = String::new();
        render(&mut part, &what, scenario.migrations, count, &samples);
        for (parallel, time) in status_times {
            let _ = writeln!(
                part,
                "\n`Fleet::status()` of the {count} up-to-date tenants, parallel {parallel}: {:.0} ms",
                time.as_secs_f64() * 1000.0
            );
        }
        // Each scenario's table as soon as it is done.
        print!("{part}");
        out.push_str(&part);
        kept.extend(tenant_databases);
    }
    std::mem::forget(kept);
    out
}

/// WAL syncs so far (`pg_stat_wal`, PostgreSQL 14+).
fn wal_syncs(admin: &mut Client) -> Option<i64> {
    admin
        .query_one("SELECT wal_sync FROM pg_stat_wal", &[])
        .ok()
        .map(|row| row.get(0))
}

/// A checkpoint and the file system's backlog written out, so no run pays for the last one's.
fn settle(server: &TestServer) {
    server
        .connect("postgres")
        .unwrap()
        .batch_execute("CHECKPOINT")
        .unwrap();
    let _ = Command::new("sync").status();
}

/// Times `body`, with the server CPU of the backends of `databases` and the WAL syncs.
fn measure(
    server: &TestServer,
    meter: &Meter,
    databases: &[String],
    runner: Runner,
    body: impl FnOnce(),
) -> Sample {
    let mut admin = server.connect("postgres").unwrap();
    let (cpu_before, wal_before) = (meter.so_far(), wal_syncs(&mut admin));
    let started = Instant::now();
    body();
    let time = started.elapsed();
    wait_for_backends_to_exit(&mut admin, databases);
    let cpu = match (cpu_before, meter.so_far()) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };
    let wal_syncs = match (wal_before, wal_syncs(&mut admin)) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };
    Sample {
        runner,
        time,
        cpu,
        wal_syncs,
    }
}

/// Waits (up to 30 s) until no session is connected to `databases`, so that their backends
/// have exited and been counted in the postmaster's CPU time.
fn wait_for_backends_to_exit(admin: &mut Client, databases: &[String]) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        let connected: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = ANY($1)",
                &[&databases],
            )
            .map_or(0, |row| row.get(0));
        if connected == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The postmaster adds a child's time when it reaps it, just after the exit.
    std::thread::sleep(Duration::from_millis(100));
}

/// Tables named `bench_%` in the database: tenants x migrations when every tenant is done.
fn tables(client: &mut Client) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relname LIKE 'bench\\_%'",
            &[],
        )
        .unwrap()
        .get(0)
}

fn schemas<'s>(
    server: &'s TestServer,
    meter: &Meter,
    workload: &Workload,
    count: usize,
    runner: Runner,
    status_times: &mut Vec<(usize, Duration)>,
    kept: &mut Vec<TestDatabase<'s>>,
) -> Sample {
    let database = server.create_database().unwrap();
    let names: Vec<String> = (0..count).map(tenant_name).collect();
    let mut client = database.client().unwrap();
    // Every runner starts from the same empty schemas (refinery does not create them).
    let create: String = names
        .iter()
        .map(|n| format!("CREATE SCHEMA {n};\n"))
        .collect();
    client.batch_execute(&create).unwrap();
    drop(client);
    settle(server);
    let url = database.url();
    let sample = measure(
        server,
        meter,
        &[database.name().to_owned()],
        runner,
        || match runner {
            Runner::Fleet(parallel) => {
                let settings = ConnectionSettings::from_url(&url).unwrap();
                let tenants = Tenants::schemas(settings, names.clone()).unwrap();
                let report = Fleet::new(&workload.ours, tenants)
                    .parallel(parallel)
                    .run()
                    .unwrap();
                assert!(report.succeeded(), "{}", report.summary());
            }
            Runner::ShellLoop => {
                let list = tempfile::NamedTempFile::new().unwrap();
                std::fs::write(list.path(), names.join("\n") + "\n").unwrap();
                shell_loop(
                "while read -r t; do PGOPTIONS=\"-c search_path=$t\" \"$MIGRATE\" --dir \"$DIR\" --history-schema \"$t\" up >/dev/null 2>&1 || exit 1; done < \"$LIST\"",
                list.path(),
                workload,
                Some(&url),
            );
            }
            Runner::RefineryLoop => {
                let mut client = database.client().unwrap();
                for name in &names {
                    client
                        .batch_execute(&format!("SET search_path TO {name}"))
                        .unwrap();
                    refinery::Runner::new(&workload.refinery)
                        .run(&mut client)
                        .expect("refinery applies the workload");
                }
            }
        },
    );
    let mut client = database.client().unwrap();
    assert_eq!(
        tables(&mut client),
        (count * workload.n) as i64,
        "{} left tenants unmigrated",
        runner.label()
    );
    // The status of the whole fleet, every tenant up to date: no lock, one read per tenant.
    if let Runner::Fleet(parallel) = runner {
        let settings = ConnectionSettings::from_url(&url).unwrap();
        let tenants = Tenants::schemas(settings, names.clone()).unwrap();
        let status = Fleet::new(&workload.ours, tenants)
            .parallel(parallel)
            .status();
        assert!(status
            .tenants
            .iter()
            .all(|(_, state)| matches!(state, TenantState::UpToDate)));
        status_times.push((parallel, status.elapsed));
    }
    kept.push(database);
    sample
}

fn databases(
    server: &TestServer,
    meter: &Meter,
    workload: &Workload,
    databases: &[TestDatabase<'_>],
    runner: Runner,
) -> Sample {
    let names: Vec<String> = databases.iter().map(|d| d.name().to_owned()).collect();
    let urls: Vec<String> = databases.iter().map(TestDatabase::url).collect();
    for database in databases {
        reset(database);
    }
    settle(server);
    let sample = measure(server, meter, &names, runner, || match runner {
        Runner::Fleet(parallel) => {
            let tenants = Tenants::database_urls(names.iter().zip(&urls)).unwrap();
            let report = Fleet::new(&workload.ours, tenants)
                .parallel(parallel)
                .run()
                .unwrap();
            assert!(report.succeeded(), "{}", report.summary());
        }
        Runner::ShellLoop => {
            let list = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(list.path(), urls.join("\n") + "\n").unwrap();
            shell_loop(
                "while read -r url; do DATABASE_URL=\"$url\" \"$MIGRATE\" --dir \"$DIR\" up >/dev/null 2>&1 || exit 1; done < \"$LIST\"",
                list.path(),
                workload,
                None,
            );
        }
        Runner::RefineryLoop => {
            for database in databases {
                let mut client = database.client().unwrap();
                refinery::Runner::new(&workload.refinery)
                    .run(&mut client)
                    .expect("refinery applies the workload");
            }
        }
    });
    for database in databases {
        assert_eq!(
            tables(&mut database.client().unwrap()),
            workload.n as i64,
            "{} left {} unmigrated",
            runner.label(),
            database.name()
        );
    }
    sample
}

/// Empties a tenant database for the next runner: its tables and history tables (ours and
/// refinery's) are all in `public`.
fn reset(database: &TestDatabase<'_>) {
    database
        .client()
        .unwrap()
        .batch_execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        .unwrap();
}

/// Runs `script` with bash, the `migrate` binary as `$MIGRATE`, the migrations as `$DIR` and
/// the tenant list as `$LIST`.
fn shell_loop(script: &str, list: &Path, workload: &Workload, url: Option<&str>) {
    let mut command = Command::new("bash");
    command
        .args(["-c", script])
        .env("MIGRATE", migrate_binary().unwrap())
        .env("DIR", workload.dir_for(Tool::Ours))
        .env("LIST", list)
        .env("NO_COLOR", "1");
    if let Some(url) = url {
        command.env("DATABASE_URL", url);
    }
    let status = command.status().unwrap();
    assert!(status.success(), "the shell loop failed");
}

fn render(out: &mut String, what: &str, migrations: usize, tenants: usize, samples: &[Sample]) {
    let shell = samples
        .iter()
        .find(|s| s.runner == Runner::ShellLoop)
        .map(|s| s.time);
    let _ = writeln!(
        out,
        "\n### {what} x {migrations} migrations\n\n| runner | wall time | tenants/s | server CPU (user + sys) | server CPU / wall | WAL syncs | vs shell loop |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    for sample in samples {
        let seconds = sample.time.as_secs_f64();
        let cpu = sample.cpu.map(|cpu| (cpu.user + cpu.system).as_secs_f64());
        let _ = writeln!(
            out,
            "| {} | {seconds:.1} s | {:.1} | {} | {} | {} | {} |",
            sample.runner.label(),
            tenants as f64 / seconds,
            cpu.map_or("n/a".to_owned(), |cpu| format!("{cpu:.1} s")),
            cpu.map_or("n/a".to_owned(), |cpu| format!("{:.2}", cpu / seconds)),
            sample
                .wal_syncs
                .map_or("n/a".to_owned(), |syncs| syncs.to_string()),
            shell.map_or("n/a".to_owned(), |shell| format!(
                "{:.1}x",
                shell.as_secs_f64() / seconds
            )),
        );
    }
}
