//! `migrate squash --through V` run as a user runs it: the squash file written, the replaced
//! files deleted, and `up` of the squashed directory against databases at, below and before V.

mod support;

use std::path::Path;

use migrate_runtime::testing::TestServer;
use migrate_test_support::files::project;
use migrate_test_support::process::Run;
use support::binary;

const CHAIN: [(&str, &str); 4] = [
    (
        "001_accounts.sql",
        "-- migrate:up\nCREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL);\nINSERT INTO accounts VALUES (1, 'system');\n-- migrate:down\nDROP TABLE accounts;\n",
    ),
    (
        "002_readers.sql",
        "DO $$ BEGIN CREATE ROLE squash_reader; EXCEPTION WHEN duplicate_object THEN NULL; END $$;\nGRANT SELECT ON accounts TO squash_reader;\n",
    ),
    (
        "003_index.sql",
        "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY accounts_name ON accounts (name);\n",
    ),
    ("004_email.sql", "ALTER TABLE accounts ADD COLUMN email text;\n"),
];

fn migrate(dir: &Path, url: &str, args: &[&str]) -> Run {
    let output = binary()
        .current_dir(dir)
        .env("DATABASE_URL", url)
        .args(args)
        .output()
        .unwrap();
    Run::of(&output)
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("migrations"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn squash_writes_one_file_and_databases_take_it() {
    let dir = project(&CHAIN);
    let server = TestServer::shared();
    // A database that applied the chain up to 3, one that stopped at 2, and one that is new.
    let (at, below, fresh) = (
        server.create_database().unwrap(),
        server.create_database().unwrap(),
        server.create_database().unwrap(),
    );
    assert_eq!(migrate(dir.path(), &at.url(), &["up", "--to", "3"]).code, 0);
    assert_eq!(
        migrate(dir.path(), &below.url(), &["up", "--to", "2"]).code,
        0
    );
    let old = project(&CHAIN);

    let run = migrate(dir.path(), "", &["squash", "--through", "3", "--json"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let report = run.json();
    assert_eq!(report["written"], "migrations/003_squashed.sql");
    assert_eq!(report["replaced"], serde_json::json!([1, 2, 3]));
    assert_eq!(report["carried_rows"]["public.accounts"], 1);
    // Privileges are not carried, and that is said: in the report and in the file.
    let not_carried = report["not_carried"].to_string();
    assert!(
        not_carried.contains("GRANT SELECT ON TABLE public.accounts TO squash_reader"),
        "{not_carried}"
    );
    assert_eq!(files(dir.path()), ["003_squashed.sql", "004_email.sql"]);
    let text = std::fs::read_to_string(dir.path().join("migrations/003_squashed.sql")).unwrap();
    assert!(
        text.starts_with("-- migrate:replaces 001 sha256:"),
        "{text}"
    );
    assert!(
        text.contains(
            "-- not carried (privileges): GRANT SELECT ON TABLE public.accounts TO squash_reader;"
        ),
        "{text}"
    );

    // At 3: the squash is recorded, no SQL of it runs, 4 applies.
    let run = migrate(dir.path(), &at.url(), &["up"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("1 migration(s) applied"),
        "{}",
        run.stdout
    );
    let status = migrate(dir.path(), &at.url(), &["status", "--json"]).json();
    let rows: Vec<(i64, &str)> = status["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["version"].as_i64().unwrap(), m["state"].as_str().unwrap()))
        .collect();
    assert_eq!(rows, [(3, "applied"), (4, "applied")]);

    // Below 3: refused, with what to do; nothing changes.
    let run = migrate(dir.path(), &below.url(), &["up"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("error: squash 3 (squashed) replaces migrations 1..=3, and the database applied only some of them: nothing was applied"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("help: bring this database to version 3 with a release that still has the migrations 1..=3 (its `migrate up --to 3`)"), "{}", run.stderr);
    let json = migrate(dir.path(), &below.url(), &["up", "--json"]).json();
    assert_eq!(json["error"]["kind"], "partly_squashed");
    // The help's command, with the release that still has the chain; then the squash takes.
    assert_eq!(
        migrate(old.path(), &below.url(), &["up", "--to", "3"]).code,
        0
    );
    let run = migrate(dir.path(), &below.url(), &["up"]);
    assert_eq!(run.code, 0, "{}", run.all());

    // A new database runs the squash, then 4.
    let run = migrate(dir.path(), &fresh.url(), &["up"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("2 migration(s) applied"),
        "{}",
        run.stdout
    );
    let mut client = fresh.client().unwrap();
    let name: String = client
        .query_one("SELECT name FROM accounts WHERE id = 1", &[])
        .unwrap()
        .get(0);
    assert_eq!(name, "system");
}

#[test]
fn squash_through_an_unknown_version_is_refused_and_writes_nothing() {
    let dir = project(&CHAIN);
    let run = migrate(dir.path(), "", &["squash", "--through", "7"]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("error: cannot squash through 7: no migration has that version; name the highest version the squash replaces, as `migrate status` lists it; nothing was written"),
        "{}",
        run.stderr
    );
    assert_eq!(files(dir.path()).len(), 4);
}
