//! `#[migrate_macros::test]` and `migrate_runtime::testing::migrated_database`: a migrated
//! database per test from a template that outlives the process, built once however many
//! processes ask, replaced (and the old one dropped) when the migrations change, kept when its
//! test fails.
//!
//! The databases live on the persistent test server (`MIGRATE_TEST_DATABASE_URL`, else the
//! machine's shared throwaway server). Several tests run a child process: this test binary
//! itself, running one of the `#[ignore]`d tests below.

use std::path::Path;
use std::process::{Command, Output};

use migrate_runtime::testing::{migrated_database, TestDatabase};
use migrate_runtime::{Migration, Migrator};
use postgres::Client;

/// A migrations directory whose content no earlier run has seen (a fresh token in a comment).
fn new_set(dir: &Path, token: &str) -> Vec<Migration> {
    std::fs::write(
        dir.join("001_items.sql"),
        format!("-- migrate:up\n-- {token}\nCREATE TABLE items (id int PRIMARY KEY, note text);\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("002_seed.sql"),
        "-- migrate:up\nINSERT INTO items VALUES (1, 'seeded');\n",
    )
    .unwrap();
    migrate_runtime::source::read_dir(dir, ".")
        .unwrap()
        .migrations
}

fn token() -> String {
    format!("{}-{:016x}", std::process::id(), fastrand_u64())
}

fn fastrand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    hasher.finish()
}

/// The names of the databases on the server starting with `prefix`.
fn databases_like(client: &mut Client, prefix: &str) -> Vec<String> {
    client
        .query(
            "SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY datname",
            &[&prefix],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// `mtt_<set>_`: the prefix shared by every template of the set `template` belongs to.
fn set_prefix(template: &str) -> String {
    template[..13].to_owned()
}

fn run_child(test: &str, envs: &[(&str, &str)]) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .envs(envs.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Run by `sixteen_processes_asking_at_once_build_one_template`: hands out one database of the
/// set in `CHILD_DIR` and reports how.
#[test]
#[ignore = "a child process of sixteen_processes_asking_at_once_build_one_template"]
#[allow(clippy::print_stdout)]
fn child_hands_out_a_database() {
    let dir = std::env::var("CHILD_DIR").unwrap();
    let migrations = migrate_runtime::source::read_dir(Path::new(&dir), ".")
        .unwrap()
        .migrations;
    let database = migrated_database(&dir, &Migrator::new(&migrations)).unwrap();
    let seeded: String = database
        .client()
        .unwrap()
        .query_one("SELECT note FROM items WHERE id = 1", &[])
        .unwrap()
        .get(0);
    let hand_out = database.hand_out().unwrap();
    println!(
        "HANDOUT built={} template={} database={} seeded={seeded}",
        hand_out.built_template,
        hand_out.template,
        database.name()
    );
}

#[test]
fn sixteen_processes_asking_at_once_build_one_template() {
    let dir = tempfile::tempdir().unwrap();
    new_set(dir.path(), &token());
    let path = dir.path().to_str().unwrap();
    let children: Vec<_> = (0..16)
        .map(|_| run_child("child_hands_out_a_database", &[("CHILD_DIR", path)]))
        .collect();
    let reports: Vec<String> = children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().unwrap();
            let all = text(&output);
            assert!(output.status.success(), "{all}");
            // The harness prints `test NAME ... ` on the same line.
            let report = all
                .lines()
                .find_map(|line| line.find("HANDOUT ").map(|at| &line[at..]))
                .unwrap_or_else(|| panic!("no report in {all}"));
            report.to_owned()
        })
        .collect();
    let built = reports
        .iter()
        .filter(|report| report.contains("built=true"))
        .count();
    assert_eq!(
        built, 1,
        "exactly one process migrates the template: {reports:#?}"
    );
    let templates: std::collections::BTreeSet<&str> = reports
        .iter()
        .map(|report| report.split(' ').nth(2).unwrap())
        .collect();
    assert_eq!(templates.len(), 1, "{reports:#?}");
    let databases: std::collections::BTreeSet<&str> = reports
        .iter()
        .map(|report| report.split(' ').nth(3).unwrap())
        .collect();
    assert_eq!(
        databases.len(),
        16,
        "each process has its own database: {reports:#?}"
    );
    assert!(reports
        .iter()
        .all(|report| report.ends_with("seeded=seeded")));

    // The server holds that one template of the set, and no half-built one.
    let template = templates.first().unwrap().trim_start_matches("template=");
    let migrations = migrate_runtime::source::read_dir(dir.path(), ".")
        .unwrap()
        .migrations;
    let again = migrated_database(path, &Migrator::new(&migrations)).unwrap();
    assert!(
        !again.hand_out().unwrap().built_template,
        "a later process reuses it"
    );
    let mut client = again.client().unwrap();
    assert_eq!(
        databases_like(&mut client, &set_prefix(template)),
        [template]
    );
    assert_eq!(
        databases_like(&mut client, &set_prefix(template).replacen("mtt", "mtb", 1)),
        Vec::<String>::new()
    );
}

#[test]
fn a_changed_migration_makes_a_new_template_and_drops_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().to_str().unwrap();
    let first = new_set(dir.path(), &token());
    let old = migrated_database(set, &Migrator::new(&first)).unwrap();
    let old_template = old.hand_out().unwrap().template.clone();
    assert!(old.hand_out().unwrap().built_template);
    drop(old);

    let second = new_set(dir.path(), &token());
    let new = migrated_database(set, &Migrator::new(&second)).unwrap();
    let hand_out = new.hand_out().unwrap();
    assert!(hand_out.built_template, "the changed set is migrated anew");
    assert_ne!(hand_out.template, old_template);
    let mut client = new.client().unwrap();
    assert_eq!(
        databases_like(&mut client, &set_prefix(&old_template)),
        std::slice::from_ref(&hand_out.template),
        "the old template is dropped"
    );
    // Nor are clones of the old set left in the warm pool.
    let old_pool = old_template.replacen("mtt", "mtp", 1);
    assert_eq!(databases_like(&mut client, &old_pool), Vec::<String>::new());
}

