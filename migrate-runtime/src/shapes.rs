//! The documented JSON shapes, built once for `--json` and for the admin HTTP endpoint.

use serde_json::{json, Value};

use crate::source::lint::Finding;
use crate::verify::{Drift, Verdict, VerifyReport};
use crate::{
    Action, Error, Migration, MigrationFailure, OtherTool, Phase, Plan, Progress, Readiness,
    Rehearsed, Report, SchemaDiff, Status,
};

/// `status`: `{"migrations": [...], "pending": n, "invalid_indexes": [...]}`.
pub(crate) fn status(status: &Status) -> Value {
    let migrations: Vec<Value> = status
        .entries
        .iter()
        .map(|e| {
            let row = e.applied.as_ref();
            json!({
                "version": e.version,
                "name": e.name,
                "state": e.state.as_str(),
                "path": e.path,
                "inferred": e.inferred.as_ref().map(|why| format!("no transaction ({why})")),
                "phase": e.phase.map(Phase::as_str),
                "applied_at": row.map(|r| rfc3339(r.applied_at_micros)),
                "execution_time_ms": row.map(|r| r.execution_time_ms),
                "applied_by": row.map(|r| r.applied_by.clone()),
                "error": row.and_then(|r| r.error_message.clone()),
            })
        })
        .collect();
    json!({
        "migrations": migrations,
        "pending": status.pending(),
        "invalid_indexes": status.invalid_indexes,
    })
}

/// `plan` and `up --dry-run`: `{"pending": [...], "waiting": [...]}`, with each file's SQL
/// when asked; `waiting` lists what the phase leaves for `up --phase post-deploy`.
pub(crate) fn plan(plan: &Plan<'_>, with_sql: bool) -> Value {
    let steps: Vec<Value> = plan
        .pending
        .iter()
        .map(|m| {
            json!({
                "version": m.version(),
                "name": m.name(),
                "path": m.path(),
                "phase": m.phase().as_str(),
                "transaction": m.up().is_transactional(),
                "inferred": m.up().inferred_no_transaction().map(|why| format!("no transaction ({why})")),
                "sql": with_sql.then(|| m.up().sql()),
            })
        })
        .collect();
    json!({ "pending": steps, "waiting": migrations(&plan.waiting) })
}

/// Migrations named by version, name, path and phase.
fn migrations(list: &[&Migration]) -> Vec<Value> {
    list.iter()
        .map(|m| json!({"version": m.version(), "name": m.name(), "path": m.path(), "phase": m.phase().as_str()}))
        .collect()
}

/// `check`: `{"ready": bool, "missing": [...], "post_deploy_pending": [...], "ahead": [...]}`.
pub(crate) fn readiness(readiness: &Readiness<'_>) -> Value {
    let ahead: Vec<Value> = readiness
        .ahead
        .iter()
        .map(|row| json!({"version": row.version, "name": row.name}))
        .collect();
    json!({
        "ready": readiness.is_ready(),
        "missing": migrations(&readiness.missing),
        "post_deploy_pending": migrations(&readiness.post_deploy_pending),
        "ahead": ahead,
    })
}

/// `up`, `down`, `redo`: `{"applied": [...], "reverted": [...]}`.
pub(crate) fn report(report: &Report) -> Value {
    let lines = |entries: &[crate::AppliedReport]| -> Vec<Value> {
        entries
            .iter()
            .map(|a| json!({"version": a.version, "name": a.name, "duration_ms": a.duration.as_millis() as u64}))
            .collect()
    };
    json!({"applied": lines(&report.applied), "reverted": lines(&report.reverted)})
}

/// One step as it happened, for the `done_before` list of an error.
/// `None` for a unit that waits to try again: only steps done are listed.
pub(crate) fn progress(progress: Progress<'_>) -> Option<Value> {
    let (verb, done) = match progress {
        Progress::Applied(done) => ("applied", done),
        Progress::Reverted(done) => ("reverted", done),
        Progress::Waiting(_) => return None,
    };
    Some(json!({
        "action": verb, "version": done.version, "name": done.name,
        "duration_ms": done.duration.as_millis() as u64,
    }))
}

/// `history`: `{"actions": [...]}`.
pub(crate) fn history(actions: &[Action]) -> Value {
    let rows: Vec<Value> = actions
        .iter()
        .map(|a| {
            json!({
                "id": a.id, "version": a.version, "name": a.name, "action": a.action.as_str(),
                "status": a.status.as_str(), "started_at": rfc3339(a.started_at_micros),
                "duration_ms": a.duration_ms, "executed_by": a.executed_by,
                "environment": a.environment, "error": a.error_message, "note": a.note,
            })
        })
        .collect();
    json!({ "actions": rows })
}

/// Whether a rehearsal found a migration that would fail.
pub(crate) fn rehearsal_failed(outcomes: &[(&Migration, Rehearsed)]) -> bool {
    outcomes
        .iter()
        .any(|(_, o)| matches!(o, Rehearsed::WouldFail(_)))
}

/// `up --dry-run --execute`: `{"rehearsal": [...], "failed": bool}`.
pub(crate) fn rehearsal(outcomes: &[(&Migration, Rehearsed)]) -> Value {
    let rows: Vec<Value> = outcomes
        .iter()
        .map(|(m, outcome)| {
            let (word, extra) = match outcome {
                Rehearsed::WouldApply(duration) => (
                    "would_apply",
                    json!({"duration_ms": duration.as_millis() as u64}),
                ),
                Rehearsed::WouldFail(failure) => {
                    ("would_fail", json!({"error": migration_failure(failure)}))
                }
                Rehearsed::NotTestable => ("not_testable", json!({})),
                _ => ("not_reached", json!({})),
            };
            let mut row = json!({"version": m.version(), "name": m.name(), "outcome": word});
            merge(&mut row, extra);
            row
        })
        .collect();
    json!({"rehearsal": rows, "failed": rehearsal_failed(outcomes)})
}

