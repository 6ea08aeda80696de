//! Side-by-side benchmark: this crate's runtime against refinery and the `psql -1 -f` floor,
//! on one durable throwaway PostgreSQL, in one run, with ratios. The options: [`USAGE`], which
//! `--help` prints.
#![allow(clippy::print_stdout, clippy::print_stderr)] // A benchmark reports on the terminal.

mod compile;
mod file_size;
mod fleet;
mod peers;
mod report;
mod server_cpu;
mod squash;
mod test_databases;
mod tools;
mod traffic;
mod workload;

use std::time::Duration;

use migrate_runtime::testing::TestServer;

use report::Table;
use tools::Tool;
use workload::Workload;

/// The command line, printed by `--help`.
const USAGE: &str = "\
cargo run --release -p migrate-bench --bin bench -- [--sizes 100,1000] [--reps 3]
    [--delay-ms 1] [--compile-sizes 100,1000] [--refinery-compile-max 1000] [--no-compile]
    [--latency-only]   (skip apply-all, counts and start-up; only the runs through the proxy)
    [--tools psql,ours,ours-grouped,refinery,refinery-grouped,dbmate,sqlx]   (default: all)
    [--install-peers]   (dbmate from npm and sqlx-cli by cargo install, into target/bench-peers)
    [--file-sizes 1,10,50]   (only the file-size run, no database: one migration of N MB
         of INSERT lines; time and peak memory of lex+split, read_dir and lint_set)
    [--fleet] [--fleet-schemas 1000] [--fleet-databases 100] [--fleet-migrations 20]
        [--fleet-parallel 1,2,4,8]   (only the fleet scenarios: the fleet at each parallelism,
         a shell loop of the `migrate` binary (build it first: cargo build --release
         -p migrate-runtime --features cli --bin migrate) and a loop over refinery)
    [--test-databases [--test-migrations 1000] [--tests 100] [--variants ours,with-sqlx,per-process,naive]
        [--single-run]   (one default-threads run of each variant but ours, whose first and
         later runs differ)]
        (only the test-database comparison: a generated application tested with
         #[migrate_macros::test], #[sqlx::test], the per-process template and a fresh
         migrated database per test; prints a markdown table)
    [--clone-strategies]   (only CREATE DATABASE ... STRATEGY FILE_COPY vs WAL_LOG, fsync off and on)
    [--traffic] [--traffic-clients 8] [--traffic-hold-s 6] [--traffic-rows 10000]
        (only the busy-table scenario: clients querying a table, a reader holding it, a
         migration adding a column; each runner --reps times)
    [--squash 100,500]   (only the squash run: N migrations squashed; a fresh database's
         chain vs squash, recording it over an applied chain, and `check`, --reps times)
";