#[test]
fn databases_are_isolated_from_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = new_set(dir.path(), &token());
    let migrator = Migrator::new(&migrations);
    let one = migrated_database("isolation", &migrator).unwrap();
    let two = migrated_database("isolation", &migrator).unwrap();
    assert_ne!(one.name(), two.name());
    let (mut first, mut second) = (one.client().unwrap(), two.client().unwrap());
    first
        .execute("INSERT INTO items VALUES (2, 'one')", &[])
        .unwrap();
    second
        .execute("INSERT INTO items VALUES (2, 'two')", &[])
        .unwrap();
    let note = |client: &mut Client| -> Vec<String> {
        client
            .query("SELECT note FROM items WHERE id = 2", &[])
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect()
    };
    assert_eq!(note(&mut first), ["one"]);
    assert_eq!(note(&mut second), ["two"]);
}

/// A set whose tables a test writes: `items` (seeded by the template), `events` (empty, with
/// an identity sequence, referencing `items`), `tags` (empty, referencing `events`), an
/// unused sequence and one the template used.
fn recyclable_set(dir: &Path, token: &str) -> Vec<Migration> {
    new_set(dir, token);
    std::fs::write(
        dir.join("003_events.sql"),
        "-- migrate:up\n\
         CREATE TABLE events (id bigserial PRIMARY KEY, item int REFERENCES items, note text);\n\
         CREATE TABLE tags (event bigint REFERENCES events, tag text);\n\
         CREATE SEQUENCE counter;\n\
         CREATE SEQUENCE used;\n\
         SELECT nextval('used');\n",
    )
    .unwrap();
    migrate_runtime::source::read_dir(dir, ".")
        .unwrap()
        .migrations
}

