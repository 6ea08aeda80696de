//! Everything the command line prints: readable text (colour only on a terminal, never with
//! `NO_COLOR`) or, with `--json`, one JSON document on standard output per command.
#![allow(clippy::print_stdout, clippy::print_stderr)] // This module is the command line's voice.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;

use serde_json::{json, Value};

use super::Failure;
use crate::config::{ConfigError, ConnectionSettings};
use crate::shapes;
use crate::{
    Action, ActionStatus, Migration, Phase, Plan, Progress, Readiness, Rehearsed, Repair, Report,
    State, Status,
};

pub(super) struct Output {
    json: bool,
    color: bool,
    /// Steps done so far, for a JSON error that must say what happened before it.
    done: Mutex<Vec<Value>>,
    /// With several migration sets, each set's documents, held back to be printed as one
    /// (see [`Output::per_set`]).
    collected: Mutex<Option<Vec<Value>>>,
}

#[derive(Clone, Copy)]
enum Paint {
    Green = 32,
    Yellow = 33,
    Red = 31,
    Dim = 2,
}

impl Output {
    pub(super) fn new(json: bool) -> Output {
        let color =
            !json && std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Output {
            json,
            color,
            done: Mutex::new(Vec::new()),
            collected: Mutex::new(None),
        }
    }

    fn paint(&self, paint: Paint, text: &str) -> String {
        if self.color {
            format!("\x1b[{}m{text}\x1b[0m", paint as u8)
        } else {
            text.to_owned()
        }
    }

    fn emit(&self, value: Value) {
        match self.held().as_mut() {
            Some(documents) => documents.push(value),
            None => println!("{value:#}"),
        }
    }

