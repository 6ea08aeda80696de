//! Fleet mode through the real `migrate` binary on a real server: schema and database
//! tenants, a failing tenant under `stop` and `continue`, an unreachable tenant, a canary
//! failure, shards, two runners at once, and a runner killed with SIGKILL then rerun.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use migrate_runtime::testing::{TestDatabase, TestServer};
use migrate_test_support::process::{spawn, Run};
use postgres::Client;
use serde_json::Value;
use support::unconfigured;

/// Migrations in the test set.
const VERSIONS: i64 = 3;

/// The test set: each migration records itself in `public.effects` (one row per tenant and
/// version, so a migration applied twice shows), and migration 2 fails in the tenant named
/// `bad*` (by schema or database name). `pause` seconds of sleep per migration make a run
/// long enough to kill.
fn write_set(dir: &Path, pause: f64) {
    let tenant = "coalesce(nullif(current_schema(), 'public'), current_database())";
    let effect = |version: i64| {
        format!(
            "INSERT INTO public.effects (tenant, version) VALUES ({tenant}, {version});\nSELECT pg_sleep({pause});\n"
        )
    };
    let files = [
        (
            "001_create_items.sql",
            format!("CREATE TABLE items (id int PRIMARY KEY);\n{}", effect(1)),
        ),
        (
            "002_add_note.sql",
            format!(
                "ALTER TABLE items ADD COLUMN note text;\n\
                 DO $$ BEGIN IF {tenant} LIKE 'bad%' THEN RAISE EXCEPTION 'tenant % refuses notes', {tenant}; END IF; END $$;\n{}",
                effect(2)
            ),
        ),
        (
            "003_index_note.sql",
            format!("CREATE INDEX items_note ON items (note);\n{}", effect(3)),
        ),
    ];
    for (name, sql) in files {
        std::fs::write(dir.join(name), sql).unwrap();
    }
}

/// A database for schema tenants, with the shared side-effect table.
fn schema_database(server: &TestServer) -> TestDatabase<'_> {
    let database = server.create_database().unwrap();
    database
        .client()
        .unwrap()
        .batch_execute(
            "CREATE TABLE public.effects (tenant text NOT NULL, version bigint NOT NULL)",
        )
        .unwrap();
    database
}

/// `migrate --dir DIR fleet ARGS` against `url`.
fn fleet(dir: &Path, url: &str, args: &[&str]) -> Command {
    let mut command = unconfigured(dir);
    command.env("DATABASE_URL", url).arg("fleet").args(args);
    command
}

fn run(command: &mut Command) -> Run {
    Run::of(&command.output().unwrap())
}

fn names(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}{i:02}")).collect()
}

