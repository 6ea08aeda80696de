//! Deploy phases and readiness: a rolling deploy simulated with two binaries (the old and the
//! new release's embedded migrations) against one database, and the per-migration out-of-order
//! opt-in.

use migrate_runtime::testing::TestServer;
use migrate_runtime::{Error, Migration, Migrator, Phase, State};
use migrate_test_support::files::directory;

/// Release 1: users with a nickname.
static OLD: &[Migration] = migrate_macros::embed_migrations!("fixtures/valid/phases/old");
/// Release 2: adds display_name (pre-deploy), drops nickname (post-deploy).
static NEW: &[Migration] = migrate_macros::embed_migrations!("fixtures/valid/phases/new");

fn columns(client: &mut postgres::Client) -> Vec<String> {
    client
        .query(
            "SELECT column_name::text FROM information_schema.columns WHERE table_name = 'users' ORDER BY column_name",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

fn applied(client: &mut postgres::Client) -> Vec<i64> {
    Migrator::new(NEW)
        .applied(client)
        .unwrap()
        .iter()
        .map(|row| row.version)
        .collect()
}

fn versions(list: &[&Migration]) -> Vec<i64> {
    list.iter().map(|m| m.version()).collect()
}

#[test]
fn the_directive_is_embedded() {
    let phases: Vec<Phase> = NEW.iter().map(Migration::phase).collect();
    assert_eq!(
        phases,
        [
            Phase::PreDeploy,
            Phase::PreDeploy,
            Phase::PreDeploy,
            Phase::PostDeploy
        ]
    );
}

#[test]
fn a_rolling_deploy_with_two_binaries() {
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    // Release 1 is live.
    Migrator::new(OLD).run(&mut client).unwrap();
    client
        .batch_execute("INSERT INTO users (nickname) VALUES ('ada'), ('grace')")
        .unwrap();

    // Release 2 starts rolling out: it is not ready until its pre-deploy migration is applied,
    // and it says what it lacks; its post-deploy migration is not something it needs.
    let before = Migrator::new(NEW).check(&mut client).unwrap();
    assert!(!before.is_ready());
    assert_eq!(versions(&before.missing), [3]);
    assert_eq!(versions(&before.post_deploy_pending), [4]);
    assert!(before.ahead.is_empty());
    let plan = Migrator::new(NEW).plan(&mut client).unwrap();
    assert_eq!(versions(&plan.pending), [3]);
    assert_eq!(versions(&plan.waiting), [4]);

    // The new binary's `up` applies its pre-deploy migrations only.
    let report = Migrator::new(NEW).run(&mut client).unwrap();
    let done: Vec<i64> = report.applied.iter().map(|a| a.version).collect();
    assert_eq!(done, [3]);
    assert_eq!(columns(&mut client), ["display_name", "id", "nickname"]);
    // Run again (every new replica starting): nothing to do, post-deploy still waits.
    assert!(Migrator::new(NEW)
        .run(&mut client)
        .unwrap()
        .applied
        .is_empty());
    assert_eq!(applied(&mut client), [1, 2, 3]);

    // The old replicas still running: their check passes, the database is ahead of them.
    let old = Migrator::new(OLD).check(&mut client).unwrap();
    assert!(old.is_ready(), "{old:?}");
    assert!(old.missing.is_empty());
    let ahead: Vec<(i64, &str)> = old
        .ahead
        .iter()
        .map(|row| (row.version, row.name.as_str()))
        .collect();
    assert_eq!(ahead, [(3, "add_display_name")]);
    // ... while the old binary's `up` still refuses a history it does not know, touching nothing.
    assert!(matches!(
        Migrator::new(OLD).run(&mut client),
        Err(Error::MissingFromBinary(missing)) if missing == [(3, "add_display_name".to_owned())]
    ));
    assert_eq!(applied(&mut client), [1, 2, 3]);
    // The new replicas are ready.
    let new = Migrator::new(NEW).check(&mut client).unwrap();
    assert!(new.is_ready());
    assert_eq!(versions(&new.post_deploy_pending), [4]);
    // Status shows each migration's phase.
    let status = Migrator::new(NEW).status(&mut client).unwrap();
    let shown: Vec<(i64, State, Option<Phase>)> = status
        .entries
        .iter()
        .map(|e| (e.version, e.state, e.phase))
        .collect();
    assert_eq!(
        shown,
        [
            (1, State::Applied, Some(Phase::PreDeploy)),
            (2, State::Applied, Some(Phase::PreDeploy)),
            (3, State::Applied, Some(Phase::PreDeploy)),
            (4, State::Pending, Some(Phase::PostDeploy)),
        ]
    );

    // The rollout is complete: the post-deploy phase applies the rest.
    let post = Migrator::new(NEW)
        .phase(Phase::PostDeploy)
        .run(&mut client)
        .unwrap();
    let done: Vec<i64> = post.applied.iter().map(|a| a.version).collect();
    assert_eq!(done, [4]);
    assert_eq!(columns(&mut client), ["display_name", "id"]);
    let names: Vec<String> = client
        .query("SELECT display_name FROM users ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(names, ["ada", "grace"]);
    let all = Migrator::new(NEW)
        .phase(Phase::PostDeploy)
        .check(&mut client)
        .unwrap();
    assert!(all.is_ready() && all.post_deploy_pending.is_empty());
}

#[test]
fn a_database_behind_is_reported_with_what_is_missing() {
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    // Nothing applied at all: everything pre-deploy is missing.
    let empty = Migrator::new(NEW).check(&mut client).unwrap();
    assert_eq!(versions(&empty.missing), [1, 2, 3]);
    Migrator::new(OLD).run(&mut client).unwrap();
    let behind = Migrator::new(NEW).check(&mut client).unwrap();
    assert!(!behind.is_ready());
    assert_eq!(versions(&behind.missing), [3]);
    // Asked about the post-deploy phase too, it needs 4 as well.
    let post = Migrator::new(NEW)
        .phase(Phase::PostDeploy)
        .check(&mut client)
        .unwrap();
    assert_eq!(versions(&post.missing), [3, 4]);
    // The check wrote nothing: no history rows and no action log rows beyond release 1's.
    assert_eq!(applied(&mut client), [1, 2]);
    let actions: i64 = client
        .query_one("SELECT count(*) FROM schema_migrations_history", &[])
        .unwrap()
        .get(0);
    assert_eq!(actions, 2);
}

#[test]
fn a_history_the_binary_cannot_trust_is_an_error_not_a_wait() {
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    Migrator::new(NEW).run(&mut client).unwrap();
    // An applied migration whose file changed since.
    client
        .batch_execute("UPDATE schema_migrations SET checksum = 'sha256:00' WHERE version = 2")
        .unwrap();
    assert!(matches!(
        Migrator::new(OLD).check(&mut client),
        Err(Error::ChecksumMismatch { version: 2, .. })
    ));
}

#[test]
fn an_unknown_version_below_the_binarys_newest_is_not_ahead() {
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    Migrator::new(NEW).run(&mut client).unwrap();
    // A binary that lacks migration 2 but has 3: 2 is not a newer release's, it is missing
    // from this binary.
    let without_two: Vec<Migration> = NEW.iter().filter(|m| m.version() != 2).cloned().collect();
    assert!(matches!(
        Migrator::new(&without_two).check(&mut client),
        Err(Error::MissingFromBinary(missing)) if missing == [(2, "index_nickname".to_owned())]
    ));
}

/// Writes `files` and reads them as a migration set, the way the `migrate` binary does.
fn read(files: &[(&str, &str)]) -> (tempfile::TempDir, Vec<Migration>) {
    let dir = directory(files);
    let loaded = migrate_runtime::source::read_dir(dir.path(), ".").unwrap();
    (dir, loaded.migrations)
}

#[test]
fn a_pre_deploy_migration_behind_a_pending_post_deploy_one_waits_for_it() {
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    let (_dir, set) = read(&[
        ("001_a.sql", "CREATE TABLE a (id int, old text);\n"),
        (
            "002_drop_old.sql",
            "-- migrate:phase post-deploy\nALTER TABLE a DROP COLUMN old;\n",
        ),
        ("003_b.sql", "CREATE TABLE b (id int);\n"),
    ]);
    let report = Migrator::new(&set).run(&mut client).unwrap();
    assert_eq!(report.applied.len(), 1);
    let readiness = Migrator::new(&set).check(&mut client).unwrap();
    assert_eq!(versions(&readiness.missing), [3]);
    assert_eq!(versions(&readiness.post_deploy_pending), [2]);
    let post = Migrator::new(&set)
        .phase(Phase::PostDeploy)
        .run(&mut client)
        .unwrap();
    let done: Vec<i64> = post.applied.iter().map(|a| a.version).collect();
    assert_eq!(done, [2, 3]);
    assert!(Migrator::new(&set).check(&mut client).unwrap().is_ready());
}

#[test]
fn out_of_order_ok_lets_one_late_migration_in() {
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    let (_dir, first) = read(&[
        ("001_a.sql", "CREATE TABLE a (id int);\n"),
        ("003_c.sql", "CREATE TABLE c (id int);\n"),
    ]);
    Migrator::new(&first).run(&mut client).unwrap();

    // A migration merged late from a branch, below the newest applied one: refused...
    let (_dir, late) = read(&[
        ("001_a.sql", "CREATE TABLE a (id int);\n"),
        ("002_b.sql", "CREATE TABLE b (id int);\n"),
        ("003_c.sql", "CREATE TABLE c (id int);\n"),
    ]);
    let refused = Migrator::new(&late).run(&mut client).unwrap_err();
    assert!(matches!(
        refused,
        Error::OutOfOrder {
            version: 2,
            highest_applied: 3,
            ..
        }
    ));
    let rendered = refused.render().to_string();
    assert!(rendered.contains("--> 002_b.sql"), "{rendered}");
    // The help names the directive the next step uses.
    assert!(
        rendered.contains("write `-- migrate:out-of-order ok` in its header"),
        "{rendered}"
    );
    assert_eq!(applied(&mut client), [1, 3]);
    let status = Migrator::new(&late).status(&mut client).unwrap();
    assert_eq!(status.entries[1].state, State::OutOfOrder);

    // ... unless that migration says it may land out of order.
    let (_dir, allowed) = read(&[
        ("001_a.sql", "CREATE TABLE a (id int);\n"),
        (
            "002_b.sql",
            "-- migrate:out-of-order ok\nCREATE TABLE b (id int);\n",
        ),
        ("003_c.sql", "CREATE TABLE c (id int);\n"),
    ]);
    assert!(allowed[1].allows_out_of_order());
    let status = Migrator::new(&allowed).status(&mut client).unwrap();
    assert_eq!(status.entries[1].state, State::Pending);
    let report = Migrator::new(&allowed).run(&mut client).unwrap();
    let done: Vec<i64> = report.applied.iter().map(|a| a.version).collect();
    assert_eq!(done, [2]);
    assert_eq!(applied(&mut client), [1, 2, 3]);
}
