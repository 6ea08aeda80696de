//! Commands run without the caller's settings, and what a finished run showed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// Removes from `command`'s environment every variable the `migrate` command line (standalone
/// or built into an application) reads its settings from, so that a developer's `PGHOST` or
/// `DATABASE_URL` cannot leak into a test. What is set on `command` afterwards still applies.
pub fn without_settings(command: &mut Command) -> &mut Command {
    for (variable, _) in std::env::vars() {
        if variable.starts_with("PG")
            || variable.starts_with("DB_")
            || variable.starts_with("MIGRATE")
            || [
                "MIGRATIONS_DIR",
                "DATABASE_URL",
                "CONFIRM_PRODUCTION_MIGRATION",
                "INTERNAL_ADMIN_TOKEN",
            ]
            .contains(&variable.as_str())
        {
            command.env_remove(variable);
        }
    }
    command
}

/// Starts `command` with its standard output and error captured.
pub fn spawn(command: &mut Command) -> Child {
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// What a finished run showed.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn of(output: &Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Standard output read as JSON; panics showing everything the run printed if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.all()))
    }

    /// Standard output, then standard error.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Standard output, then standard error, of a finished run.
pub fn text(output: &Output) -> String {
    Run::of(output).all()
}

/// Builds example `name` of `package` with `features`, in the target directory and profile of
/// the running test, and returns its path: an example is a program a user runs, so its test
/// runs the binary (`cargo test --test NAME` does not build examples itself). Pass the
/// features the test was built with, or the library is built a second time with others.
pub fn example(package: &str, name: &str, features: &[&str]) -> PathBuf {
    // The test is `<target>/<profile>/deps/<test>-<hash>`.
    let test = std::env::current_exe().unwrap();
    let profile_dir = test.parent().and_then(Path::parent).unwrap();
    let target_dir = profile_dir.parent().unwrap();
    let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
        "debug" => "dev",
        other => other,
    };
    let output = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--quiet", "--package", package, "--example", name])
        .arg("--no-default-features")
        .arg(format!("--features={}", features.join(",")))
        .arg(format!("--profile={profile}"))
        .arg("--target-dir")
        .arg(target_dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "building example {name}:\n{}",
        text(&output)
    );
    let binary = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(binary.is_file(), "{} was not built", binary.display());
    binary
}
