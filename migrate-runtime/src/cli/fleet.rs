//! `migrate fleet up|status|plan`: the fleet's tenants from the command line, a line per
//! tenant as it finishes, a summary, and the exit code that tells a job runner whether to
//! retry.
#![allow(clippy::print_stdout, clippy::print_stderr)] // The fleet commands' own voice.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use serde_json::{json, Value};

use super::progress::{Progress, Style};
use super::{exit, interrupt, migrator, Failure, Options};
use crate::config::{ConfigError, ConnectionSettings};
use crate::fleet::{
    FailurePolicy, Fleet, FleetError, FleetReport, FleetStatus, Shard, SkipReason, TenantOutcome,
    TenantResult, TenantState, Tenants,
};
use crate::{Error, Migration};

/// `migrate fleet ...`.
#[derive(Clone, Debug, Subcommand)]
pub(crate) enum FleetCommand {
    /// Apply pending migrations to every tenant (each under its own lock).
    Up {
        #[command(flatten)]
        select: Select,
        #[command(flatten)]
        policy: Policy,
        /// How progress is shown on stderr: `bar` (redrawn in place), `lines` (one per tenant),
        /// or `auto` (a bar on a terminal).
        #[arg(long, value_enum, default_value_t = Style::Auto, value_name = "STYLE")]
        progress: Style,
    },
    /// Each tenant's state (up to date, pending n, failed at V, unreachable), without locks.
    Status {
        #[command(flatten)]
        select: Select,
        /// Exit with 3 when some tenant has pending migrations (and none failed or was unreachable).
        #[arg(long)]
        exit_code: bool,
    },
    /// What `fleet up` would apply to each tenant, without locks.
    Plan {
        #[command(flatten)]
        select: Select,
    },
}

/// Which tenants, and how many at once.
#[derive(Clone, Debug, Args)]
#[command(group(ArgGroup::new("kind").required(true).args(["schema_tenants", "url_template"])))]
#[command(group(ArgGroup::new("names").required(true).multiple(true).args(["tenants_file", "tenant", "tenants_query"])))]
pub(crate) struct Select {
    /// Tenants are schemas of the --database-url database; each keeps its history table in its own schema, and its migrations run with search_path set to it.
    #[arg(long)]
    schema_tenants: bool,
    /// Tenants are databases: this URL with {tenant} replaced by each tenant's name.
    #[arg(long, value_name = "URL")]
    url_template: Option<String>,
    /// A file of tenant names, one per line (blank lines and # comments left out).
    #[arg(long, value_name = "PATH")]
    tenants_file: Option<PathBuf>,
    /// A tenant's name (repeat for more).
    #[arg(long, value_name = "NAME")]
    tenant: Vec<String>,
    /// A query run on the --database-url database whose first column names the tenants.
    #[arg(long, value_name = "SQL")]
    tenants_query: Option<String>,
    /// How many tenants at once, each on its own connection.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    parallel: u16,
    /// Only the tenants of shard INDEX of COUNT (stable, by a hash of the name), e.g. --shard $(JOB_COMPLETION_INDEX)/8.
    #[arg(long, value_name = "INDEX/COUNT")]
    shard: Option<Shard>,
}

/// Canary stage and failure policy of `fleet up`.
#[derive(Clone, Debug, Args)]
pub(crate) struct Policy {
    /// The first K tenants go first; the rest start only if all of them succeed.
    #[arg(long, value_name = "K", conflicts_with = "canary_tenant")]
    canary: Option<usize>,
    /// This tenant goes first (repeat for more); the rest start only if all of them succeed.
    #[arg(long, value_name = "NAME")]
    canary_tenant: Vec<String>,
    /// After a tenant fails: `stop` starting others, or `continue`.
    #[arg(long, value_enum, default_value_t = OnFailure::Stop, value_name = "POLICY")]
    on_failure: OnFailure,
    /// With --on-failure continue: stop starting tenants once more than N have failed.
    #[arg(long, value_name = "N")]
    failure_budget: Option<usize>,
}

/// `--on-failure`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OnFailure {
    /// Start no tenant after a failure; the running ones finish.
    Stop,
    /// Keep starting tenants (within --failure-budget).
    Continue,
}