    /// Runs `each` for every set, after a `set NAME:` line on standard error. With `--json`,
    /// what each prints is held back and printed at the end as one document,
    /// `{"sets": [{"set": NAME, "result": ...}, ...]}`; when one fails, printing is back to
    /// normal before the error is returned, so that its document is printed. The highest
    /// exit code of the sets.
    pub(super) fn per_set<T>(
        &self,
        items: &[T],
        name: impl Fn(&T) -> &str,
        mut each: impl FnMut(&T) -> Result<u8, Failure>,
    ) -> Result<u8, Failure> {
        if self.json {
            *self.held() = Some(Vec::new());
        }
        let mut code = super::exit::SUCCESS;
        let mut results = Vec::new();
        let ran: Result<(), Failure> = items.iter().try_for_each(|item| {
            self.note(&format!("set {}:", name(item)));
            code = code.max(each(item)?);
            let mut documents = self.held().as_mut().map(std::mem::take).unwrap_or_default();
            let result = match documents.len() {
                0 => Value::Null,
                1 => documents.remove(0),
                _ => Value::Array(documents),
            };
            results.push(json!({ "set": name(item), "result": result }));
            Ok(())
        });
        *self.held() = None;
        ran?;
        if self.json {
            self.emit(json!({ "sets": results }));
        }
        Ok(code)
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Option<Vec<Value>>> {
        self.collected.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Progress and notes go to standard error, so standard output stays the result.
    pub(super) fn note(&self, text: &str) {
        eprintln!("{text}");
    }

    pub(super) fn connecting(&self, settings: &ConnectionSettings) {
        self.note(&format!(
            "connecting to {} (from {})",
            settings.describe(),
            settings.source()
        ));
    }

    /// One line per migration as it is applied or reverted, with its duration.
    /// A retry is a note on stderr (so no wait is silent), not a step.
    pub(super) fn progress(&self, progress: Progress<'_>) {
        let (verb, done, paint) = match progress {
            Progress::Applied(done) => ("applied", done, Paint::Green),
            Progress::Reverted(done) => ("reverted", done, Paint::Yellow),
            Progress::Waiting(waiting) => {
                self.note(&format!(
                    "waiting: {} could not get a lock in time ({}); attempt {} in {} ms",
                    waiting.during,
                    waiting.cause,
                    waiting.attempt,
                    waiting.pause.as_millis()
                ));
                return;
            }
        };
        self.done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(shapes::progress(progress));
        if !self.json {
            println!(
                "{} {:>6} {:<40} {:>6} ms",
                self.paint(paint, &format!("{verb:<8}")),
                done.version,
                done.name,
                done.duration.as_millis()
            );
        }
    }

    /// The end of `up`/`down`/`redo`: the lines were printed as the steps happened.
    pub(super) fn report(&self, report: &Report) {
        if self.json {
            return self.emit(shapes::report(report));
        }
        match (report.applied.len(), report.reverted.len()) {
            (0, 0) => println!("nothing to do: the database is up to date"),
            (applied, 0) => println!("{applied} migration(s) applied"),
            (0, reverted) => println!("{reverted} migration(s) reverted"),
            (applied, reverted) => println!("{reverted} reverted, {applied} applied"),
        }
    }

    pub(super) fn status(&self, status: &Status) {
        if self.json {
            return self.emit(shapes::status(status));
        }
        println!(
            "{:>14}  {:<34} {:<24} {:<11} {:<19} {:>8}  by",
            "version", "name", "state", "phase", "applied at", "ms"
        );
        for entry in &status.entries {
            let state = entry.state.as_str();
            let paint = match entry.state {
                State::Applied => Paint::Green,
                State::Pending | State::FilteredByEnvironment => Paint::Yellow,
                _ => Paint::Red,
            };
            let (at, ms, by) =
                entry
                    .applied
                    .as_ref()
                    .map_or((String::new(), String::new(), String::new()), |r| {
                        (
                            human_time(r.applied_at_micros),
                            r.execution_time_ms.to_string(),
                            r.applied_by.clone(),
                        )
                    });
            let phase = entry.phase.map_or("", Phase::as_str);
            println!(
                "{:>14}  {:<34} {} {phase:<11} {at:<19} {ms:>8}  {by}",
                entry.version,
                entry.name,
                self.paint(paint, &format!("{state:<24}"))
            );
        }
        for index in &status.invalid_indexes {
            println!(
                "{} index {index} is INVALID (a failed CREATE INDEX CONCURRENTLY leaves one): drop it with DROP INDEX CONCURRENTLY {index}",
                self.paint(Paint::Red, "warning:")
            );
        }
        println!("{} pending", status.pending());
    }

    pub(super) fn plan(&self, plan: &Plan<'_>, with_sql: bool) {
        if self.json {
            return self.emit(shapes::plan(plan, with_sql));
        }
        if plan.pending.is_empty() {
            println!("nothing pending");
        }
        for migration in &plan.pending {
            let mode = match migration.up().inferred_no_transaction() {
                _ if migration.up().is_transactional() => "in a transaction".to_owned(),
                Some(why) => format!("statement by statement; inferred: no transaction ({why})"),
                None => "statement by statement, no transaction".to_owned(),
            };
            println!(
                "would apply {:>6} {:<40} ({mode}) {}  {}",
                migration.version(),
                migration.name(),
                migration.phase(),
                self.paint(Paint::Dim, migration.path())
            );
            if with_sql {
                for statement in crate::source::statements::split(migration.up().sql()) {
                    for line in statement.text.lines() {
                        println!("    {line}");
                    }
                }
            }
        }
        for migration in &plan.waiting {
            println!(
                "waits       {:>6} {:<40} ({}: for `up --phase post-deploy`)  {}",
                migration.version(),
                migration.name(),
                migration.phase(),
                self.paint(Paint::Dim, migration.path())
            );
        }
    }

    /// `squash`: the file written, what it replaced and carried, and what it did not carry.
    pub(super) fn squashed(&self, written: &std::path::Path, squash: &crate::Squash) {
        if self.json {
            let rows: serde_json::Map<String, Value> = squash
                .carried_rows
                .iter()
                .map(|(table, rows)| (table.clone(), json!(rows)))
                .collect();
            return self.emit(json!({
                "written": written.display().to_string(),
                "version": squash.version,
                "replaced": squash.replaced,
                "deleted": squash.files,
                "carried_rows": rows,
                "not_carried": squash.not_carried,
            }));
        }
        println!(
            "wrote {} in place of {} migration(s) (deleted: {})",
            written.display(),
            squash.replaced.len(),
            squash.files.join(", ")
        );
        for (table, rows) in &squash.carried_rows {
            println!("  carried: {rows} row(s) of {table}");
        }
        for statement in &squash.not_carried {
            println!(
                "  {} {statement}",
                self.paint(Paint::Yellow, "not carried (privileges):")
            );
        }
    }

    /// After `up`: the migrations the pre-deploy phase left, and the command that applies them.
    pub(super) fn waiting(&self, waiting: &[&Migration]) {
        if let Some(first) = waiting.first() {
            self.note(&format!(
                "{} migration(s) wait for the post-deploy phase, from {} {} ({}): once the new version is fully rolled out, run `migrate up --phase post-deploy`",
                waiting.len(),
                first.version(),
                first.name(),
                first.phase()
            ));
        }
    }

    /// `check`'s answer: ready, or what is missing.
    pub(super) fn readiness(&self, readiness: &Readiness<'_>) {
        if self.json {
            return self.emit(shapes::readiness(readiness));
        }
        if readiness.is_ready() {
            println!("ready: every migration this binary needs is applied");
        } else {
            println!(
                "{} {} migration(s) this binary needs are not applied:",
                self.paint(Paint::Red, "not ready:"),
                readiness.missing.len()
            );
            for migration in &readiness.missing {
                println!(
                    "  missing {:>6} {:<40} ({})  {}",
                    migration.version(),
                    migration.name(),
                    migration.phase(),
                    self.paint(Paint::Dim, migration.path())
                );
            }
            println!("  help: apply them with `migrate up` (a migration behind a pending post-deploy one needs `migrate up --phase post-deploy` first)");
        }
        for migration in &readiness.post_deploy_pending {
            println!(
                "  post-deploy pending {:>6} {} (not needed by this binary; `migrate up --phase post-deploy` after the rollout)",
                migration.version(),
                migration.name()
            );
        }
        for row in &readiness.ahead {
            println!(
                "  ahead {:>6} {} (applied by a newer release; tolerated)",
                row.version, row.name
            );
        }
    }

    /// `check --wait-ready`: what it is still waiting for.
    pub(super) fn waiting_ready(&self, readiness: &Readiness<'_>) {
        let missing: Vec<String> = readiness
            .missing
            .iter()
            .map(|m| format!("{} {}", m.version(), m.name()))
            .collect();
        self.note(&format!(
            "waiting: not ready, missing {}; checking again every second",
            missing.join(", ")
        ));
    }

    pub(super) fn validated(&self, total: usize, pending: usize) {
        if self.json {
            return self.emit(json!({"valid": true, "migrations": total, "pending": pending}));
        }
        println!("valid: the history agrees with the {total} migrations; {pending} pending");
    }

    pub(super) fn history(&self, actions: &[Action]) {
        if self.json {
            return self.emit(shapes::history(actions));
        }
        for action in actions {
            let status = match action.status {
                ActionStatus::Success => self.paint(Paint::Green, "success"),
                ActionStatus::Failed => self.paint(Paint::Red, "failed"),
            };
            let detail = action
                .error_message
                .as_deref()
                .or(action.note.as_deref())
                .unwrap_or("");
            println!(
                "{:<19} {:<9} {:>6} {:<34} {status:<8} {:>6} ms  {}  {detail}",
                human_time(action.started_at_micros),
                action.action,
                action.version,
                action.name,
                action.duration_ms,
                action.executed_by,
            );
        }
    }

    pub(super) fn baselined(&self, versions: &[i64]) {
        if self.json {
            return self.emit(json!({"recorded": versions}));
        }
        println!(
            "recorded {} migration(s) as applied without running them: {versions:?}",
            versions.len()
        );
    }

    pub(super) fn repaired(&self, version: i64, repair: Repair) {
        let mark = match repair {
            Repair::RolledBack => "rolled_back",
            Repair::Applied => "applied",
            Repair::AcceptChecksum => "accept_checksum",
        };
        if self.json {
            return self.emit(json!({"repaired": {"version": version, "mark": mark}}));
        }
        println!("repaired migration {version}: {}", mark.replace('_', " "));
    }

    pub(super) fn created(&self, paths: &[PathBuf]) {
        if self.json {
            let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            return self.emit(json!({"created": paths}));
        }
        for path in paths {
            println!("created {}", path.display());
        }
    }

    /// Prints the rehearsal; returns whether anything would fail.
    pub(super) fn rehearsal(&self, outcomes: &[(&Migration, Rehearsed)]) -> bool {
        let failed = shapes::rehearsal_failed(outcomes);
        if self.json {
            self.emit(shapes::rehearsal(outcomes));
            return failed;
        }
        for (migration, outcome) in outcomes {
            let head = format!("{:>6} {:<40}", migration.version(), migration.name());
            match outcome {
                Rehearsed::WouldApply(duration) => println!(
                    "{} {head} {:>6} ms",
                    self.paint(Paint::Green, "ok        "),
                    duration.as_millis()
                ),
                Rehearsed::WouldFail(failure) => {
                    println!(
                        "{} {head}\n{}",
                        self.paint(Paint::Red, "would fail"),
                        failure.render()
                    )
                }
                Rehearsed::NotTestable => println!(
                    "{} {head} (runs outside a transaction: cannot be tried and rolled back)",
                    self.paint(Paint::Yellow, "untested  ")
                ),
                _ => println!(
                    "{} {head} (after a failure)",
                    self.paint(Paint::Dim, "not tried ")
                ),
            }
        }
        println!("everything was rolled back; the database is unchanged");
        failed
    }

    /// `lint`: each finding; the exit code says whether any is not allowed.
    pub(super) fn lint(
        &self,
        findings: &[crate::source::lint::Finding],
        migrations: &[Migration],
    ) -> u8 {
        let errors = findings.iter().filter(|f| !f.allowed).count();
        if self.json {
            self.emit(shapes::lint(findings, migrations));
        } else {
            for finding in findings {
                println!("{finding}\n");
            }
            for (path, why) in shapes::inferred(migrations) {
                println!("note: {path}: inferred: no transaction ({why})\n");
            }
            println!(
                "{} finding(s): {errors} error(s), {} allowed",
                findings.len(),
                findings.len() - errors
            );
        }
        if errors > 0 {
            super::exit::FAILED
        } else {
            super::exit::SUCCESS
        }
    }

    /// `verify`: the report; fails when a migration's DOWN is broken (or, with
    /// `deny_irreversible`, missing).
    pub(super) fn verified(
        &self,
        report: &crate::verify::VerifyReport,
        deny_irreversible: bool,
    ) -> u8 {
        if self.json {
            self.emit(shapes::verified(report, deny_irreversible));
        } else {
            println!("{report}");
        }
        if report.passed(deny_irreversible) {
            super::exit::SUCCESS
        } else {
            super::exit::FAILED
        }
    }

    /// `drift`: the differences; fails when there are any.
    pub(super) fn drift(&self, drift: &crate::verify::Drift) -> u8 {
        if self.json {
            self.emit(shapes::drift(drift));
        } else {
            println!("{drift}");
        }
        if drift.diff.is_empty() {
            super::exit::SUCCESS
        } else {
            super::exit::FAILED
        }
    }

    pub(super) fn failure(&self, failure: &Failure) {
        let message = match failure {
            Failure::Usage(message) => format!("error: {message}"),
            Failure::Config(error) | Failure::Unreachable(error) => error.to_string(),
            Failure::Retry(message) => format!("error: {message}"),
            Failure::Files(problems) => problems.to_string(),
            Failure::Migrate(error) => error.render().to_string(),
            Failure::Interrupted { signal, cause } => interrupted(signal.name(), cause),
        };
        if !self.json {
            return eprintln!("{message}");
        }
        let error = match failure {
            Failure::Migrate(error) => Some(error),
            Failure::Interrupted { cause, .. } => match cause.as_ref() {
                Failure::Migrate(error) => Some(error),
                _ => None,
            },
            _ => None,
        };
        let mut body = shapes::error_body(kind(failure), &message, error);
        if let Failure::Interrupted { signal, cause } = failure {
            shapes::merge(
                &mut body,
                json!({"signal": signal.name(), "cause_kind": kind(cause)}),
            );
        }
        shapes::merge(
            &mut body,
            json!({"done_before": *self.done.lock().unwrap_or_else(|e| e.into_inner())}),
        );
        self.emit(json!({"error": body}));
    }
}

fn kind(failure: &Failure) -> &'static str {
    match failure {
        Failure::Config(ConfigError::NotConfigured) => "no_database",
        Failure::Usage(_) | Failure::Config(_) => "usage",
        Failure::Files(_) => "invalid_migration_files",
        Failure::Unreachable(_) | Failure::Retry(_) => "unreachable",
        Failure::Migrate(error) => crate::outcome::of(error).kind,
        Failure::Interrupted { .. } => "interrupted",
    }
}

/// A signal stopped the command: what the user asked to stop, then how it ended.
fn interrupted(signal: &str, cause: &Failure) -> String {
    let how = match cause {
        Failure::Usage(message) | Failure::Retry(message) => message.clone(),
        Failure::Config(error) | Failure::Unreachable(error) => error.to_string(),
        Failure::Files(problems) => problems.to_string(),
        Failure::Migrate(error) => error.to_string(),
        Failure::Interrupted { cause, .. } => return interrupted(signal, cause),
    };
    format!(
        "error: interrupted by {signal}: the running statement was cancelled, and what it was part of rolled back\n   = cause: {how}\n   = help: what committed before the interrupt stays applied: `migrate status` shows where it stopped"
    )
}

fn human_time(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}