fn tenant_args(names: &[String]) -> Vec<String> {
    names
        .iter()
        .flat_map(|name| ["--tenant".to_owned(), name.clone()])
        .collect()
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// (tenant, version) -> how many times its side effect happened.
fn effects(client: &mut Client) -> BTreeMap<(String, i64), i64> {
    client
        .query(
            "SELECT tenant, version, count(*) FROM public.effects GROUP BY 1, 2",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| ((row.get(0), row.get(1)), row.get(2)))
        .collect()
}

/// The versions a schema tenant's history records as applied (empty without a history).
fn applied(client: &mut Client, schema: &str) -> Vec<i64> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass(format('%I.schema_migrations', $1::text)) IS NOT NULL",
            &[&schema],
        )
        .unwrap()
        .get(0);
    if !exists {
        return Vec::new();
    }
    let sql = format!(
        "SELECT version FROM \"{schema}\".schema_migrations WHERE status = 'applied' ORDER BY 1"
    );
    client
        .query(&sql, &[])
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Each tenant's outcome in a `fleet up --json` report.
fn outcomes(report: &Value) -> BTreeMap<String, String> {
    report["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["tenant"].as_str().unwrap().to_owned(),
                t["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn all_versions() -> Vec<i64> {
    (1..=VERSIONS).collect()
}

#[test]
fn schema_tenants_are_migrated_in_their_own_schemas_and_rerun_is_a_no_op() {
    let server = TestServer::shared();
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), 0.0);
    let database = schema_database(server);
    let url = database.url();
    let tenants = ["acme", "Globex Corp", "initech"].map(str::to_owned);
    let args = tenant_args(&tenants);
    let mut up: Vec<&str> = vec!["up", "--schema-tenants", "--parallel", "2"];
    up.extend(strs(&args));

    let first = run(&mut fleet(dir.path(), &url, &up));
    assert_eq!(first.code, 0, "{}", first.all());
    assert!(first.stderr.contains("acme: applied 3"), "{}", first.all());
    assert!(
        first
            .stdout
            .contains("3 tenants: 3 applied (9 migrations), 0 up to date, 0 failed"),
        "{}",
        first.all()
    );
    let mut client = database.client().unwrap();
    for tenant in &tenants {
        assert_eq!(applied(&mut client, tenant), all_versions(), "{tenant}");
        // Unqualified names landed in the tenant's schema (the quoted one for "Globex Corp").
        let items: Option<String> = client
            .query_one(
                "SELECT to_regclass(format('%I.items', $1::text))::text",
                &[tenant],
            )
            .unwrap()
            .get(0);
        assert!(items.is_some(), "{tenant} has no items table");
    }
    let public_items: Option<String> = client
        .query_one("SELECT to_regclass('public.items')::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(public_items, None, "nothing lands in public");

    let mut again = up.clone();
    again.push("--json");
    let second = run(&mut fleet(dir.path(), &url, &again));
    assert_eq!(second.code, 0, "{}", second.all());
    let report = second.json();
    assert!(
        outcomes(&report).values().all(|o| o == "up_to_date"),
        "{report}"
    );
    assert_eq!(report["summary"]["migrations"], 0);

    let mut status: Vec<&str> = vec!["status", "--schema-tenants", "--json"];
    status.extend(strs(&args));
    let status = run(&mut fleet(dir.path(), &url, &status));
    assert_eq!(status.code, 0, "{}", status.all());
    assert_eq!(status.json()["summary"]["up_to_date"], 3);
    assert!(effects(&mut client).values().all(|&times| times == 1));
}

#[test]
fn status_and_plan_show_pending_per_tenant_without_applying() {
    let server = TestServer::shared();
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), 0.0);
    let database = schema_database(server);
    let url = database.url();
    let mut client = database.client().unwrap();
    // One tenant half-way there (an older release applied version 1 only).
    let older = tempfile::tempdir().unwrap();
    std::fs::copy(
        dir.path().join("001_create_items.sql"),
        older.path().join("001_create_items.sql"),
    )
    .unwrap();
    let done = run(&mut fleet(
        older.path(),
        &url,
        &["up", "--schema-tenants", "--tenant", "half"],
    ));
    assert_eq!(done.code, 0, "{}", done.all());

    let select = ["--schema-tenants", "--tenant", "half", "--tenant", "fresh"];
    let plan = run(&mut fleet(
        dir.path(),
        &url,
        &[&["plan"][..], &select].concat(),
    ));
    assert_eq!(plan.code, 0, "{}", plan.all());
    assert!(
        plan.stdout.contains("half   would apply 2, 3"),
        "{}",
        plan.all()
    );
    assert!(
        plan.stdout.contains("fresh  would apply 1, 2, 3"),
        "{}",
        plan.all()
    );

    let status = run(&mut fleet(
        dir.path(),
        &url,
        &[&["status", "--exit-code"][..], &select].concat(),
    ));
    assert_eq!(status.code, 3, "pending with --exit-code: {}", status.all());
    assert!(
        status.stdout.contains("half   pending 2"),
        "{}",
        status.all()
    );
    assert!(
        status
            .stdout
            .contains("2 tenants: 0 up to date, 2 pending, 0 failed or refused, 0 unreachable"),
        "{}",
        status.all()
    );
    // Looking applied nothing: no history for the fresh tenant.
    assert_eq!(applied(&mut client, "fresh"), Vec::<i64>::new());
    assert_eq!(applied(&mut client, "half"), vec![1]);
}