/// What became of the finished database whose OID is `oid`: its name once it is back in the
/// warm pool (`mtp_`), or `None` once it is dropped.
fn fate(admin: &mut Client, oid: u32) -> Option<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let name: Option<String> = admin
            .query_opt(
                "SELECT datname::text FROM pg_database WHERE oid = $1",
                &[&oid],
            )
            .unwrap()
            .map(|row| row.get(0));
        match name {
            None => return None,
            Some(name) if name.starts_with("mtp_") => return Some(name),
            Some(name) => assert!(
                std::time::Instant::now() < deadline,
                "{name} was neither recycled nor dropped"
            ),
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn oid_of(admin: &mut Client, name: &str) -> u32 {
    admin
        .query_one("SELECT oid FROM pg_database WHERE datname = $1", &[&name])
        .unwrap()
        .get(0)
}

/// A passing test's database that `write` was run in, and what became of it.
fn finish_after(
    set: &str,
    migrator: &Migrator<'_>,
    write: &str,
) -> (TestDatabase<'static>, Option<String>) {
    let database = migrated_database(set, migrator).unwrap();
    let watcher = migrated_database(set, migrator).unwrap();
    let mut admin = watcher.client().unwrap();
    let oid = oid_of(&mut admin, database.name());
    let name = database.name().to_owned();
    database.client().unwrap().batch_execute(write).unwrap();
    drop(database);
    let fate = fate(&mut admin, oid);
    assert!(
        databases_like(&mut admin, &name).is_empty(),
        "the finished database's name is free again"
    );
    drop(admin);
    (watcher, fate)
}

#[test]
fn a_passing_tests_rows_are_emptied_and_its_database_returns_to_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = recyclable_set(dir.path(), &token());
    let migrator = Migrator::new(&migrations);
    let (watcher, recycled) = finish_after(
        "recycled",
        &migrator,
        "INSERT INTO events (item, note) VALUES (1, 'a'), (1, 'b'), (NULL, 'c'); \
         INSERT INTO tags SELECT id, 'x' FROM events; \
         SELECT nextval('counter'); SELECT nextval('counter');",
    );
    let recycled = recycled.expect("a database with only rows written is recycled");
    // As the template left it: the seed row, empty tables, unused sequences.
    let mut config = watcher.config();
    let mut client = config.dbname(&recycled).connect(postgres::NoTls).unwrap();
    let row = client
        .query_one(
            "SELECT (SELECT string_agg(note, ',') FROM items), \
                    (SELECT count(*) FROM events), (SELECT count(*) FROM tags), \
                    (SELECT last_value = 1 AND NOT is_called FROM events_id_seq), \
                    (SELECT last_value = 1 AND NOT is_called FROM counter)",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "seeded");
    assert_eq!(row.get::<_, i64>(1), 0);
    assert_eq!(row.get::<_, i64>(2), 0);
    assert!(row.get::<_, bool>(3), "the identity sequence starts again");
    assert!(row.get::<_, bool>(4), "the used sequence starts again");
    drop(client);

    // A test that only read gives its database back too (without anything to empty).
    let (_, read_only) = finish_after("recycled", &migrator, "SELECT count(*) FROM items");
    assert!(
        read_only.is_some(),
        "a read-only test's database is recycled"
    );
}

