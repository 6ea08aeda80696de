//! The deployment examples in `migrate-runtime/examples/deploy/`, run for real: each GitHub
//! Actions workflow's `run:` steps in order with bash (as GitHub runs them: `-eo pipefail`),
//! and the Kubernetes init container's command, with `myapp` on PATH, against a throwaway
//! PostgreSQL.
//!
//! Conventions: steps with `uses:` (checkout, toolchain, cache, artifacts) and the steps named
//! in [`CI_ONLY`] run only on GitHub; `${{ ... }}` expressions must be in [`expression`], so a
//! new one fails this test until it is given a value here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use migrate_runtime::testing::{TestDatabase, TestServer};
use migrate_test_support::process::{spawn, text, without_settings};
use serde_yaml_ng::Value;

/// Steps that need the real CI machine (building the binary the test already has).
const CI_ONLY: &[&str] = &["Build the application"];

const ACTOR: &str = "ci-bot";

fn example(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrate-runtime/examples/deploy")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let value: Value = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    if value.get("jobs").is_some() {
        assert_ci_only_steps_exist(&value);
    }
    value
}

/// The directory holding `myapp`, put first on PATH.
fn myapp_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_myapp"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A command with none of the caller's database, migration or GitHub settings, and `myapp` on
/// PATH.
fn clean_command(program: &str) -> Command {
    let mut command = Command::new(program);
    without_settings(&mut command);
    for (variable, _) in std::env::vars() {
        if variable.starts_with("GITHUB_") {
            command.env_remove(variable);
        }
    }
    let path = std::env::var("PATH").unwrap_or_default();
    command.env("PATH", format!("{}:{path}", myapp_dir().display()));
    command
}

/// The value of a `${{ ... }}` expression in the test.
fn expression(expression: &str, database_url: &str) -> String {
    match expression {
        "secrets.STAGING_DATABASE_URL" | "secrets.PROD_DATABASE_URL" => database_url.to_owned(),
        "github.actor" => ACTOR.to_owned(),
        other => panic!("the deploy test has no value for the expression `{other}`"),
    }
}

