//! `migrate up --phase`, `plan`, `status` and `check [--wait-ready]` run as an operator runs
//! them during a rolling deploy: the old release's and the new release's migration
//! directories (two binaries' worth) against one real database.

mod support;

use std::path::Path;
use std::process::Stdio;

use migrate_runtime::testing::TestServer;
use migrate_test_support::files::project;
use migrate_test_support::process::Run;
use support::binary;

const USERS: &str = include_str!("../../tests/fixtures/valid/phases/new/001_create_users.sql");
const INDEX: &str = include_str!("../../tests/fixtures/valid/phases/new/002_index_nickname.sql");
const ADD: &str = include_str!("../../tests/fixtures/valid/phases/new/003_add_display_name.sql");
const DROP: &str = include_str!("../../tests/fixtures/valid/phases/new/004_drop_nickname.sql");

fn old_release() -> tempfile::TempDir {
    project(&[
        ("001_create_users.sql", USERS),
        ("002_index_nickname.sql", INDEX),
    ])
}

fn new_release() -> tempfile::TempDir {
    project(&[
        ("001_create_users.sql", USERS),
        ("002_index_nickname.sql", INDEX),
        ("003_add_display_name.sql", ADD),
        ("004_drop_nickname.sql", DROP),
    ])
}

fn migrate(dir: &Path, url: &str, args: &[&str]) -> Run {
    let output = binary()
        .current_dir(dir)
        .env("DATABASE_URL", url)
        .args(args)
        .output()
        .unwrap();
    Run::of(&output)
}

fn versions(list: &serde_json::Value) -> Vec<i64> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["version"].as_i64().unwrap())
        .collect()
}

