//! Test databases: a generated application (N small migrations, M tests that each take a
//! migrated database and run one query) tested four ways: `#[migrate_macros::test]` on the
//! persistent template and warm pool, `#[sqlx::test]` with `sqlx::migrate!`, today's per-process
//! template (`TestServer::shared().migrated_database`), and a fresh database migrated by
//! `Migrator::run` in every test. Also the clone strategies (`--clone-strategies`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use migrate_runtime::testing::TestServer;

/// sqlx, pinned, with only what `#[sqlx::test]` and `sqlx::migrate!` need.
const SQLX: &str = r#"sqlx = { version = "=0.8.6", default-features = false, features = ["postgres", "runtime-tokio", "migrate", "macros"] }"#;

/// One way of giving each test its database.
#[derive(Clone, Copy)]
struct Variant {
    package: &'static str,
    label: &'static str,
}

const VARIANTS: [Variant; 4] = [
    Variant {
        package: "ours",
        label: "(a) `#[migrate_macros::test]`: persistent template + warm pool",
    },
    Variant {
        package: "with-sqlx",
        label: "(b) `#[sqlx::test]` + `sqlx::migrate!`",
    },
    Variant {
        package: "per-process",
        label: "(c) `TestServer::shared().migrated_database` (per-process template)",
    },
    Variant {
        package: "naive",
        label: "(d) fresh database + `Migrator::run` per test",
    },
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-test-databases")
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Writes the generated workspace: `migrations/` and one crate per variant.
fn generate(root: &Path, migrations: usize, tests: usize) {
    let dir = root.join("migrations");
    std::fs::create_dir_all(&dir).unwrap();
    for n in 1..=migrations {
        // Plain SQL after the marker: sqlx reads the marker as a comment.
        write_if_changed(
            &dir.join(format!("{n:04}_t{n:04}.sql")),
            &format!("-- migrate:up\nCREATE TABLE t_{n:04} (id int PRIMARY KEY, note text);\n"),
        );
    }
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let version: Option<usize> = entry
            .file_name()
            .to_str()
            .and_then(|n| n.get(..4)?.parse().ok());
        if version.is_none_or(|v| v > migrations) {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    let repo = repository();
    let ours = format!(
        "migrate-runtime = {{ path = {:?}, features = [\"testing\"] }}\nmigrate-macros = {{ path = {:?} }}\npostgres = \"=0.19.14\"\n",
        repo.join("migrate-runtime"),
        repo.join("migrate-macros")
    );
    std::fs::write(
        root.join("Cargo.toml"),
        "[workspace]\nresolver = \"2\"\nmembers = [\"ours\", \"with-sqlx\", \"per-process\", \"naive\"]\n",
    )
    .unwrap();
    let lock = root.join("Cargo.lock");
    if !lock.exists() {
        // The same versions as the repository's, so that little is compiled anew.
        std::fs::copy(repo.join("Cargo.lock"), &lock).unwrap();
    }
    for variant in VARIANTS {
        let dependencies = match variant.package {
            "with-sqlx" => format!(
                "{SQLX}\ntokio = {{ version = \"1\", features = [\"macros\", \"rt-multi-thread\"] }}\n"
            ),
            _ => ours.clone(),
        };
        let crate_dir = root.join(variant.package);
        std::fs::create_dir_all(crate_dir.join("src")).unwrap();
        std::fs::create_dir_all(crate_dir.join("tests")).unwrap();
        std::fs::write(
            crate_dir.join("Cargo.toml"),
            format!(
                "[package]\nname = \"{}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n[dev-dependencies]\n{dependencies}",
                variant.package
            ),
        )
        .unwrap();
        std::fs::write(crate_dir.join("src/lib.rs"), "").unwrap();
        // Embedded migrations do not track new files without it; the set never changes here.
        std::fs::write(
            crate_dir.join("build.rs"),
            "fn main() { println!(\"cargo:rerun-if-changed=../migrations\"); }\n",
        )
        .unwrap();
        write_if_changed(&crate_dir.join("tests/app.rs"), &app(variant, tests));
    }
}

/// Rewriting an unchanged file would rebuild everything that embeds the set.
fn write_if_changed(path: &Path, contents: &str) {
    if std::fs::read_to_string(path).ok().as_deref() != Some(contents) {
        std::fs::write(path, contents).unwrap();
    }
}

/// Records, per test: its name, the time its own code measured from its start to a usable
/// connection (-1 when the setup happens before its body, as in sqlx's), and the clock when the
/// connection was usable and when the test ended.
const RECORD: &str = r#"
fn now_ns() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

fn record(test: &str, setup_ns: i128, ready_ns: u128) {
    record_with_hand_out(test, setup_ns, -1, ready_ns)
}

fn record_with_hand_out(test: &str, setup_ns: i128, hand_out_ns: i128, ready_ns: u128) {
    use std::io::Write;
    let line = format!("{test} {setup_ns} {ready_ns} {} {hand_out_ns}\n", now_ns());
    let path = std::env::var("BENCH_TIMINGS").unwrap();
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    file.write_all(line.as_bytes()).unwrap();
}
"#;

fn app(variant: Variant, tests: usize) -> String {
    let mut text = String::from(RECORD);
    text.push_str(match variant.package {
        "with-sqlx" => "",
        _ => "\nstatic MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!(\"../migrations\");\n",
    });
    for n in 1..=tests {
        let table = format!("t_{:04}", (n % 1000).max(1));
        text.push_str(&match variant.package {
            "ours" => format!(
                r#"
#[migrate_macros::test(migrations = MIGRATIONS)]
fn test_{n:04}(database: migrate_runtime::testing::TestDatabase) {{
    let connecting = std::time::Instant::now();
    let mut client = database.client().unwrap();
    let hand_out = database.hand_out().unwrap().elapsed;
    let setup = hand_out + connecting.elapsed();
    let ready = now_ns();
    client.query_one("SELECT count(*) FROM {table}", &[]).unwrap();
    record_with_hand_out("test_{n:04}", setup.as_nanos() as i128, hand_out.as_nanos() as i128, ready);
}}
"#
            ),
            "with-sqlx" => format!(
                r#"
#[sqlx::test(migrations = "../migrations")]
async fn test_{n:04}(pool: sqlx::PgPool) {{
    let mut connection = pool.acquire().await.unwrap();
    let ready = now_ns();
    sqlx::query("SELECT count(*) FROM {table}").fetch_one(&mut *connection).await.unwrap();
    record("test_{n:04}", -1, ready);
}}
"#
            ),
            "per-process" => format!(
                r#"
#[test]
fn test_{n:04}() {{
    let start = std::time::Instant::now();
    let server = migrate_runtime::testing::TestServer::shared();
    let database = server.migrated_database(&migrate_runtime::Migrator::new(MIGRATIONS)).unwrap();
    let mut client = database.client().unwrap();
    let setup = start.elapsed();
    let ready = now_ns();
    client.query_one("SELECT count(*) FROM {table}", &[]).unwrap();
    record("test_{n:04}", setup.as_nanos() as i128, ready);
}}
"#
            ),
            _ => format!(
                r#"
#[test]
fn test_{n:04}() {{
    let start = std::time::Instant::now();
    let url = std::env::var("DATABASE_URL").unwrap();
    let name = format!("naive_{{}}_{n:04}", std::process::id());
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {{name}}")).unwrap();
    let mut config: postgres::Config = url.parse().unwrap();
    config.dbname(&name);
    let mut client = config.connect(postgres::NoTls).unwrap();
    migrate_runtime::Migrator::new(MIGRATIONS).run(&mut client).unwrap();
    let setup = start.elapsed();
    let ready = now_ns();
    client.query_one("SELECT count(*) FROM {table}", &[]).unwrap();
    record("test_{n:04}", setup.as_nanos() as i128, ready);
    drop(client);
    admin.batch_execute(&format!("DROP DATABASE {{name}} WITH (FORCE)")).unwrap();
}}
"#
            ),
        });
    }
    text
}

fn cargo(root: &Path) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .current_dir(root)
        .env("CARGO_TARGET_DIR", root.join("target"))
        .env_remove("RUSTFLAGS");
    command
}

/// One timed `cargo test` of a variant.
struct Run {
    wall: Duration,
    /// In-test setup times (start to usable connection), where the test could measure them.
    setup: Vec<Duration>,
    /// Of which the hand-out: the database there, before the test connects to it (ours).
    hand_outs: Vec<Duration>,
    /// With one test thread: from one test's end to the next test's usable connection.
    gaps: Vec<Duration>,
}

fn run_variant(root: &Path, variant: Variant, server: &TestServer, threads: Option<usize>) -> Run {
    let timings = root.join(format!("timings-{}.txt", variant.package));
    let _ = std::fs::remove_file(&timings);
    let mut command = cargo(root);
    command
        .args(["test", "-q", "-p", variant.package, "--test", "app", "--"])
        .env("BENCH_TIMINGS", &timings)
        .env("DATABASE_URL", server.url("postgres"))
        .env("MIGRATE_TEST_DATABASE_URL", server.url("postgres"));
    if let Some(threads) = threads {
        command.arg(format!("--test-threads={threads}"));
    }
    let started = Instant::now();
    let output = command.output().unwrap();
    let wall = started.elapsed();
    assert!(
        output.status.success(),
        "{} failed:\n{}{}",
        variant.package,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let mut rows: Vec<(i128, u128, u128, i128)> = std::fs::read_to_string(&timings)
        .unwrap()
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            (
                fields[1].parse().unwrap(),
                fields[2].parse().unwrap(),
                fields[3].parse().unwrap(),
                fields[4].parse().unwrap(),
            )
        })
        .collect();
    rows.sort_by_key(|row| row.1);
    // A column the test could not measure holds -1.
    let measured = |column: fn(&(i128, u128, u128, i128)) -> i128| -> Vec<Duration> {
        rows.iter()
            .map(column)
            .filter(|&nanos| nanos >= 0)
            .map(|nanos| Duration::from_nanos(nanos as u64))
            .collect()
    };
    let hand_outs = measured(|row| row.3);
    let setup = measured(|row| row.0);
    let gaps = if threads == Some(1) {
        rows.windows(2)
            .map(|pair| Duration::from_nanos((pair[1].1 - pair[0].2) as u64))
            .collect()
    } else {
        Vec::new()
    };
    Run {
        wall,
        setup,
        hand_outs,
        gaps,
    }
}