/// `verify`: each migration's verdict, and whether the whole set passed.
pub(crate) fn verified(report: &VerifyReport, deny_irreversible: bool) -> Value {
    let rows: Vec<Value> = report
        .migrations
        .iter()
        .map(|m| {
            let (verdict, detail) = match &m.verdict {
                Verdict::Reversible => ("reversible", Value::Null),
                Verdict::Irreversible => ("irreversible", Value::Null),
                Verdict::UpFailed(e) => ("up_failed", json!(e.render().to_string())),
                Verdict::DownFailed(e) => ("down_failed", json!(e.render().to_string())),
                Verdict::DownDoesNotRestore(diff) => ("down_does_not_restore", schema_diff(diff)),
                Verdict::DownReordersColumns(diff) => ("down_reorders_columns", schema_diff(diff)),
                Verdict::UpAgainFailed(e) => ("up_again_failed", json!(e.render().to_string())),
            };
            json!({"version": m.version, "name": m.name, "path": m.path, "verdict": verdict, "detail": detail})
        })
        .collect();
    json!({"migrations": rows, "passed": report.passed(deny_irreversible)})
}

/// A schema difference: `removed`, `added` (object, definition) and `changed` (object,
/// before, after).
pub(crate) fn schema_diff(diff: &SchemaDiff) -> Value {
    let pairs = |items: &[(String, String)]| -> Vec<Value> {
        items
            .iter()
            .map(|(object, definition)| json!({"object": object, "definition": definition}))
            .collect()
    };
    let changed: Vec<Value> = diff
        .changed
        .iter()
        .map(|(object, before, after)| json!({"object": object, "before": before, "after": after}))
        .collect();
    let reordered: Vec<Value> = diff
        .reordered
        .iter()
        .map(|(table, before, after)| json!({"table": table, "before": before, "after": after}))
        .collect();
    json!({"removed": pairs(&diff.removed), "added": pairs(&diff.added), "changed": changed, "reordered": reordered})
}

/// `drift`: the applied versions and the difference (expected → the database).
pub(crate) fn drift(drift: &Drift) -> Value {
    json!({"applied": drift.applied, "drift": !drift.diff.is_empty(), "diff": schema_diff(&drift.diff)})
}

/// `lint`: every finding.
pub(crate) fn lint(findings: &[Finding], migrations: &[Migration]) -> Value {
    let rows: Vec<Value> = findings
        .iter()
        .map(|f| {
            json!({"rule": f.rule.id, "path": f.path, "line": f.line, "statement": f.statement,
                   "allowed": f.allowed, "why": f.rule.why, "instead": f.rule.instead})
        })
        .collect();
    let inferred: Vec<Value> = inferred(migrations)
        .map(|(path, why)| json!({"path": path, "inferred": format!("no transaction ({why})")}))
        .collect();
    json!({"findings": rows, "errors": findings.iter().filter(|f| !f.allowed).count(), "inferred": inferred})
}

/// Every section that runs outside a transaction by inference: (file, why).
pub(crate) fn inferred(migrations: &[Migration]) -> impl Iterator<Item = (&str, &str)> {
    migrations
        .iter()
        .flat_map(|m| std::iter::once(m.up()).chain(m.down()))
        .filter_map(|section| Some((section.path(), section.inferred_no_transaction()?)))
}

/// The inside of `{"error": ...}`: `kind` and `message`, and what the error knows about where
/// it happened (the failed file, line, column and SQLSTATE; the lock's holder). The message is
/// the error's own text, which never holds a password.
pub(crate) fn error_body(kind: &str, message: &str, error: Option<&Error>) -> Value {
    let mut body = json!({"kind": kind, "message": message});
    match error {
        Some(Error::MigrationFailed(failure)) => merge(&mut body, migration_failure(failure)),
        Some(Error::LockTimeout {
            holder_pid,
            holder_application,
            waited,
            ..
        }) => merge(
            &mut body,
            json!({
                "holder_pid": holder_pid,
                "holder_application": holder_application,
                "waited_ms": waited.as_millis() as u64,
            }),
        ),
        Some(Error::ForeignHistoryTable {
            schema,
            table,
            tool,
            columns,
        }) => merge(
            &mut body,
            json!({
                "table": format!("{schema}.{table}"),
                "looks_like": tool.map(OtherTool::name),
                "columns": columns,
            }),
        ),
        Some(other) => {
            if let Some(sqlstate) = other.sqlstate() {
                merge(&mut body, json!({ "sqlstate": sqlstate.code() }));
            }
        }
        None => {}
    }
    body
}

fn migration_failure(failure: &MigrationFailure) -> Value {
    json!({
        "version": failure.version, "name": failure.name, "path": failure.path,
        "line": failure.line, "column": failure.column, "sqlstate": failure.sqlstate,
        "message": failure.message, "detail": failure.detail, "hint": failure.hint,
        "statement": failure.statements.map(|s| s.failed),
        "invalid_indexes": failure.invalid_indexes,
    })
}

/// Adds `from`'s fields to `into` (both objects).
pub(crate) fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(into), Value::Object(from)) = (into, from) {
        into.extend(from);
    }
}

fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}