#[test]
fn database_tenants_and_an_unreachable_one() {
    let server = TestServer::shared();
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), 0.0);
    let databases: Vec<TestDatabase<'_>> =
        (0..3).map(|_| server.create_database().unwrap()).collect();
    let mut names: Vec<String> = databases.iter().map(|d| d.name().to_owned()).collect();
    for database in &databases {
        database
            .client()
            .unwrap()
            .batch_execute("CREATE TABLE effects (tenant text NOT NULL, version bigint NOT NULL)")
            .unwrap();
    }
    names.insert(1, "no_such_database".to_owned());
    let template = server.url("{tenant}");
    let args = tenant_args(&names);
    let mut up: Vec<&str> = vec![
        "up",
        "--url-template",
        &template,
        "--on-failure",
        "continue",
        "--json",
    ];
    up.extend(strs(&args));

    let result = run(unconfigured(dir.path()).arg("fleet").args(&up));
    assert_eq!(
        result.code,
        4,
        "unreachable only: retry me\n{}",
        result.all()
    );
    let report = result.json();
    let outcomes = outcomes(&report);
    assert_eq!(outcomes["no_such_database"], "unreachable");
    let unreachable = report["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == "no_such_database")
        .unwrap();
    assert_eq!(unreachable["retryable"], true);
    assert!(
        unreachable["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no_such_database"),
        "{unreachable}"
    );
    for database in &databases {
        assert_eq!(outcomes[database.name()], "applied");
        let mut client = database.client().unwrap();
        let versions: Vec<i64> = client
            .query("SELECT version FROM schema_migrations ORDER BY 1", &[])
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(versions, all_versions());
        assert!(effects(&mut client).values().all(|&times| times == 1));
    }

    let mut status: Vec<&str> = vec!["status", "--url-template", &template];
    status.extend(strs(&args));
    let status = run(unconfigured(dir.path()).arg("fleet").args(&status));
    assert_eq!(status.code, 4, "{}", status.all());
    assert!(
        status.stdout.contains("no_such_database  unreachable: "),
        "{}",
        status.all()
    );
    assert!(status.stdout.contains("3 up to date"), "{}", status.all());
}

#[test]
fn a_failing_tenant_under_stop_starts_no_other() {
    let server = TestServer::shared();
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), 0.0);
    let database = schema_database(server);
    let mut tenants = names("t", 6);
    tenants.insert(3, "bad".to_owned());
    let args = tenant_args(&tenants);
    let mut up: Vec<&str> = vec!["up", "--schema-tenants", "--parallel", "1", "--json"];
    up.extend(strs(&args));

    let result = run(&mut fleet(dir.path(), &database.url(), &up));
    assert_eq!(result.code, 1, "a migration failed\n{}", result.all());
    let report = result.json();
    let outcomes = outcomes(&report);
    let mut client = database.client().unwrap();
    for tenant in &tenants[..3] {
        assert_eq!(outcomes[tenant], "applied");
        assert_eq!(applied(&mut client, tenant), all_versions());
    }
    assert_eq!(outcomes["bad"], "failed");
    let bad = &report["tenants"][3];
    assert_eq!(bad["version"], 2);
    assert_eq!(bad["applied"], serde_json::json!([1]));
    assert_eq!(bad["retryable"], false);
    assert_eq!(bad["error"]["kind"], "migration_failed");
    assert!(bad["error"]["message"]
        .as_str()
        .unwrap()
        .contains("tenant bad refuses notes"));
    // Version 1 committed with its history row; version 2 rolled back whole.
    assert_eq!(applied(&mut client, "bad"), vec![1]);
    for tenant in &tenants[4..] {
        assert_eq!(outcomes[tenant], "skipped");
        assert_eq!(
            applied(&mut client, tenant),
            Vec::<i64>::new(),
            "{tenant} was started"
        );
    }
    assert_eq!(report["summary"]["skipped"], 3);
    assert_eq!(report["summary"]["failed"], 1);
    let effects = effects(&mut client);
    assert_eq!(effects.get(&("bad".to_owned(), 2)), None);
    assert!(effects.values().all(|&times| times == 1));

    // Text mode says what happened to the skipped ones and what the failure was.
    let mut text: Vec<&str> = vec!["up", "--schema-tenants", "--parallel", "1"];
    text.extend(strs(&args));
    let again = run(&mut fleet(dir.path(), &database.url(), &text));
    assert_eq!(again.code, 1, "{}", again.all());
    assert!(
        again.stderr.contains("bad: FAILED at 2: "),
        "{}",
        again.all()
    );
    assert!(
        again
            .stderr
            .contains("3 tenants not started (stopped_after_failure): rerun once the failure is fixed, or with --on-failure continue to migrate the others meanwhile"),
        "{}",
        again.all()
    );
}