/// Runs a fleet command.
pub(crate) fn execute(
    options: &Options,
    command: &FleetCommand,
    migrations: &[Migration],
    json: bool,
) -> Result<u8, Failure> {
    let select = match command {
        FleetCommand::Up { select, .. }
        | FleetCommand::Status { select, .. }
        | FleetCommand::Plan { select } => select,
    };
    if options.throwaway {
        return Err(Failure::Usage(
            "--throwaway is not for `fleet`: name the database with --database-url".to_owned(),
        ));
    }
    if select.schema_tenants && options.history_schema != "public" {
        return Err(Failure::Usage(
            "--history-schema does not apply to --schema-tenants: each tenant's history table is in the tenant's own schema (name the table with --history-table)".to_owned(),
        ));
    }
    let tenants = tenants(options, select)?;
    let mut fleet = Fleet::new(migrations, tenants)
        .migrator(migrator(options, migrations))
        .parallel(usize::from(select.parallel));
    if let Some(shard) = select.shard {
        fleet = fleet.shard(shard);
    }
    let total = fleet.selected().len();
    eprintln!(
        "fleet: {total} tenants{}, {} at a time",
        select
            .shard
            .map(|shard| format!(" in shard {shard}"))
            .unwrap_or_default(),
        select.parallel
    );
    match command {
        FleetCommand::Up {
            policy, progress, ..
        } => up(fleet, policy, Progress::new(total, *progress), json),
        FleetCommand::Status { exit_code, .. } => {
            let status = fleet.status();
            print_status(&status, false, json);
            Ok(status_code(&status, *exit_code))
        }
        FleetCommand::Plan { .. } => {
            let status = fleet.status();
            print_status(&status, true, json);
            Ok(status_code(&status, false))
        }
    }
}

/// The tenants the options name, refusing what cannot work before connecting to any tenant.
fn tenants(options: &Options, select: &Select) -> Result<Tenants, Failure> {
    let mut names = Vec::new();
    if let Some(path) = &select.tenants_file {
        let text = std::fs::read_to_string(path).map_err(|error| {
            Failure::Usage(format!(
                "cannot read the tenants file {}: {error}",
                path.display()
            ))
        })?;
        names.extend(Tenants::names_from_lines(&text));
    }
    names.extend(select.tenant.iter().cloned());
    let needs_database = select.schema_tenants || select.tenants_query.is_some();
    let database = if needs_database {
        let settings = ConnectionSettings::from_env(options.database_url.as_deref())?
            .ok_or(ConfigError::NotConfigured)?;
        Some(settings)
    } else {
        None
    };
    if let (Some(sql), Some(settings)) = (&select.tenants_query, &database) {
        eprintln!(
            "connecting to {} (from {})",
            settings.describe(),
            settings.source()
        );
        let mut control = settings
            .connect_with_wait(Duration::from_secs(options.wait))
            .map_err(Failure::Unreachable)?;
        names.extend(Tenants::names_from_query(&mut control, sql).map_err(fleet_failure)?);
    }
    let tenants = match (&select.url_template, database) {
        (Some(template), _) => Tenants::databases(template, names),
        (None, Some(database)) => Tenants::schemas(database, names),
        (None, None) => unreachable!("clap requires --schema-tenants or --url-template"),
    };
    tenants.map_err(fleet_failure)
}

/// A refused tenant list: a usage error, unless the control database went away (retry).
fn fleet_failure(error: FleetError) -> Failure {
    match &error {
        FleetError::Query(source) if source.as_db_error().is_none() => {
            Failure::Retry(error.to_string())
        }
        _ => Failure::Usage(error.to_string()),
    }
}