fn substitute(text: &str, database_url: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .unwrap_or_else(|| panic!("unclosed expression in {text}"));
        out.push_str(&expression(
            rest[start + 3..start + end].trim(),
            database_url,
        ));
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

fn env_of(node: &Value, database_url: &str) -> BTreeMap<String, String> {
    node.get("env")
        .and_then(Value::as_mapping)
        .map(|env| {
            env.iter()
                .map(|(k, v)| {
                    let value = match v {
                        Value::String(s) => s.clone(),
                        Value::Bool(b) => b.to_string(),
                        Value::Number(n) => n.to_string(),
                        other => panic!("unexpected env value {other:?}"),
                    };
                    (
                        k.as_str().unwrap().to_owned(),
                        substitute(&value, database_url),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What a workflow run did.
#[derive(Debug, Default)]
struct Run {
    /// Steps that ran: job, step name, exit code, output.
    steps: Vec<(String, String, i32, String)>,
    /// Steps skipped as CI-only.
    skipped: Vec<String>,
    /// Jobs that did not run because a job they need failed.
    blocked: Vec<String>,
}

impl Run {
    fn ran(&self) -> Vec<&str> {
        self.steps
            .iter()
            .map(|(_, name, _, _)| name.as_str())
            .collect()
    }

    fn failed(&self) -> Option<&(String, String, i32, String)> {
        self.steps.iter().find(|(_, _, code, _)| *code != 0)
    }

    fn all_passed(&self) -> bool {
        self.failed().is_none() && self.blocked.is_empty()
    }
}

/// Runs a workflow's jobs in file order, each step's `run:` with bash in `work`.
fn run_workflow(workflow: &Value, database_url: &str, ref_name: &str, work: &Path) -> Run {
    let summary = work.join("step-summary.md");
    let github_path = work.join("github-path");
    let workflow_env = env_of(workflow, database_url);
    let mut run = Run::default();
    let mut failed_jobs: Vec<String> = Vec::new();
    let mut seen_jobs: Vec<String> = Vec::new();
    let jobs = workflow["jobs"].as_mapping().expect("jobs");
    for (job_name, job) in jobs {
        let job_name = job_name.as_str().unwrap().to_owned();
        let needs: Vec<String> = match job.get("needs") {
            None => Vec::new(),
            Some(Value::String(one)) => vec![one.clone()],
            Some(Value::Sequence(many)) => many
                .iter()
                .map(|n| n.as_str().unwrap().to_owned())
                .collect(),
            Some(other) => panic!("unexpected needs {other:?}"),
        };
        for need in &needs {
            assert!(
                seen_jobs.contains(need),
                "job {job_name} needs {need}, which does not come before it"
            );
        }
        seen_jobs.push(job_name.clone());
        if needs.iter().any(|need| failed_jobs.contains(need)) {
            run.blocked.push(job_name.clone());
            failed_jobs.push(job_name);
            continue;
        }
        let mut env = workflow_env.clone();
        env.extend(env_of(job, database_url));
        for step in job["steps"].as_sequence().expect("steps") {
            let name = step
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if step.get("uses").is_some() || CI_ONLY.contains(&name.as_str()) {
                run.skipped.push(if name.is_empty() {
                    step["uses"].as_str().unwrap().to_owned()
                } else {
                    name
                });
                continue;
            }
            let script = substitute(
                step["run"]
                    .as_str()
                    .unwrap_or_else(|| panic!("step {name} has neither uses nor run")),
                database_url,
            );
            let mut step_env = env.clone();
            step_env.extend(env_of(step, database_url));
            let output = clean_command("bash")
                .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", &script])
                .current_dir(work)
                .envs(&step_env)
                .env("GITHUB_REF_NAME", ref_name)
                .env("GITHUB_ACTOR", ACTOR)
                .env("GITHUB_STEP_SUMMARY", &summary)
                .env("GITHUB_PATH", &github_path)
                .env("RUNNER_TEMP", work)
                .output()
                .unwrap();
            let code = output.status.code().unwrap_or(-1);
            run.steps
                .push((job_name.clone(), name, code, text(&output)));
            if code != 0 {
                failed_jobs.push(job_name.clone());
                break;
            }
        }
    }
    run
}

/// Every name in [`CI_ONLY`] is a step of the workflow, so a renamed step is not silently run.
fn assert_ci_only_steps_exist(workflow: &Value) {
    let names: Vec<&str> = workflow["jobs"]
        .as_mapping()
        .unwrap()
        .values()
        .flat_map(|job| job["steps"].as_sequence().unwrap())
        .filter_map(|step| step.get("name").and_then(Value::as_str))
        .collect();
    for name in CI_ONLY {
        assert!(
            names.contains(name),
            "CI_ONLY names a step `{name}` the workflow does not have"
        );
    }
}

fn applied_count(database: &TestDatabase<'_>) -> i64 {
    let mut client = database.client().unwrap();
    match client.query_one(
        "SELECT count(*) FROM schema_migrations WHERE status = 'applied'",
        &[],
    ) {
        Ok(row) => row.get(0),
        // The history table does not exist: nothing was ever recorded.
        Err(error) if error.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE) => 0,
        Err(error) => panic!("{error}"),
    }
}

#[test]
fn staging_workflow_validates_rehearses_applies_and_checks() {
    let workflow = example("github-staging.yml");
    assert_eq!(
        workflow["on"]["push"]["branches"][0].as_str(),
        Some("staging")
    );
    let database = TestServer::shared().create_database().unwrap();
    let work = tempfile::tempdir().unwrap();
    let run = run_workflow(&workflow, &database.url(), "staging", work.path());
    assert!(run.all_passed(), "{:#?}", run.failed());
    assert_eq!(
        run.ran(),
        [
            "Validate against the database",
            "Dry run (apply inside a transaction that is rolled back)",
            "Apply",
            "Status"
        ]
    );
    let dry_run = &run.steps[1].3;
    assert!(dry_run.contains("everything was rolled back"), "{dry_run}");

    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.path().join("migration-status.json")).unwrap())
            .unwrap();
    assert_eq!(status["pending"], 0, "{status}");
    assert!(applied_count(&database) > 0);
    let summary = std::fs::read_to_string(work.path().join("step-summary.md")).unwrap();
    assert!(summary.contains("### Migrations"), "{summary}");
    let applied_by: String = database
        .client()
        .unwrap()
        .query_one("SELECT DISTINCT applied_by FROM schema_migrations", &[])
        .unwrap()
        .get(0);
    assert_eq!(applied_by, ACTOR);
}

#[test]
fn production_workflow_dry_runs_then_applies_and_verifies() {
    let workflow = example("github-production.yml");
    assert_eq!(workflow["on"]["push"]["tags"][0].as_str(), Some("v*.*.*"));
    assert_eq!(workflow["jobs"]["apply"]["needs"].as_str(), Some("dry-run"));
    assert_eq!(
        workflow["jobs"]["apply"]["environment"].as_str(),
        Some("production"),
        "the apply waits for the environment's reviewers"
    );
    let database = TestServer::shared().create_database().unwrap();
    let work = tempfile::tempdir().unwrap();
    let run = run_workflow(&workflow, &database.url(), "v1.4.0", work.path());
    assert!(run.all_passed(), "{:#?}", run.failed());
    assert_eq!(
        run.ran(),
        [
            "Check the tag is a release version",
            "Validate against the database",
            "Dry run with execution",
            "Apply",
            "Verify"
        ]
    );
    let dry_run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.path().join("dry-run.json")).unwrap()).unwrap();
    assert_eq!(dry_run["failed"], false, "{dry_run}");
    // In production the production-only data migration runs too: nothing is left pending.
    let history: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.path().join("migration-history.json")).unwrap())
            .unwrap();
    let actions = history["actions"].as_array().unwrap();
    assert_eq!(actions.len() as i64, applied_count(&database));
    assert!(actions
        .iter()
        .all(|a| a["environment"] == "production" && a["executed_by"] == ACTOR));
}