#[test]
fn a_failing_tenant_under_continue_leaves_the_others_migrated() {
    let server = TestServer::shared();
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), 0.0);
    let database = schema_database(server);
    let mut tenants = names("t", 8);
    tenants.insert(2, "bad".to_owned());
    let args = tenant_args(&tenants);
    let mut up: Vec<&str> = vec![
        "up",
        "--schema-tenants",
        "--parallel",
        "3",
        "--on-failure",
        "continue",
        "--json",
    ];
    up.extend(strs(&args));

    let result = run(&mut fleet(dir.path(), &database.url(), &up));
    assert_eq!(result.code, 1, "{}", result.all());
    let report = result.json();
    let outcomes = outcomes(&report);
    let mut client = database.client().unwrap();
    for tenant in tenants.iter().filter(|t| *t != "bad") {
        assert_eq!(outcomes[tenant], "applied", "{tenant}");
        assert_eq!(applied(&mut client, tenant), all_versions());
    }
    assert_eq!(outcomes["bad"], "failed");
    assert_eq!(applied(&mut client, "bad"), vec![1]);
    assert_eq!(report["summary"]["applied"], 8);
    assert_eq!(report["summary"]["migrations"], 8 * 3 + 1);

    // A budget of 0 failures: the first failure stops the rest.
    let database = schema_database(server);
    let tenants = ["bad_a", "bad_b", "good"].map(str::to_owned);
    let args = tenant_args(&tenants);
    let mut up: Vec<&str> = vec![
        "up",
        "--schema-tenants",
        "--parallel",
        "1",
        "--on-failure",
        "continue",
        "--failure-budget",
        "1",
        "--json",
    ];
    up.extend(strs(&args));
    let result = run(&mut fleet(dir.path(), &database.url(), &up));
    assert_eq!(result.code, 1, "{}", result.all());
    let report = result.json();
    assert_eq!(report["tenants"][0]["outcome"], "failed");
    assert_eq!(
        report["tenants"][1]["outcome"], "failed",
        "one failure is within the budget"
    );
    assert_eq!(report["tenants"][2]["outcome"], "skipped");
    assert_eq!(report["tenants"][2]["reason"], "failure_budget_exhausted");
}

#[test]
fn a_canary_failure_starts_no_other_tenant() {
    let server = TestServer::shared();
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), 0.0);
    let database = schema_database(server);
    let mut tenants = names("t", 10);
    tenants.push("bad_canary".to_owned());
    let args = tenant_args(&tenants);
    let mut up: Vec<&str> = vec![
        "up",
        "--schema-tenants",
        "--parallel",
        "4",
        "--on-failure",
        "continue",
        "--canary-tenant",
        "bad_canary",
        "--json",
    ];
    up.extend(strs(&args));
    let result = run(&mut fleet(dir.path(), &database.url(), &up));
    assert_eq!(result.code, 1, "{}", result.all());
    let report = result.json();
    let outcomes = outcomes(&report);
    assert_eq!(outcomes["bad_canary"], "failed");
    let mut client = database.client().unwrap();
    for tenant in &tenants[..10] {
        assert_eq!(outcomes[tenant], "skipped");
        let schema: bool = client
            .query_one(
                "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)",
                &[tenant],
            )
            .unwrap()
            .get(0);
        assert!(!schema, "{tenant} was touched");
    }
    assert!(report["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["outcome"] == "skipped")
        .all(|t| t["reason"] == "canary_failed"));

    // The first K as canaries: all good, then the rest run.
    let good = tenant_args(&tenants[..10]);
    let mut first: Vec<&str> = vec!["up", "--schema-tenants", "--canary", "2"];
    first.extend(strs(&good));
    let result = run(&mut fleet(dir.path(), &database.url(), &first));
    assert_eq!(result.code, 0, "{}", result.all());
    for tenant in &tenants[..10] {
        assert_eq!(applied(&mut client, tenant), all_versions());
    }

    // A canary that is not a tenant is refused before anything runs.
    let unknown = run(&mut fleet(
        dir.path(),
        &database.url(),
        &[
            "up",
            "--schema-tenants",
            "--tenant",
            "t00",
            "--canary-tenant",
            "nobody",
        ],
    ));
    assert_eq!(unknown.code, 2, "{}", unknown.all());
    assert!(
        unknown
            .stderr
            .contains("error: canary tenant \"nobody\" is not one of the fleet's tenants"),
        "{}",
        unknown.all()
    );
}