fn percentile(values: &[Duration], p: f64) -> String {
    if values.is_empty() {
        return "n/a".to_owned();
    }
    let mut sorted = values.to_vec();
    sorted.sort();
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    format!("{:.1} ms", sorted[index].as_secs_f64() * 1000.0)
}

/// Runs the comparison and prints the table (markdown).
pub(crate) fn run(migrations: usize, tests: usize, only: &[String], single_run: bool) {
    let root = root();
    std::fs::create_dir_all(&root).unwrap();
    generate(&root, migrations, tests);
    eprintln!("building the generated application ({migrations} migrations, {tests} tests per variant)...");
    let started = Instant::now();
    let status = cargo(&root)
        .args(["test", "--workspace", "--no-run", "-q"])
        .status()
        .unwrap();
    assert!(
        status.success(),
        "building the generated application failed"
    );
    eprintln!("  built in {:.0?}", started.elapsed());
    // A server of its own (fsync off, like the shared test server) for the variants that take
    // a URL; the per-process variant starts its own in each test process, as it does today.
    let server = TestServer::start().expect("PostgreSQL server binaries are needed");
    let fsync: String = server
        .connect("postgres")
        .unwrap()
        .query_one("SHOW fsync", &[])
        .unwrap()
        .get(0);
    println!("| variant | run | `cargo test` wall time | in-test start → usable connection: median / p99 | of which the hand-out (database there, before connecting): median / p99 | test end → next test's usable connection (1 thread): median / p99 |");
    println!("|---|---|---|---|---|---|");
    for variant in VARIANTS {
        if !only.is_empty() && !only.iter().any(|p| p == variant.package) {
            continue;
        }
        let mut runs = vec![
            ("first run, 1 thread", Some(1)),
            ("later run, 1 thread", Some(1)),
            ("later run, default threads", None),
        ];
        if single_run && variant.package != "ours" {
            // Nothing outlives their process: every run is a first run.
            runs = vec![("any run, default threads", None)];
        }
        for (run, threads) in runs {
            eprintln!("{}: {run}...", variant.package);
            let result = run_variant(&root, variant, &server, threads);
            println!(
                "| {} | {run} | {:.2} s | {} / {} | {} / {} | {} / {} |",
                variant.label,
                result.wall.as_secs_f64(),
                percentile(&result.setup, 0.5),
                percentile(&result.setup, 0.99),
                percentile(&result.hand_outs, 0.5),
                percentile(&result.hand_outs, 0.99),
                percentile(&result.gaps, 0.5),
                percentile(&result.gaps, 0.99),
            );
        }
    }
    println!("\n{migrations} migrations, {tests} tests; server: a throwaway PostgreSQL started by the benchmark, fsync={fsync}");
}