#[test]
fn a_passing_tests_database_is_dropped_when_its_writes_cannot_be_undone_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = recyclable_set(dir.path(), &token());
    let migrator = Migrator::new(&migrations);
    for write in [
        // The schema changed.
        "CREATE TABLE extra (id int)",
        "CREATE TEMPORARY TABLE scratch AS SELECT 1",
        // A table the template seeded.
        "UPDATE items SET note = 'changed'",
        "DELETE FROM items",
        "INSERT INTO items VALUES (7, 'added')",
        // A sequence the template used.
        "SELECT nextval('used')",
        // A setting attached to the database.
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET work_mem = ''8MB''', current_database()); END $$",
    ] {
        let (_, fate) = finish_after("unrecyclable", &migrator, write);
        assert_eq!(fate, None, "after `{write}` the database is dropped");
    }
}

// The attribute, with each argument type, in sync and async tests. Each inserts the same row:
// running side by side (the harness's threads), they would collide on one database.

#[migrate_macros::test(migrations = "fixtures/valid/lf")]
fn attribute_with_a_client_reference(client: &mut Client) {
    client.execute("INSERT INTO t VALUES (1)", &[]).unwrap();
    let count: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 1);
}

#[migrate_macros::test(migrations = "fixtures/valid/lf")]
fn attribute_with_an_owned_client(mut client: Client) {
    client.execute("INSERT INTO t VALUES (1)", &[]).unwrap();
    let count: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 1);
}

#[migrate_macros::test(migrations = "fixtures/valid/lf")]
fn attribute_with_the_database(database: TestDatabase) {
    assert!(database.name().starts_with("mtd_"), "{}", database.name());
    let mut client = database.client().unwrap();
    client.execute("INSERT INTO t VALUES (1)", &[]).unwrap();
    let count: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 1);
}

static LF: &[Migration] = migrate_macros::embed_migrations!("fixtures/valid/lf");

#[migrate_macros::test(migrations = LF)]
fn attribute_with_a_url_and_a_static_set(url: String) -> Result<(), postgres::Error> {
    let mut client = Client::connect(&url, postgres::NoTls)?;
    client.execute("INSERT INTO t VALUES (1)", &[])?;
    let count: i64 = client.query_one("SELECT count(*) FROM t", &[])?.get(0);
    assert_eq!(count, 1);
    Ok(())
}

/// A blocking client on its own thread, as async code would use one.
fn count_after_insert(url: String) -> i64 {
    std::thread::spawn(move || {
        let mut client = Client::connect(&url, postgres::NoTls).unwrap();
        client.execute("INSERT INTO t VALUES (1)", &[]).unwrap();
        client
            .query_one("SELECT count(*) FROM t", &[])
            .unwrap()
            .get(0)
    })
    .join()
    .unwrap()
}

#[migrate_macros::test(migrations = "fixtures/valid/lf")]
#[tokio::test]
async fn attribute_on_an_async_test(url: String) {
    tokio::task::yield_now().await;
    assert_eq!(count_after_insert(url), 1);
}

#[migrate_macros::test(migrations = LF)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_on_a_multi_threaded_async_test(database: TestDatabase) {
    let url = database.url();
    let count = tokio::task::spawn_blocking(move || count_after_insert(url))
        .await
        .unwrap();
    assert_eq!(count, 1);
}

/// Run by `a_failing_tests_database_is_kept_and_named`: inserts a row, then fails.
#[migrate_macros::test(migrations = "fixtures/valid/lf")]
#[ignore = "a child process of a_failing_tests_database_is_kept_and_named"]
fn child_fails(client: &mut Client) {
    client.execute("INSERT INTO t VALUES (42)", &[]).unwrap();
    panic!("this test fails on purpose");
}

/// Run by `a_failing_tests_database_is_kept_and_named`: returns an error after inserting.
#[migrate_macros::test(migrations = "fixtures/valid/lf")]
#[ignore = "a child process of a_failing_tests_database_is_kept_and_named"]
fn child_returns_an_error(client: &mut Client) -> Result<(), String> {
    client.execute("INSERT INTO t VALUES (43)", &[]).unwrap();
    Err("this test fails on purpose".to_owned())
}

/// The URL the failure output names.
fn kept_url(output: &str) -> String {
    let marker = "the failed test's database is kept: ";
    let start = output
        .find(marker)
        .unwrap_or_else(|| panic!("no kept database named in:\n{output}"))
        + marker.len();
    output[start..].lines().next().unwrap().trim().to_owned()
}

#[test]
fn a_failing_tests_database_is_kept_and_named() {
    for (test, row) in [("child_fails", 42), ("child_returns_an_error", 43)] {
        let output = run_child(test, &[]).wait_with_output().unwrap();
        let all = text(&output);
        assert!(!output.status.success(), "{all}");
        assert!(all.contains("this test fails on purpose"), "{all}");
        let url = kept_url(&all);
        assert!(url.starts_with("postgresql://"), "{url}");
        assert!(
            all.contains(&format!("help: look inside with `psql {url}`")),
            "{all}"
        );
        // The help's `psql` works: what the test wrote is there to look at.
        let psql = Command::new("psql")
            .args([
                url.as_str(),
                "-Atc",
                &format!("SELECT count(*) FROM t WHERE id = {row}"),
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&psql.stdout).trim(),
            "1",
            "{}",
            text(&psql)
        );
        let mut client = migrate_runtime::config::ConnectionSettings::from_url(&url)
            .unwrap()
            .connect()
            .unwrap();
        let rows: i64 = client
            .query_one("SELECT count(*) FROM t WHERE id = $1", &[&row])
            .unwrap()
            .get(0);
        assert_eq!(rows, 1, "{url}");
        let name = client
            .query_one("SELECT current_database()", &[])
            .unwrap()
            .get::<_, String>(0);
        drop(client);
        let admin = migrated_database("cleanup", &Migrator::new(LF)).unwrap();
        admin
            .client()
            .unwrap()
            .batch_execute(&format!("DROP DATABASE \"{name}\""))
            .unwrap();
    }

    // Told not to keep, the failed test's database is dropped.
    let output = run_child("child_fails", &[("MIGRATE_TEST_KEEP_FAILED", "0")])
        .wait_with_output()
        .unwrap();
    let all = text(&output);
    assert!(!output.status.success(), "{all}");
    assert!(!all.contains("is kept"), "{all}");
}

#[test]
fn a_server_named_by_migrate_test_database_url_is_used() {
    // A server of this test's own stands for the developer's (`DATABASE_URL`-like) server.
    let server = migrate_runtime::testing::TestServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    new_set(dir.path(), &token());
    let path = dir.path().to_str().unwrap();
    let url = server.url("postgres");
    let output = run_child(
        "child_hands_out_a_database",
        &[("CHILD_DIR", path), ("MIGRATE_TEST_DATABASE_URL", &url)],
    )
    .wait_with_output()
    .unwrap();
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    assert!(all.contains("built=true"), "{all}");
    let template = all
        .split_whitespace()
        .find_map(|word| word.strip_prefix("template="))
        .unwrap();
    let mut admin = server.connect("postgres").unwrap();
    assert_eq!(databases_like(&mut admin, template), [template]);

    // Set but empty is refused, never replaced by another server.
    let output = run_child(
        "child_hands_out_a_database",
        &[("CHILD_DIR", path), ("MIGRATE_TEST_DATABASE_URL", "")],
    )
    .wait_with_output()
    .unwrap();
    let all = text(&output);
    assert!(!output.status.success(), "{all}");
    assert!(all.contains("MIGRATE_TEST_DATABASE_URL"), "{all}");
    assert!(all.contains("is set but empty"), "{all}");
}

/// Run by `a_server_that_refuses_a_reset_gets_finished_databases_dropped`: a passing test's
/// database with rows written, given back, watched until it is gone (or recycled).
#[test]
#[ignore = "a child process of a_server_that_refuses_a_reset_gets_finished_databases_dropped"]
#[allow(clippy::print_stdout)]
fn child_writes_and_gives_back() {
    let dir = std::env::var("CHILD_DIR").unwrap();
    let migrations = recyclable_set(Path::new(&dir), &token());
    let migrator = Migrator::new(&migrations);
    let (_, fate) = finish_after(&dir, &migrator, "INSERT INTO events (note) VALUES ('x')");
    println!("FATE {fate:?}");
}

#[test]
fn a_server_that_refuses_a_reset_gets_finished_databases_dropped() {
    // A developer's server where the tests' role may create databases but is no superuser:
    // `pg_stat_reset` is refused, so a database with rows written cannot be recycled. It must
    // be dropped, not left behind.
    let server = migrate_runtime::testing::TestServer::start().unwrap();
    server
        .connect("postgres")
        .unwrap()
        .batch_execute("CREATE ROLE tester LOGIN CREATEDB")
        .unwrap();
    let url = server.url("postgres").replacen("postgres@", "tester@", 1);
    assert!(url.contains("tester@"), "{url}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let output = run_child(
        "child_writes_and_gives_back",
        &[("CHILD_DIR", path), ("MIGRATE_TEST_DATABASE_URL", &url)],
    )
    .wait_with_output()
    .unwrap();
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    assert!(
        all.contains("FATE None"),
        "dropped, not recycled nor left: {all}"
    );
}

/// The shared server of `tmp` (what `TMPDIR` points at), if its `postmaster.pid` is there.
fn shared_server_pid_file(tmp: &Path) -> Option<std::path::PathBuf> {
    let dir = std::fs::read_dir(tmp).ok()?.flatten().find(|entry| {
        entry
            .file_name()
            .to_string_lossy()
            .starts_with("migrate-test-server-")
    })?;
    let pid_file = dir.path().join("data/postmaster.pid");
    pid_file.exists().then_some(pid_file)
}

#[test]
fn the_shared_server_is_reused_by_later_processes_and_stops_itself_when_idle() {
    use std::os::unix::fs::PermissionsExt;
    // A shared server of this test's own: the directory comes from TMPDIR.
    let tmp = tempfile::tempdir().unwrap();
    // As root the server runs as an unprivileged user, who must reach its directory.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sets = tempfile::tempdir().unwrap();
    new_set(sets.path(), &token());
    let set = sets.path().to_str().unwrap();
    let tmpdir = tmp.path().to_str().unwrap();
    let envs = [
        ("CHILD_DIR", set),
        ("TMPDIR", tmpdir),
        ("MIGRATE_TEST_SERVER_IDLE_MINUTES", "1"),
    ];
    let report = |envs: &[(&str, &str)]| {
        let output = run_child("child_hands_out_a_database", envs)
            .wait_with_output()
            .unwrap();
        let all = text(&output);
        assert!(output.status.success(), "{all}");
        all
    };
    let first = report(&envs);
    assert!(first.contains("built=true"), "{first}");
    let pid_file = shared_server_pid_file(tmp.path()).expect("the shared server runs");
    let pid = std::fs::read_to_string(&pid_file).unwrap();

    // A later process (a later `cargo test`) finds the same server and its template.
    let second = report(&envs);
    assert!(second.contains("built=false"), "{second}");
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        pid,
        "the same server"
    );

    // Idle for the configured minute, it stops itself, keeping its data.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(150);
    while pid_file.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the shared server did not stop when idle"
        );
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    assert!(
        pid_file.with_file_name("PG_VERSION").exists(),
        "its data is kept"
    );

    // The next process starts it again, and the template is still there.
    let third = report(&envs);
    assert!(third.contains("built=false"), "{third}");
    // Stopped and removed by the documented function (here in a child of this directory).
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["child_stops_the_shared_server", "--exact", "--ignored"])
        .env("TMPDIR", tmpdir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(shared_server_pid_file(tmp.path()), None);
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "its directory is removed"
    );
}

/// Run by `the_shared_server_is_reused_by_later_processes_and_stops_itself_when_idle`.
#[test]
#[ignore = "a child process of the_shared_server_is_reused_by_later_processes_and_stops_itself_when_idle"]
fn child_stops_the_shared_server() {
    migrate_runtime::testing::stop_shared_server().unwrap();
}