#[test]
fn shards_are_disjoint_cover_the_fleet_and_migrate_only_their_tenants() {
    let server = TestServer::shared();
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), 0.0);
    let database = schema_database(server);
    let tenants = names("s", 30);
    let file = dir.path().join("tenants.txt");
    std::fs::write(&file, format!("# the fleet\n{}\n", tenants.join("\n"))).unwrap();
    let file = file.to_str().unwrap();
    let mut seen: Vec<String> = Vec::new();
    for index in 0..3 {
        let shard = format!("{index}/3");
        let status = run(&mut fleet(
            dir.path(),
            &database.url(),
            &[
                "status",
                "--schema-tenants",
                "--tenants-file",
                file,
                "--shard",
                &shard,
                "--json",
            ],
        ));
        assert_eq!(status.code, 0, "{}", status.all());
        let listed: Vec<String> = status.json()["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["tenant"].as_str().unwrap().to_owned())
            .collect();
        assert!(!listed.is_empty(), "shard {shard} of 30 is empty");
        seen.extend(listed);
    }
    let distinct: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(seen.len(), tenants.len(), "the shards overlap");
    assert_eq!(
        distinct,
        tenants.iter().collect(),
        "the shards do not cover the fleet"
    );

    // `up` in shard 0/2 migrates exactly that shard.
    let up = run(&mut fleet(
        dir.path(),
        &database.url(),
        &[
            "up",
            "--schema-tenants",
            "--tenants-file",
            file,
            "--shard",
            "0/2",
            "--json",
        ],
    ));
    assert_eq!(up.code, 0, "{}", up.all());
    let mine: BTreeSet<String> = outcomes(&up.json()).into_keys().collect();
    let mut client = database.client().unwrap();
    for tenant in &tenants {
        let expected = if mine.contains(tenant) {
            all_versions()
        } else {
            Vec::new()
        };
        assert_eq!(applied(&mut client, tenant), expected, "{tenant}");
    }

    let refused = run(&mut fleet(
        dir.path(),
        &database.url(),
        &[
            "status",
            "--schema-tenants",
            "--tenant",
            "a",
            "--shard",
            "3/3",
        ],
    ));
    assert_eq!(refused.code, 2, "{}", refused.all());
    assert!(
        refused.stderr.contains("shard 3/3 does not exist"),
        "{}",
        refused.all()
    );
}