struct Options {
    sizes: Vec<usize>,
    reps: usize,
    delay: Duration,
    compile_sizes: Vec<usize>,
    refinery_compile_max: usize,
    install_peers: bool,
    latency_only: bool,
    /// Only these tools (by [`Tool::key`]); empty: every tool available.
    tools: Vec<String>,
    /// Run only the busy-table scenario, with these knobs.
    traffic: Option<traffic::Scenario>,
    /// Run only the file-size benchmark, at these sizes in MB.
    file_sizes: Vec<usize>,
    /// Run only the squash benchmark, at these numbers of migrations.
    squash: Vec<usize>,
    /// Run only the fleet scenarios, with these sizes.
    fleet: Option<fleet::Scenario>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, phase, dir] = args.as_slice() {
        if flag == file_size::CHILD_FLAG {
            file_size::child(phase, std::path::Path::new(dir));
            return;
        }
    }
    if args
        .iter()
        .any(|arg| arg == "--test-databases" || arg == "--clone-strategies")
    {
        let value = |flag: &str| {
            args.iter()
                .position(|arg| arg == flag)
                .and_then(|at| args.get(at + 1))
        };
        let number = |flag: &str, default: usize| {
            value(flag).and_then(|v| v.parse().ok()).unwrap_or(default)
        };
        let migrations = number("--test-migrations", 1000);
        if args.iter().any(|arg| arg == "--clone-strategies") {
            test_databases::clone_strategies(migrations, 7);
        } else {
            let variants: Vec<String> = value("--variants")
                .map(|list| list.split(',').map(str::to_owned).collect())
                .unwrap_or_default();
            let single = args.iter().any(|arg| arg == "--single-run");
            test_databases::run(migrations, number("--tests", 100), &variants, single);
        }
        return;
    }
    let options = parse_args();
    if !options.file_sizes.is_empty() {
        file_size::run(&options.file_sizes);
        return;
    }
    if options.install_peers {
        peers::install();
    }
    let known = Tool::ALL.into_iter().chain([Tool::Dbmate, Tool::Sqlx]);
    if let Some(unknown) = (options.tools.iter()).find(|t| !known.clone().any(|k| k.key() == *t)) {
        eprint!("unknown tool {unknown} in --tools; the options:\n{USAGE}");
        std::process::exit(2);
    }
    let tools: Vec<Tool> = Tool::ALL
        .into_iter()
        .chain(peers::available())
        .filter(|tool| options.tools.is_empty() || options.tools.iter().any(|t| t == tool.key()))
        .collect();
    eprintln!("starting a durable throwaway PostgreSQL (fsync on)...");
    let server = TestServer::start_durable().expect("PostgreSQL server binaries are needed");
    // Checkpoints only where the benchmark asks for them (before each timed run), never in the
    // middle of one; fsync stays on, so every commit is still durable.
    // One statement per query: ALTER SYSTEM refuses to run inside a transaction block.
    let mut admin = server.connect("postgres").unwrap();
    for setting in [
        "ALTER SYSTEM SET max_wal_size = '16GB'",
        "ALTER SYSTEM SET checkpoint_timeout = '1h'",
        "SELECT pg_reload_conf()",
    ] {
        admin.batch_execute(setting).unwrap();
    }
    if !options.squash.is_empty() {
        print!("{}", squash::run(&server, &options.squash, options.reps));
        return;
    }
    if let Some(scenario) = &options.fleet {
        print!("{}", fleet::run(&server, scenario));
        return;
    }
    if let Some(scenario) = options.traffic {
        let mut outcomes = Vec::new();
        for rep in 0..options.reps {
            for runner in traffic::Runner::all() {
                let outcome = traffic::run(&server, scenario, runner);
                eprintln!(
                    "  rep {rep}: {}: max {:.0?}, migration {:.0?}",
                    runner.label(),
                    outcome.max,
                    outcome.migration
                );
                outcomes.push(outcome);
            }
        }
        print!("{}", traffic::render(scenario, &outcomes));
        return;
    }
    let meter = server_cpu::Meter::of(&server);
    let mut table = Table::default();
    for &n in &options.sizes {
        let workload = Workload::generate(n);
        if !options.latency_only {
            apply_counts_and_start_up(&mut table, &server, &meter, &workload, &tools, &options);
        }
        if !options.delay.is_zero() {
            through_a_slow_proxy(&mut table, &server, &workload, &tools, &options);
        }
    }
    if !options.compile_sizes.is_empty() {
        eprintln!("compile times (dependencies prebuilt, only the embedding crate rebuilt)...");
        table.compile = compile::measure(&options.compile_sizes, options.refinery_compile_max);
    }
    print!("{}", table.render());
}

/// Apply-all times of every tool, repetition by repetition; round trips and commits; the
/// no-op start-up.
fn apply_counts_and_start_up(
    table: &mut Table,
    server: &TestServer,
    meter: &server_cpu::Meter,
    workload: &Workload,
    tools: &[Tool],
    options: &Options,
) {
    let (n, reps) = (workload.n, options.reps);
    eprintln!("N = {n}: applying with each tool, {reps} repetitions...");
    // Repetition by repetition, every tool in turn, so slow drift hits all alike; the order
    // turns by one each repetition, so no tool always runs first or right after the largest.
    // Each repetition's databases are dropped together after it (see `tools::drop_all`).
    let mut kept = Vec::new();
    for rep in 0..reps {
        for &tool in rotated(tools, rep).iter() {
            if let Some(sample) = tools::apply_time(tool, server, workload, meter, &mut kept) {
                eprintln!("  rep {rep}: {} {sample:.2?}", tool.label());
                table.add_apply(n, rep, tool, sample);
            }
        }
        tools::drop_all(&mut kept);
    }
    for &tool in tools {
        if matches!(tool, Tool::Dbmate | Tool::Sqlx) {
            table.counts(n, tool, tools::counts(tool, server, workload));
        }
    }
    for tool in [Tool::Ours, Tool::Refinery] {
        if tools.contains(&tool) {
            let counts = tools::counts(tool, server, workload);
            table.counts(n, tool, counts);
            table.noop(n, tool, tools::noop_times(tool, server, workload, 15));
        }
    }
}

/// `tools` turned left by `rep` places.
fn rotated(tools: &[Tool], rep: usize) -> Vec<Tool> {
    let mut order = tools.to_vec();
    if !order.is_empty() {
        order.rotate_left(rep % tools.len());
    }
    order
}