#[test]
fn production_workflow_stops_at_a_failing_dry_run_or_a_bad_tag() {
    let workflow = example("github-production.yml");

    // The first migration creates `users`; a table already there makes it fail.
    let database = TestServer::shared().create_database().unwrap();
    database
        .client()
        .unwrap()
        .batch_execute("CREATE TABLE users (id int)")
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let run = run_workflow(&workflow, &database.url(), "v1.4.1", work.path());
    let (job, step, code, output) = run.failed().expect("the dry run must fail");
    assert_eq!(
        (job.as_str(), step.as_str(), *code),
        ("dry-run", "Dry run with execution", 1),
        "{output}"
    );
    assert_eq!(run.blocked, ["apply"]);
    assert_eq!(applied_count(&database), 0, "nothing was applied");
    let dry_run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.path().join("dry-run.json")).unwrap()).unwrap();
    assert_eq!(dry_run["failed"], true);
    assert_eq!(dry_run["rehearsal"][0]["outcome"], "would_fail");
    assert_eq!(dry_run["rehearsal"][0]["error"]["sqlstate"], "42P07");

    let database = TestServer::shared().create_database().unwrap();
    let work = tempfile::tempdir().unwrap();
    let run = run_workflow(&workflow, &database.url(), "nightly", work.path());
    assert_eq!(run.ran(), ["Check the tag is a release version"]);
    assert_eq!(run.blocked, ["apply"]);
    assert_eq!(applied_count(&database), 0);
}

