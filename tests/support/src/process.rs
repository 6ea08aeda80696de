//! Commands run without the caller's settings, and what a finished run showed.

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