#[test]
fn two_runners_at_once_apply_every_migration_exactly_once() {
    let server = TestServer::shared();
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), 0.01);
    let database = schema_database(server);
    let tenants = names("c", 50);
    let mut client = database.client().unwrap();
    client
        .batch_execute("CREATE TABLE public.tenant_list (name text)")
        .unwrap();
    for tenant in &tenants {
        client
            .execute("INSERT INTO public.tenant_list VALUES ($1)", &[tenant])
            .unwrap();
    }
    let args = [
        "up",
        "--schema-tenants",
        "--tenants-query",
        "SELECT name FROM public.tenant_list ORDER BY name",
        "--parallel",
        "4",
        "--json",
    ];
    let first = spawn(&mut fleet(dir.path(), &database.url(), &args));
    let second = spawn(&mut fleet(dir.path(), &database.url(), &args));
    let (first, second) = (
        Run::of(&first.wait_with_output().unwrap()),
        Run::of(&second.wait_with_output().unwrap()),
    );
    assert_eq!(first.code, 0, "{}", first.all());
    assert_eq!(second.code, 0, "{}", second.all());
    let applied_by = |run: &Run| run.json()["summary"]["migrations"].as_u64().unwrap();
    assert_eq!(
        applied_by(&first) + applied_by(&second),
        50 * VERSIONS as u64,
        "together the runners applied each migration once"
    );
    let effects = effects(&mut client);
    assert_eq!(effects.len(), 50 * VERSIONS as usize);
    assert!(effects.values().all(|&times| times == 1), "{effects:?}");
    for tenant in &tenants {
        assert_eq!(applied(&mut client, tenant), all_versions());
    }
}

#[test]
fn a_runner_killed_mid_fleet_then_rerun_leaves_every_tenant_consistent() {
    let server = TestServer::shared();
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), 0.02);
    let database = schema_database(server);
    let tenants = names("k", 50);
    let file = dir.path().join("tenants.txt");
    std::fs::write(&file, tenants.join("\n")).unwrap();
    let file = file.to_str().unwrap();
    let args = [
        "up",
        "--schema-tenants",
        "--tenants-file",
        file,
        "--parallel",
        "2",
    ];

    let mut child = spawn(&mut fleet(dir.path(), &database.url(), &args));
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run finished before the kill"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let mut client = database.client().unwrap();
    let partial = tenants
        .iter()
        .filter(|t| applied(&mut client, t).len() == VERSIONS as usize)
        .count();
    assert!(
        partial < tenants.len(),
        "the kill came too late to test anything"
    );
    // Whatever the kill cut, each history agrees with the side effects it recorded.
    for tenant in &tenants {
        let versions = applied(&mut client, tenant);
        let done: Vec<i64> = effects(&mut client)
            .keys()
            .filter(|(t, _)| t == tenant)
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(
            versions, done,
            "{tenant}: history and effects disagree after the kill"
        );
    }

    let rerun = run(&mut fleet(dir.path(), &database.url(), &args));
    assert_eq!(rerun.code, 0, "{}", rerun.all());
    for tenant in &tenants {
        assert_eq!(applied(&mut client, tenant), all_versions(), "{tenant}");
    }
    let effects = effects(&mut client);
    assert_eq!(effects.len(), 50 * VERSIONS as usize);
    assert!(effects.values().all(|&times| times == 1), "{effects:?}");
}

#[test]
fn bad_settings_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), 0.0);
    let cases: [(&[&str], &str); 5] = [
        (
            &[
                "up",
                "--schema-tenants",
                "--tenant",
                "a",
                "--lock-scope",
                "transaction",
            ],
            "error: schema tenants need a session of their own (--lock-scope session)",
        ),
        (
            &[
                "up",
                "--schema-tenants",
                "--tenant",
                "a",
                "--failure-budget",
                "2",
            ],
            "error: --failure-budget needs --on-failure continue",
        ),
        (
            &["up", "--url-template", "postgres://db/app", "--tenant", "a"],
            "error: the URL template has no {tenant} placeholder",
        ),
        (
            &["up", "--schema-tenants", "--tenant", "a", "--tenant", "a"],
            "error: tenant \"a\" is listed twice",
        ),
        (
            &[
                "up",
                "--schema-tenants",
                "--tenant",
                "a",
                "--history-schema",
                "audit",
            ],
            "error: --history-schema does not apply to --schema-tenants",
        ),
    ];
    for (args, message) in cases {
        let result = run(&mut fleet(dir.path(), "postgres://127.0.0.1:1/none", args));
        assert_eq!(result.code, 2, "{args:?}: {}", result.all());
        assert!(
            result.stderr.contains(message),
            "{args:?}: {}",
            result.all()
        );
    }
    // Neither kind of tenant named: clap's usage error.
    let result = run(&mut fleet(
        dir.path(),
        "postgres://127.0.0.1:1/none",
        &["up", "--tenant", "a"],
    ));
    assert_eq!(result.code, 2, "{}", result.all());
    assert!(
        result.stderr.contains("--schema-tenants"),
        "{}",
        result.all()
    );
    // The database holding the tenants is down: retry me.
    let result = run(&mut fleet(
        dir.path(),
        "postgres://postgres@127.0.0.1:1/none",
        &["up", "--schema-tenants", "--tenants-query", "SELECT 'a'"],
    ));
    assert_eq!(result.code, 4, "{}", result.all());
}