/// Apply-all through a proxy adding `delay` each way, ours and refinery taking turns, and the
/// control: the same proxy with no added latency (what the proxy itself costs).
fn through_a_slow_proxy(
    table: &mut Table,
    server: &TestServer,
    workload: &Workload,
    tools: &[Tool],
    options: &Options,
) {
    let (n, reps, delay) = (workload.n, options.reps, options.delay);
    eprintln!("N = {n}: again through a proxy adding {delay:?} each way...");
    let tools: Vec<Tool> = [Tool::Ours, Tool::OursGrouped, Tool::Refinery]
        .into_iter()
        .filter(|tool| tools.contains(tool))
        .collect();
    let mut samples = vec![Vec::new(); tools.len()];
    let mut control = Vec::new();
    let mut kept = Vec::new();
    for rep in 0..reps {
        let order = rotated(&tools, rep);
        for tool in order {
            let index = tools.iter().position(|t| *t == tool).unwrap();
            samples[index].push(tools::delayed_time(
                tool, server, workload, delay, &mut kept,
            ));
        }
        control.push(tools::delayed_time(
            Tool::Ours,
            server,
            workload,
            Duration::ZERO,
            &mut kept,
        ));
        tools::drop_all(&mut kept);
    }
    for (tool, samples) in tools.into_iter().zip(samples) {
        table.delayed(n, tool, samples);
    }
    table.proxy_control(n, control);
}

fn parse_args() -> Options {
    let mut options = Options {
        sizes: vec![100, 1000],
        reps: 3,
        delay: Duration::from_millis(1),
        compile_sizes: vec![100, 1000],
        refinery_compile_max: 1000,
        install_peers: false,
        latency_only: false,
        tools: Vec::new(),
        traffic: None,
        file_sizes: Vec::new(),
        squash: Vec::new(),
        fleet: None,
    };
    let default_fleet = fleet::Scenario {
        schemas: 1000,
        databases: 100,
        migrations: 20,
        parallel: vec![1, 2, 4, 8],
    };
    let default_scenario = traffic::Scenario {
        clients: 8,
        hold: Duration::from_secs(6),
        rows: 10_000,
    };
    let mut args = std::env::args().skip(1);
    let list = |value: Option<String>| -> Vec<usize> {
        value
            .unwrap_or_default()
            .split(',')
            .filter_map(|v| v.trim().parse().ok())
            .collect()
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--sizes" => options.sizes = list(args.next()),
            "--reps" => options.reps = list(args.next()).first().copied().unwrap_or(3),
            "--delay-ms" => {
                options.delay =
                    Duration::from_millis(list(args.next()).first().copied().unwrap_or(0) as u64)
            }
            "--compile-sizes" => options.compile_sizes = list(args.next()),
            "--refinery-compile-max" => {
                options.refinery_compile_max = list(args.next()).first().copied().unwrap_or(0)
            }
            "--no-compile" => options.compile_sizes.clear(),
            "--file-sizes" => options.file_sizes = list(args.next()),
            "--squash" => options.squash = list(args.next()),
            "--install-peers" => options.install_peers = true,
            "--latency-only" => options.latency_only = true,
            "--tools" => {
                options.tools = args
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(|t| t.trim().to_owned())
                    .collect()
            }
            "--fleet" => {
                options.fleet.get_or_insert_with(|| default_fleet.clone());
            }
            "--fleet-schemas" => {
                options
                    .fleet
                    .get_or_insert_with(|| default_fleet.clone())
                    .schemas = list(args.next()).first().copied().unwrap_or(0)
            }
            "--fleet-databases" => {
                options
                    .fleet
                    .get_or_insert_with(|| default_fleet.clone())
                    .databases = list(args.next()).first().copied().unwrap_or(0)
            }
            "--fleet-migrations" => {
                options
                    .fleet
                    .get_or_insert_with(|| default_fleet.clone())
                    .migrations = list(args.next()).first().copied().unwrap_or(20)
            }
            "--fleet-parallel" => {
                options
                    .fleet
                    .get_or_insert_with(|| default_fleet.clone())
                    .parallel = list(args.next())
            }
            "--traffic" => {
                options.traffic.get_or_insert(default_scenario);
            }
            "--traffic-clients" => {
                options.traffic.get_or_insert(default_scenario).clients =
                    list(args.next()).first().copied().unwrap_or(8)
            }
            "--traffic-hold-s" => {
                options.traffic.get_or_insert(default_scenario).hold =
                    Duration::from_secs(list(args.next()).first().copied().unwrap_or(6) as u64)
            }
            "--traffic-rows" => {
                options.traffic.get_or_insert(default_scenario).rows =
                    list(args.next()).first().copied().unwrap_or(10_000) as i64
            }
            "--help" | "-h" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => {
                eprint!("unknown argument {other}; the options:\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    options
}