fn up(fleet: Fleet<'_>, policy: &Policy, progress: Progress, json: bool) -> Result<u8, Failure> {
    let failure_policy = match (policy.on_failure, policy.failure_budget) {
        (OnFailure::Stop, Some(_)) => {
            return Err(Failure::Usage(
                "--failure-budget needs --on-failure continue (with stop, the first failure stops the fleet)".to_owned(),
            ))
        }
        (OnFailure::Stop, None) => FailurePolicy::Stop,
        (OnFailure::Continue, budget) => FailurePolicy::Continue { budget },
    };
    let mut fleet = fleet.on_failure(failure_policy);
    if let Some(count) = policy.canary {
        fleet = fleet.canary(count);
    } else if !policy.canary_tenant.is_empty() {
        fleet = fleet.canary_tenants(policy.canary_tenant.iter().cloned());
    }
    let print = |result: &TenantResult| progress.finished(result, &tenant_line(result));
    let fleet = fleet.on_tenant(&print);
    // Ctrl-C (or SIGTERM) starts no more tenants and cancels the running ones' statements.
    interrupt::arm_fleet(fleet.stopper());
    let report = fleet.run();
    progress.done();
    let report = report.map_err(fleet_failure)?;
    print_report(&report, json);
    if let Some(signal) = interrupt::received() {
        let summary = report.summary();
        eprintln!(
            "interrupted by {}: {} tenants stopped part-way (their running migration rolled back), {} not started\n  help: run the same `migrate fleet up` again to finish: it applies only what is still pending",
            signal.name(),
            summary.interrupted,
            summary.skipped
        );
        return Ok(signal.exit_code());
    }
    Ok(up_code(&report))
}

/// `acme: applied 3 (120 ms)`, `acme: FAILED at 2: ...`.
fn tenant_line(result: &TenantResult) -> String {
    let took = result.elapsed.as_millis();
    let what = match &result.outcome {
        TenantOutcome::UpToDate => format!("up to date ({took} ms)"),
        TenantOutcome::Applied { versions } => {
            format!("applied {} ({took} ms)", versions.len())
        }
        TenantOutcome::Failed { version, error, .. } => {
            let at = version.map(|v| format!(" at {v}")).unwrap_or_default();
            let retry = if result.outcome.retryable() {
                " (retryable)"
            } else {
                ""
            };
            format!("FAILED{at}{retry}: {error}")
        }
        TenantOutcome::Unreachable { error } => {
            format!("UNREACHABLE (retryable): {}", chain(error))
        }
        TenantOutcome::Skipped { reason } => format!("skipped ({})", reason.as_str()),
        TenantOutcome::Interrupted { applied, error } => format!(
            "INTERRUPTED after applying {} (retryable): {}",
            applied.len(),
            chain(error)
        ),
    };
    format!("{}: {what}", result.tenant)
}