#[test]
fn a_tenant_whose_lock_stays_busy_is_a_retry_not_a_failure() {
    use sha2::{Digest, Sha256};

    let server = TestServer::shared();
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), 0.0);
    let database = schema_database(server);
    // Another runner holds the migration lock of tenant `busy` (the key of its history table).
    let digest = Sha256::digest("migrate-runtime lock \"busy\".\"schema_migrations\"");
    let key = i64::from_be_bytes(digest[..8].try_into().unwrap());
    let mut holder = database.client().unwrap();
    holder
        .batch_execute(&format!("SELECT pg_advisory_lock({key})"))
        .unwrap();
    let args = [
        "up",
        "--schema-tenants",
        "--tenant",
        "busy",
        "--tenant",
        "free",
        "--on-failure",
        "continue",
        "--lock-wait",
        "1",
        "--json",
    ];
    let result = run(&mut fleet(dir.path(), &database.url(), &args));
    assert_eq!(result.code, 4, "lock busy: retry me\n{}", result.all());
    let report = result.json();
    let busy = &report["tenants"][0];
    assert_eq!(busy["outcome"], "failed");
    assert_eq!(busy["retryable"], true);
    assert_eq!(busy["error"]["kind"], "lock_timeout");
    assert_eq!(report["tenants"][1]["outcome"], "applied");

    drop(holder);
    let rerun = run(&mut fleet(dir.path(), &database.url(), &args));
    assert_eq!(rerun.code, 0, "{}", rerun.all());
    let mut client = database.client().unwrap();
    assert_eq!(applied(&mut client, "busy"), all_versions());
    assert!(effects(&mut client).values().all(|&times| times == 1));
}

#[test]
fn a_bad_tenants_query_or_url_is_refused_and_nothing_runs() {
    let server = TestServer::shared();
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), 0.0);
    let database = schema_database(server);
    let url = database.url();
    let cases: [(&[&str], &str); 4] = [
        (
            &["up", "--schema-tenants", "--tenants-query", "SELECT NULL::text"],
            "error: row 1 of the tenants query has no tenant name in its first column (NULL or no column): filter those rows out",
        ),
        (
            &["up", "--schema-tenants", "--tenants-query", "SELECT name FROM no_such_table"],
            "error: the tenants query failed: ",
        ),
        (
            &["up", "--url-template", "mysql://h/{tenant}", "--tenant", "a"],
            "error: tenant a: ",
        ),
        (
            &["up", "--schema-tenants", "--tenant", "a\u{1}b", "--tenant", &"x".repeat(64)],
            "error: tenant name \"xxxx",
        ),
    ];
    for (args, message) in cases {
        let result = run(&mut fleet(dir.path(), &url, args));
        assert_eq!(result.code, 2, "{args:?}: {}", result.all());
        assert!(
            result.stderr.contains(message),
            "{args:?}: {}",
            result.all()
        );
    }
    // Nothing ran: no tenant schema, no side effect.
    let mut client = database.client().unwrap();
    let schemas: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname IN ('a', 'a\u{1}b')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(schemas, 0);
    assert!(effects(&mut client).is_empty());
}

