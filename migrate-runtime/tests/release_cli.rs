//! The release checks through the `migrate` binary: `verify`, `drift`, `lint` and
//! `up --safety`, with their exit codes and JSON.

mod support;

use std::path::Path;

use migrate_runtime::testing::TestServer;
use migrate_test_support::files::directory;
use migrate_test_support::process::Run;
use serde_json::Value;

fn migrate(dir: &Path, url: Option<&str>, args: &[&str]) -> Run {
    let mut command = match url {
        Some(url) => support::migrate(dir, url),
        None => support::unconfigured(dir),
    };
    Run::of(&command.args(args).output().unwrap())
}

const T: (&str, &str) = (
    "001_t.sql",
    "-- migrate:up\nCREATE TABLE t (id int PRIMARY KEY, x int);\nINSERT INTO t SELECT g, g FROM generate_series(1, 10) g;\n-- migrate:down\nDROP TABLE t;\n",
);

#[test]
fn verify_exits_1_naming_the_down_that_forgets_an_index() {
    let dir = directory(&[
        T,
        (
            "002_index.sql",
            "-- migrate:up\nCREATE INDEX t_x ON t (x);\n-- migrate:down\nSELECT 1;\n",
        ),
    ]);
    let run = migrate(dir.path(), None, &["verify"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("ok            1 t ")
            && run.stdout.contains("FAILED        2 index ")
            && run.stdout.contains("DOWN does not restore the schema")
            && run
                .stdout
                .contains("  + index public.t_x: CREATE INDEX t_x ON public.t USING btree (x)")
            && run
                .stdout
                .ends_with("2 checked: 1 failed, 0 irreversible\n"),
        "{}",
        run.stdout
    );
    let json: Value =
        serde_json::from_str(&migrate(dir.path(), None, &["verify", "--json"]).stdout).unwrap();
    assert_eq!(json["passed"], false);
    assert_eq!(json["migrations"][1]["verdict"], "down_does_not_restore");
    assert_eq!(
        json["migrations"][1]["detail"]["added"][0]["object"],
        "index public.t_x"
    );

    let good = directory(&[T]);
    assert_eq!(migrate(good.path(), None, &["verify"]).code, 0);
    let irreversible = directory(&[("001_u.sql", "CREATE TABLE u (id int);\n")]);
    assert_eq!(migrate(irreversible.path(), None, &["verify"]).code, 0);
    assert_eq!(
        migrate(
            irreversible.path(),
            None,
            &["verify", "--deny-irreversible"]
        )
        .code,
        1
    );
}

#[test]
fn lint_exits_1_on_findings_that_are_not_allowed() {
    let dir = directory(&[
        T,
        (
            "002_tidy.sql",
            "-- migrate:allow destructive\n-- migrate:up\nALTER TABLE t DROP COLUMN x;\nCREATE INDEX t_id ON t (id);\n",
        ),
    ]);
    let run = migrate(dir.path(), None, &["lint"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("allowed[destructive]: ")
            && run.stdout.contains("002_tidy.sql:3: ALTER TABLE t DROP COLUMN x;")
            && run.stdout.contains("error[index-without-concurrently]: ")
            && run.stdout.contains("002_tidy.sql:4: CREATE INDEX t_id ON t (id);")
            && run.stdout.contains("= or allow it: add `-- migrate:allow index-without-concurrently` to the file's header")
            && run.stdout.ends_with("2 finding(s): 1 error(s), 1 allowed\n"),
        "{}",
        run.stdout
    );
    let json: Value =
        serde_json::from_str(&migrate(dir.path(), None, &["lint", "--json"]).stdout).unwrap();
    assert_eq!(json["errors"], 1);
    assert_eq!(json["findings"][0]["rule"], "destructive");
    assert_eq!(json["findings"][0]["allowed"], true);
    assert_eq!(migrate(directory(&[T]).path(), None, &["lint"]).code, 0);
}

#[test]
fn drift_exits_1_on_a_column_added_by_hand() {
    let dir = directory(&[T]);
    let database = TestServer::shared().create_database().unwrap();
    let url = database.url();
    assert_eq!(migrate(dir.path(), Some(&url), &["up"]).code, 0);
    let run = migrate(dir.path(), Some(&url), &["drift"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.starts_with("no drift"), "{}", run.stdout);

    database
        .client()
        .unwrap()
        .batch_execute("ALTER TABLE t ADD COLUMN note text")
        .unwrap();
    let run = migrate(dir.path(), Some(&url), &["drift"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("  + column public.t.note: text"),
        "{}",
        run.stdout
    );
    let json: Value =
        serde_json::from_str(&migrate(dir.path(), Some(&url), &["drift", "--json"]).stdout)
            .unwrap();
    assert_eq!(json["drift"], true);
    assert_eq!(json["diff"]["added"][0]["object"], "column public.t.note");
}

#[test]
fn up_with_safety_rolls_back_a_migration_that_deletes_rows() {
    let dir = directory(&[T, ("002_purge.sql", "DELETE FROM t WHERE x > 5;\n")]);
    let database = TestServer::shared().create_database().unwrap();
    let url = database.url();
    assert_eq!(
        migrate(dir.path(), Some(&url), &["up", "--to", "1"]).code,
        0
    );
    let run = migrate(dir.path(), Some(&url), &["up", "--safety"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(
            "error: migration 2 (purge) breaks the data-safety policy, so it was rolled back"
        ) && run.stderr.contains(
            "= table public.t: row count changed from 10 to 5 (allow_row_changes is off)"
        ),
        "{}",
        run.stderr
    );
    let mut client = database.client().unwrap();
    let rows: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 10);
    let run = migrate(
        dir.path(),
        Some(&url),
        &["up", "--safety", "--allow-row-changes"],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
}