/// Three pods start while the database is still down: each init container waits for it,
/// one applies, the others find nothing pending, and the application container starts.
#[test]
fn kubernetes_init_containers_wait_for_the_database_and_apply_once() {
    let deployment = example("kubernetes-init-container.yaml");
    let spec = &deployment["spec"]["template"]["spec"];
    let init = &spec["initContainers"][0];
    let argv: Vec<String> = init["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .chain(init["args"].as_sequence().unwrap())
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(argv, ["myapp", "migrate", "up", "--wait", "60"]);
    let replicas = deployment["spec"]["replicas"].as_u64().unwrap();

    let server = TestServer::start().unwrap();
    let url = server.url("postgres");
    let env_of = |container: &Value| -> Vec<(String, String)> {
        container["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|e| {
                let name = e["name"].as_str().unwrap().to_owned();
                let value = match e.get("value") {
                    Some(value) => value.as_str().unwrap().to_owned(),
                    None => {
                        let secret = &e["valueFrom"]["secretKeyRef"];
                        assert_eq!(secret["name"].as_str(), Some("myapp-database"));
                        url.clone()
                    }
                };
                (name, value)
            })
            .collect()
    };
    let init_env = env_of(init);

    server.stop().unwrap();
    let children: Vec<_> = (0..replicas)
        .map(|_| {
            spawn(
                clean_command(&argv[0])
                    .args(&argv[1..])
                    .envs(init_env.iter().map(|(k, v)| (k, v))),
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    server.restart().unwrap();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", text(&output));
    }

    let mut client = server.connect("postgres").unwrap();
    let (rows, applies): (i64, i64) = {
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM schema_migrations), \
                 (SELECT count(*) FROM schema_migrations_history WHERE action = 'apply')",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert!(rows > 0);
    assert_eq!(rows, applies, "each migration applied once");

    let app = &spec["containers"][0];
    let output = clean_command(app["command"][0].as_str().unwrap())
        .envs(env_of(app))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("the application would start here"));
}

/// `$(NAME)` references in a container's arguments, expanded from its environment as the
/// kubelet does.
fn expand_references(arg: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = arg.to_owned();
    for (name, value) in env {
        out = out.replace(&format!("$({name})"), value);
    }
    assert!(!out.contains("$("), "no value for a reference in {arg}");
    out
}

/// The Indexed Job: its failure policy matches the documented exit codes, and its four pods,
/// started at once with their completion indexes, migrate every active tenant database
/// exactly once; a retried pod then finds nothing pending.
#[test]
fn kubernetes_fleet_indexed_job_shards_the_tenants_and_retries_safely() {
    use migrate_runtime::cli::exit;

    let job = example("kubernetes-fleet-indexed-job.yaml");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    let completions = spec["completions"].as_u64().unwrap();
    assert!(spec["backoffLimitPerIndex"].as_u64().unwrap() > 0);
    let rules = spec["podFailurePolicy"]["rules"].as_sequence().unwrap();
    let action_for = |code: u8| {
        rules
            .iter()
            .find(|rule| {
                rule["onExitCodes"]["values"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .any(|value| value.as_u64() == Some(u64::from(code)))
            })
            .map(|rule| rule["action"].as_str().unwrap().to_owned())
    };
    assert_eq!(action_for(exit::FAILED).as_deref(), Some("FailIndex"));
    assert_eq!(action_for(exit::USAGE).as_deref(), Some("FailJob"));
    assert_eq!(
        action_for(exit::RETRY),
        None,
        "exit 4 must be retried (counted)"
    );

    let container = &spec["template"]["spec"]["containers"][0];
    let server = TestServer::shared();
    let control = server.create_database().unwrap();
    let tenants: Vec<TestDatabase<'_>> =
        (0..6).map(|_| server.create_database().unwrap()).collect();
    let mut client = control.client().unwrap();
    client
        .batch_execute(
            "CREATE TABLE tenants (database_name text NOT NULL, active boolean NOT NULL);
             INSERT INTO tenants VALUES ('paused_tenant_without_a_database', false);",
        )
        .unwrap();
    for tenant in &tenants {
        client
            .execute("INSERT INTO tenants VALUES ($1, true)", &[&tenant.name()])
            .unwrap();
    }
    let pod = |index: u64| {
        let mut env = BTreeMap::new();
        for entry in container["env"].as_sequence().unwrap() {
            let name = entry["name"].as_str().unwrap().to_owned();
            let value = match (entry.get("value"), name.as_str()) {
                (Some(value), _) => value.as_str().unwrap().to_owned(),
                (None, "JOB_COMPLETION_INDEX") => index.to_string(),
                (None, "DATABASE_URL") => control.url(),
                (None, "TENANT_URL_TEMPLATE") => server.url("{tenant}"),
                (None, other) => panic!("the test has no value for {other}"),
            };
            env.insert(name, value);
        }
        let args: Vec<String> = container["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|arg| expand_references(arg.as_str().unwrap(), &env))
            .collect();
        let mut command = clean_command(container["command"][0].as_str().unwrap());
        command.args(args).envs(&env);
        command
    };

    let pods: Vec<_> = (0..completions)
        .map(|index| spawn(&mut pod(index)))
        .collect();
    for (index, child) in pods.into_iter().enumerate() {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "index {index}: {}", text(&output));
    }
    let mut counts = Vec::new();
    for tenant in &tenants {
        let row = tenant
            .client()
            .unwrap()
            .query_one(
                "SELECT (SELECT count(*) FROM schema_migrations), \
                 (SELECT count(*) FROM schema_migrations_history WHERE action = 'apply')",
                &[],
            )
            .unwrap();
        let (rows, applies): (i64, i64) = (row.get(0), row.get(1));
        assert!(rows > 0, "{} was not migrated", tenant.name());
        assert_eq!(
            rows,
            applies,
            "each migration applied once in {}",
            tenant.name()
        );
        counts.push(rows);
    }
    assert!(
        counts.windows(2).all(|pair| pair[0] == pair[1]),
        "{counts:?}"
    );

    // A retried pod (per-index retry, or a duplicate) finds its shard up to date.
    let retry = pod(0).output().unwrap();
    assert!(retry.status.success(), "{}", text(&retry));
    assert!(
        String::from_utf8_lossy(&retry.stdout).contains("0 applied (0 migrations)"),
        "{}",
        text(&retry)
    );
}