#[test]
fn ctrl_c_starts_no_more_tenants_cancels_the_running_ones_and_a_rerun_finishes() {
    let server = TestServer::shared();
    let dir = tempfile::tempdir().unwrap();
    // Each migration sleeps 60 s: only a cancelled statement lets the run end soon.
    write_set(dir.path(), 60.0);
    let database = schema_database(server);
    let tenants = names("i", 6);
    let tenant_args = tenant_args(&tenants);
    let mut args = vec!["--json", "up", "--schema-tenants", "--parallel", "2"];
    args.extend(strs(&tenant_args));
    let child = spawn(&mut fleet(dir.path(), &database.url(), &args));

    let mut client = database.client().unwrap();
    let sleeping = |client: &mut Client| -> i64 {
        client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND datname = current_database()",
                &[],
            )
            .unwrap()
            .get(0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while sleeping(&mut client) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "two tenants never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let signalled = std::time::Instant::now();
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let output = child.wait_with_output().unwrap();
    let stopped = Run::of(&output);
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "the run ended only when the grace period forced it: {}",
        stopped.all()
    );
    assert_eq!(stopped.code, 130, "{}", stopped.all());
    assert!(
        stopped
            .stderr
            .contains("SIGINT: starting no more tenants and cancelling the running ones"),
        "{}",
        stopped.stderr
    );
    assert!(
        stopped.stderr.contains(
            "interrupted by SIGINT: 2 tenants stopped part-way (their running migration rolled back), 4 not started"
        ),
        "{}",
        stopped.stderr
    );
    let report: Value = serde_json::from_str(&stopped.stdout).unwrap();
    let outcomes = outcomes(&report);
    let count = |what: &str| outcomes.values().filter(|o| *o == what).count();
    assert_eq!(
        (count("interrupted"), count("skipped")),
        (2, 4),
        "{outcomes:?}"
    );
    assert_eq!(report["summary"]["failed"], 0, "a stop is not a failure");
    assert_eq!(report["summary"]["interrupted"], 2);
    assert_eq!(sleeping(&mut client), 0, "no statement is left running");
    // Nothing was applied, and nothing half-applied: no history rows, no side effects.
    for tenant in &tenants {
        assert_eq!(applied(&mut client, tenant), Vec::<i64>::new(), "{tenant}");
    }
    assert!(effects(&mut client).is_empty());

    // What the help line promises: the same command again finishes the fleet (without the
    // sleep this time; nothing was recorded, so the files may still change).
    write_set(dir.path(), 0.0);
    let rerun = run(&mut fleet(dir.path(), &database.url(), &args));
    assert_eq!(rerun.code, 0, "{}", rerun.all());
    for tenant in &tenants {
        assert_eq!(applied(&mut client, tenant), all_versions(), "{tenant}");
    }
    assert!(effects(&mut client).values().all(|&times| times == 1));
}

#[test]
fn a_progress_bar_is_redrawn_in_place_and_a_failing_tenant_gets_a_line_of_its_own() {
    let server = TestServer::shared();
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), 0.0);
    let database = schema_database(server);
    let args = [
        "up",
        "--schema-tenants",
        "--tenant",
        "alpha",
        "--tenant",
        "bad",
        "--tenant",
        "gamma",
        "--parallel",
        "1",
        "--on-failure",
        "continue",
        "--progress",
        "bar",
    ];
    let done = run(&mut fleet(dir.path(), &database.url(), &args));
    assert_eq!(done.code, 1, "{}", done.all());
    // Each redraw erases the line first; the failure is printed above the bar.
    assert!(
        done.stderr.contains("\r\x1b[2Kbad: FAILED at 2: "),
        "{:?}",
        done.stderr
    );
    assert!(
        done.stderr
            .contains("\r\x1b[2K[########################] 3/3 tenants, 1 failed, "),
        "{:?}",
        done.stderr
    );
    assert!(
        !done.stderr.contains("[1/3]"),
        "no per-tenant lines with a bar"
    );
    // In a log (stderr not a terminal) the default is a line per tenant.
    let mut again = args.to_vec();
    again.truncate(args.len() - 2);
    let logged = run(&mut fleet(dir.path(), &database.url(), &again));
    assert!(logged.stderr.contains("[3/3] "), "{}", logged.stderr);
    assert!(!logged.stderr.contains('\x1b'), "{:?}", logged.stderr);
}