/// `CREATE DATABASE ... STRATEGY` timed for each strategy, on a server with fsync off and on,
/// from a template of `migrations` tables.
pub(crate) fn clone_strategies(migrations: usize, reps: usize) {
    println!("| server | template | strategy | median clone | min | max |");
    println!("|---|---|---|---|---|---|");
    for durable in [false, true] {
        let server = if durable {
            TestServer::start_durable()
        } else {
            TestServer::start()
        }
        .expect("PostgreSQL server binaries are needed");
        let mut admin = server.connect("postgres").unwrap();
        admin.batch_execute("CREATE DATABASE tpl").unwrap();
        let mut template = server.connect("tpl").unwrap();
        let mut sql = String::new();
        for n in 0..migrations {
            sql.push_str(&format!(
                "CREATE TABLE t_{n} (id int PRIMARY KEY, note text);\n"
            ));
        }
        template.batch_execute(&sql).unwrap();
        drop(template);
        for strategy in ["FILE_COPY", "WAL_LOG"] {
            let mut times = Vec::new();
            for rep in 0..reps {
                let name = format!("c_{strategy}_{rep}").to_lowercase();
                let started = Instant::now();
                admin
                    .batch_execute(&format!(
                        "CREATE DATABASE {name} TEMPLATE tpl STRATEGY {strategy}"
                    ))
                    .unwrap();
                times.push(started.elapsed());
            }
            times.sort();
            println!(
                "| fsync={} | {migrations} tables | {strategy} | {:.1} ms | {:.1} ms | {:.1} ms |",
                if durable { "on" } else { "off" },
                times[times.len() / 2].as_secs_f64() * 1000.0,
                times[0].as_secs_f64() * 1000.0,
                times[times.len() - 1].as_secs_f64() * 1000.0,
            );
        }
    }
}
