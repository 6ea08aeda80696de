//! `--file-sizes 1,10,50`: one migration of N MB of INSERT lines, and what reading it costs
//! without a database: the lexer and statement splitter, `source::read_dir` (what
//! `embed_migrations!` and `status` do), and `lint_set`. Each is measured in a child process
//! of its own (this binary again, with [`CHILD_FLAG`]), for its wall time and its peak
//! resident memory (`VmHWM`, reset after the setup the measurement does not cover). Then
//! `cargo build` (dev profile, as an application's debug build) of a crate embedding the file,
//! its dependencies built beforehand, timed by GNU time (`/usr/bin/time`), whose peak is the
//! largest process of the build: rustc, with the macro running inside it.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use migrate_runtime::source::{lexer::Lexer, lint, read_dir, statements};

/// The hidden argument that makes this binary measure one phase: `PHASE DIR`.
pub(crate) const CHILD_FLAG: &str = "--measure-file-phase";

const PHASES: [&str; 3] = ["lex+split", "read_dir", "lint_set"];

/// Writes `dir/001_big.sql`: a table, then INSERT lines up to `megabytes` MB. Returns the
/// file's size in bytes and its statement count.
fn generate(dir: &Path, megabytes: usize) -> (usize, usize) {
    let target = megabytes * 1_000_000;
    let mut text = String::with_capacity(target + 200);
    text.push_str("CREATE TABLE items (id bigint PRIMARY KEY, name text, note text);\n");
    let mut statements = 1;
    while text.len() < target {
        text.push_str(&format!(
            "INSERT INTO items (id, name, note) VALUES ({statements}, 'item {statements}', 'a note; with a semicolon');\n"
        ));
        statements += 1;
    }
    std::fs::write(dir.join("001_big.sql"), &text).expect("writing the generated migration");
    (text.len(), statements)
}

/// Runs every phase for every size, and prints the table.
pub(crate) fn run(sizes: &[usize]) {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let mut rows = Vec::new();
    for &megabytes in sizes {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (bytes, statements) = generate(dir.path(), megabytes);
        eprintln!("{megabytes} MB ({statements} statements)...");
        for phase in PHASES {
            let output = Command::new(&exe)
                .args([CHILD_FLAG, phase])
                .arg(dir.path())
                .output()
                .expect("running the benchmark's child");
            let text = String::from_utf8_lossy(&output.stdout);
            let mut fields = text.split_whitespace();
            let (Some(seconds), Some(peak_kb)) = (fields.next(), fields.next()) else {
                panic!(
                    "{phase} at {megabytes} MB failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            };
            let seconds: f64 = seconds.parse().unwrap();
            let peak = peak_kb.parse::<f64>().unwrap() * 1024.0;
            rows.push(format!(
                "| {megabytes} MB ({statements} statements) | {phase} | {seconds:.2} s | {:.0} MB | {:.1}x |",
                peak / 1e6,
                peak / bytes as f64
            ));
        }
        let (seconds, peak) = cargo_build_embedding(dir.path());
        rows.push(format!(
            "| {megabytes} MB ({statements} statements) | cargo build (dev) | {seconds:.2} s | {:.0} MB | {:.1}x |",
            peak / 1e6,
            peak / bytes as f64
        ));
    }
    println!("| file | step | wall time | peak memory | peak / file size |");
    println!("|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
}

/// Builds a crate that embeds the migration in `dir` (dependencies first, untimed), then
/// rebuilds only the crate: its wall time in seconds and the build's peak memory in bytes.
fn cargo_build_embedding(dir: &Path) -> (f64, f64) {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap();
    let app = dir.join("app");
    std::fs::create_dir_all(app.join("src")).unwrap();
    std::fs::create_dir_all(app.join("migrations")).unwrap();
    std::fs::rename(dir.join("001_big.sql"), app.join("migrations/001_big.sql")).unwrap();
    std::fs::write(
        app.join("Cargo.toml"),
        format!(
            "[package]\nname = \"embed-large\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n[dependencies]\n\
             migrate-runtime = {{ path = {:?}, default-features = false }}\nmigrate-macros = {{ path = {:?} }}\n\n[workspace]\n",
            workspace.join("migrate-runtime"),
            workspace.join("migrate-macros")
        ),
    )
    .unwrap();
    let main = "#[allow(deprecated)] // No build script: nothing is added to this directory.\n\
                static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!();\n\
                fn main() { println!(\"{}\", std::hint::black_box(MIGRATIONS)[0].up().sql().len()); }\n";
    let build = |timed: bool| {
        std::fs::write(app.join("src/main.rs"), main).unwrap();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = if timed {
            let mut time = Command::new("/usr/bin/time");
            time.args(["-f", "%e %M"]).arg(cargo);
            time
        } else {
            Command::new(cargo)
        };
        let output = command
            .current_dir(&app)
            .env("CARGO_TARGET_DIR", workspace.join("target/bench-file-size"))
            .args(["build", "--quiet"])
            .output()
            .expect("running cargo (and GNU time: apt-get install time)");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "cargo build failed: {stderr}");
        stderr
    };
    build(false);
    let measured = build(true);
    let mut fields = measured.split_whitespace().rev();
    let peak_kb: f64 = fields
        .next()
        .and_then(|kb| kb.parse().ok())
        .expect("GNU time's %M");
    let seconds: f64 = fields
        .next()
        .and_then(|s| s.parse().ok())
        .expect("GNU time's %e");
    (seconds, peak_kb * 1024.0)
}

/// In the child: one phase on the migration in `dir`; prints `seconds peak_kb`.
pub(crate) fn child(phase: &str, dir: &Path) {
    let (seconds, peak) = match phase {
        "lex+split" => {
            let text = std::fs::read_to_string(dir.join("001_big.sql")).unwrap();
            reset_peak();
            let started = Instant::now();
            let tokens = Lexer::new(&text).count();
            let mut statements = 0;
            for statement in statements::split(&text) {
                std::hint::black_box(statements::classify(statement.text));
                statements += 1;
            }
            assert!(tokens > statements);
            (started.elapsed(), peak_kb())
        }
        "read_dir" => {
            reset_peak();
            let started = Instant::now();
            let loaded = read_dir(dir, "").expect("the generated migration is valid");
            assert_eq!(loaded.migrations.len(), 1);
            (started.elapsed(), peak_kb())
        }
        "lint_set" => {
            let loaded = read_dir(dir, "").expect("the generated migration is valid");
            reset_peak();
            let started = Instant::now();
            let findings = lint::lint_set(&loaded.migrations);
            assert!(findings.is_empty());
            (started.elapsed(), peak_kb())
        }
        other => panic!("unknown phase {other}"),
    };
    let mut out = std::io::stdout();
    writeln!(out, "{} {peak}", seconds.as_secs_f64()).unwrap();
}

/// Resets `VmHWM` to the current resident size (Linux: `5` to `/proc/self/clear_refs`).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0)
}