/// An error and its causes on one line (a connection error's reason is in its source).
fn chain(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// 0 every tenant done; 1 a migration failed or a history refused (a person must look); 4
/// only failures a rerun can get past (unreachable, connection lost, lock busy), and the
/// tenants they kept from starting.
fn up_code(report: &FleetReport) -> u8 {
    let outcomes = || report.tenants.iter().map(|t| &t.outcome);
    if outcomes().any(|o| matches!(o, TenantOutcome::Failed { .. }) && !o.retryable()) {
        exit::FAILED
    } else if report.succeeded() {
        exit::SUCCESS
    } else {
        exit::RETRY
    }
}

/// 1 a tenant failed or would refuse; 4 one is unreachable; 3 with --exit-code when some
/// tenant has pending migrations; 0 otherwise.
fn status_code(status: &FleetStatus, pending_code: bool) -> u8 {
    let (_, pending, failed, unreachable) = status.counts();
    if failed > 0 {
        exit::FAILED
    } else if unreachable > 0 {
        exit::RETRY
    } else if pending_code && pending > 0 {
        exit::PENDING
    } else {
        exit::SUCCESS
    }
}

fn print_report(report: &FleetReport, json: bool) {
    let summary = report.summary();
    if json {
        let tenants: Vec<Value> = report.tenants.iter().map(result_json).collect();
        let document = json!({
            "tenants": tenants,
            "summary": {
                "tenants": summary.tenants,
                "applied": summary.applied,
                "migrations": summary.migrations,
                "up_to_date": summary.up_to_date,
                "failed": summary.failed,
                "unreachable": summary.unreachable,
                "skipped": summary.skipped,
                "interrupted": summary.interrupted,
                "retryable": summary.retryable,
                "elapsed_ms": report.elapsed.as_millis() as u64,
            },
        });
        return println!("{document:#}");
    }
    let mut skipped = std::collections::BTreeMap::new();
    for result in &report.tenants {
        match &result.outcome {
            TenantOutcome::Failed { error, .. } => {
                eprintln!("\ntenant {}:\n{}", result.tenant, error.render());
            }
            TenantOutcome::Skipped { reason } => *skipped.entry(*reason).or_insert(0) += 1,
            _ => {}
        }
    }
    for (reason, count) in skipped {
        let then = match reason {
            SkipReason::CanaryFailed => "rerun once the canary's failure is fixed",
            SkipReason::Interrupted => "rerun to migrate them",
            _ => "rerun once the failure is fixed, or with --on-failure continue to migrate the others meanwhile",
        };
        eprintln!("{count} tenants not started ({}): {then}", reason.as_str());
    }
    println!("{summary} in {:.1} s", report.elapsed.as_secs_f64());
}

fn result_json(result: &TenantResult) -> Value {
    let mut value = json!({
        "tenant": result.tenant,
        "outcome": result.outcome.as_str(),
        "elapsed_ms": result.elapsed.as_millis() as u64,
        "retryable": result.outcome.retryable(),
    });
    let extra = match &result.outcome {
        TenantOutcome::Applied { versions } => json!({ "applied": versions }),
        TenantOutcome::Failed {
            version,
            applied,
            error,
        } => json!({
            "version": version,
            "applied": applied,
            "error": error_json(error),
        }),
        TenantOutcome::Unreachable { error } => json!({ "error": error_json(error) }),
        TenantOutcome::Skipped { reason } => json!({ "reason": reason.as_str() }),
        TenantOutcome::Interrupted { applied, error } => json!({
            "applied": applied,
            "error": error_json(error),
        }),
        _ => json!({}),
    };
    if let (Some(value), Value::Object(extra)) = (value.as_object_mut(), extra) {
        value.extend(extra);
    }
    value
}

/// The command line's error shape (kind, message, and where it happened), with the causes on
/// the message's line.
fn error_json(error: &Error) -> Value {
    crate::shapes::error_body(crate::outcome::of(error).kind, &chain(error), Some(error))
}

fn print_status(status: &FleetStatus, plan: bool, json: bool) {
    let (up_to_date, pending, failed, unreachable) = status.counts();
    if json {
        let tenants: Vec<Value> = status
            .tenants
            .iter()
            .map(|(tenant, state)| {
                let mut value = json!({ "tenant": tenant, "state": state.as_str() });
                let extra = match state {
                    TenantState::Pending { versions } => {
                        json!({ "pending": versions.len(), "versions": versions })
                    }
                    TenantState::FailedAt { version } => json!({ "version": version }),
                    TenantState::Refused { error } | TenantState::Unreachable { error } => {
                        json!({ "error": error_json(error) })
                    }
                    TenantState::UpToDate => json!({}),
                };
                if let (Some(value), Value::Object(extra)) = (value.as_object_mut(), extra) {
                    value.extend(extra);
                }
                value
            })
            .collect();
        let document = json!({
            "tenants": tenants,
            "summary": {
                "tenants": status.tenants.len(),
                "up_to_date": up_to_date,
                "pending": pending,
                "failed": failed,
                "unreachable": unreachable,
                "elapsed_ms": status.elapsed.as_millis() as u64,
            },
        });
        return println!("{document:#}");
    }
    let width = status
        .tenants
        .iter()
        .map(|(tenant, _)| tenant.len())
        .max()
        .unwrap_or(0);
    for (tenant, state) in &status.tenants {
        let line = match state {
            TenantState::Pending { versions } if plan => {
                let list: Vec<String> = versions.iter().map(i64::to_string).collect();
                format!("would apply {}", list.join(", "))
            }
            TenantState::Unreachable { error } => format!("unreachable: {}", chain(error)),
            other => other.to_string(),
        };
        println!("{tenant:<width$}  {line}");
    }
    println!(
        "{} tenants: {up_to_date} up to date, {pending} pending, {failed} failed or refused, {unreachable} unreachable ({} ms)",
        status.tenants.len(),
        status.elapsed.as_millis()
    );
}