#[test]
fn a_rolling_deploy_from_the_command_line() {
    let (old, new) = (old_release(), new_release());
    let database = TestServer::shared().create_database().unwrap();
    let url = database.url();
    assert_eq!(migrate(old.path(), &url, &["up"]).code, 0);

    // The new release is not ready yet, and says what it lacks and how to get it.
    let run = migrate(new.path(), &url, &["check"]);
    assert_eq!(run.code, 4, "{}", run.all());
    assert!(
        run.stdout.contains("not ready: 1 migration(s)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("missing      3 add_display_name"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("help: apply them with `migrate up`"),
        "{}",
        run.stdout
    );
    // `plan` shows the phases: 3 would run, 4 waits.
    let run = migrate(new.path(), &url, &["plan"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("would apply      3 add_display_name"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("(in a transaction) pre-deploy"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("waits            4 drop_nickname"),
        "{}",
        run.stdout
    );
    let plan = migrate(new.path(), &url, &["plan", "--json"]).json();
    assert_eq!(versions(&plan["pending"]), [3]);
    assert_eq!(plan["pending"][0]["phase"], "pre-deploy");
    assert_eq!(versions(&plan["waiting"]), [4]);
    assert_eq!(plan["waiting"][0]["phase"], "post-deploy");
    let plan = migrate(
        new.path(),
        &url,
        &["plan", "--phase", "post-deploy", "--json"],
    )
    .json();
    assert_eq!(versions(&plan["pending"]), [3, 4]);

    // The help's `migrate up`: the new binary applies its pre-deploy migrations, and says
    // what waits for the post-deploy phase.
    let run = migrate(new.path(), &url, &["up"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("1 migration(s) applied"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("1 migration(s) wait for the post-deploy phase, from 4 drop_nickname (post-deploy): once the new version is fully rolled out, run `migrate up --phase post-deploy`"),
        "{}",
        run.stderr
    );
    let run = migrate(new.path(), &url, &["check"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run
        .stdout
        .contains("ready: every migration this binary needs is applied"));
    assert!(
        run.stdout
            .contains("post-deploy pending      4 drop_nickname"),
        "{}",
        run.stdout
    );

    // The old binary, still serving: ready, the database is ahead of it.
    let run = migrate(old.path(), &url, &["check"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout
            .contains("ahead      3 add_display_name (applied by a newer release; tolerated)"),
        "{}",
        run.stdout
    );
    let check = migrate(old.path(), &url, &["check", "--json"]).json();
    assert_eq!(check["ready"], true);
    assert_eq!(check["missing"], serde_json::json!([]));
    assert_eq!(check["ahead"][0]["version"], 3);

    // Status shows each migration's phase, in the table and in JSON.
    let run = migrate(new.path(), &url, &["status"]);
    assert!(run.stdout.contains("phase"), "{}", run.stdout);
    let status = migrate(new.path(), &url, &["status", "--json"]).json();
    let phases: Vec<(&str, &str)> = status["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["state"].as_str().unwrap(), m["phase"].as_str().unwrap()))
        .collect();
    assert_eq!(
        phases,
        [
            ("applied", "pre-deploy"),
            ("applied", "pre-deploy"),
            ("applied", "pre-deploy"),
            ("pending", "post-deploy")
        ]
    );

    // After the rollout, the post-deploy phase: the command the note named.
    let run = migrate(new.path(), &url, &["up", "--phase", "post-deploy"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("1 migration(s) applied"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stderr.contains("wait for the post-deploy phase"),
        "{}",
        run.stderr
    );
    let check = migrate(
        new.path(),
        &url,
        &["check", "--phase", "post-deploy", "--json"],
    )
    .json();
    assert_eq!(check["ready"], true);
    assert_eq!(check["post_deploy_pending"], serde_json::json!([]));
}

#[test]
fn wait_ready_polls_until_another_process_migrates() {
    let (old, new) = (old_release(), new_release());
    let database = TestServer::shared().create_database().unwrap();
    let url = database.url();
    assert_eq!(migrate(old.path(), &url, &["up"]).code, 0);

    // Not ready within the time given: exit 4 after saying what it waited for.
    let started = std::time::Instant::now();
    let run = migrate(new.path(), &url, &["check", "--wait-ready", "2"]);
    assert_eq!(run.code, 4, "{}", run.all());
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
    assert!(
        run.stderr.contains(
            "waiting: not ready, missing 3 add_display_name; checking again every second"
        ),
        "{}",
        run.stderr
    );

    // A replica waiting while the migrating one runs `up`: it becomes ready and exits 0.
    let waiting = binary()
        .current_dir(new.path())
        .env("DATABASE_URL", &url)
        .args(["check", "--wait-ready", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(migrate(new.path(), &url, &["up"]).code, 0);
    let run = Run::of(&waiting.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("ready: every migration"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("waiting: not ready"), "{}", run.stderr);
}

#[test]
fn ordering_problems_are_refused_before_connecting_and_the_help_works() {
    let dir = project(&[
        ("001_a.sql", "CREATE TABLE a (id int, old text);\n"),
        (
            "002_drop_old.sql",
            "-- migrate:phase post-deploy\nALTER TABLE a DROP COLUMN old;\n",
        ),
        (
            "003_view.sql",
            "-- migrate:requires 002\nCREATE VIEW v AS SELECT id FROM a;\n",
        ),
    ]);
    let database = TestServer::shared().create_database().unwrap();
    let url = database.url();
    let run = migrate(dir.path(), &url, &["up"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("migrations/003_view.sql:1: this pre-deploy migration requires version 2, which is post-deploy"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("help: mark this migration `-- migrate:phase post-deploy` too"),
        "{}",
        run.stderr
    );
    let mut client = database.client().unwrap();
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "nothing was applied, not even the history table");

    // What the help suggests: mark it post-deploy too. Then `up` applies 1 and both wait.
    std::fs::write(
        dir.path().join("migrations/003_view.sql"),
        "-- migrate:phase post-deploy\n-- migrate:requires 002\nCREATE VIEW v AS SELECT id FROM a;\n",
    )
    .unwrap();
    let run = migrate(dir.path(), &url, &["up"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr
            .contains("2 migration(s) wait for the post-deploy phase"),
        "{}",
        run.stderr
    );
    let run = migrate(dir.path(), &url, &["up", "--phase", "post-deploy"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("2 migration(s) applied"),
        "{}",
        run.stdout
    );

    // An unknown phase value names the file, the line and the values there are.
    std::fs::write(
        dir.path().join("migrations/004_later.sql"),
        "-- migrate:phase after-deploy\nSELECT 1;\n",
    )
    .unwrap();
    let run = migrate(dir.path(), &url, &["plan"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("migrations/004_later.sql:1: `after-deploy` is not a deploy phase (`pre-deploy` or `post-deploy`)"),
        "{}",
        run.stderr
    );
}
