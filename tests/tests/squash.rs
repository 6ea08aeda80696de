//! Squash: one file built by replaying a history on a throwaway server stands for its
//! migrations. Proved equal to the chain (schema snapshots and carried rows) on three
//! histories, and taken by the runtime as the issue asks: a database that applied the chain
//! records it and runs nothing, a fresh one runs it, one part-way below is refused.

use std::path::Path;

use migrate_runtime::testing::TestServer;
use migrate_runtime::{Error, Migration, Migrator, Phase, Squash};
use migrate_test_support::files::directory;

/// This repository's own migrations.
static REPOSITORY: &[Migration] = migrate_macros::embed_migrations!("../migrations");
/// Seed rows, an enum whose order was changed, a comment, a no-transaction index, a function
/// and a view; 004 comes after the squash.
static INDEXED: &[Migration] = migrate_macros::embed_migrations!("fixtures/valid/squash_index");
/// The deploy-phases release: 4 is post-deploy.
static PHASES: &[Migration] = migrate_macros::embed_migrations!("fixtures/valid/phases/new");

/// The squash of `chain` through `through`, in a directory beside the chain's later files,
/// read back as the set a binary built after the squash embeds.
fn squashed(chain: &[Migration], through: i64) -> (Squash, tempfile::TempDir, Vec<Migration>) {
    let squash = Migrator::new(chain)
        .squash(TestServer::shared(), through)
        .unwrap();
    let mut files = vec![(squash.file_name.clone(), squash.text.clone())];
    for later in chain.iter().filter(|m| m.version() > through) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(later.path());
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        files.push((name, std::fs::read_to_string(&path).unwrap()));
    }
    let dir = directory(&files);
    let set = migrate_runtime::source::read_dir(dir.path(), ".")
        .unwrap_or_else(|problems| panic!("{problems}\n{}", squash.text))
        .migrations;
    (squash, dir, set)
}

fn everything(migrations: &[Migration]) -> Migrator<'_> {
    Migrator::new(migrations).phase(Phase::PostDeploy)
}

/// Every row of each carried table, as text, in order.
fn rows(client: &mut postgres::Client, squash: &Squash) -> Vec<String> {
    let mut all = Vec::new();
    for (table, _) in &squash.carried_rows {
        for message in client
            .simple_query(&format!("SELECT t::text FROM {table} t ORDER BY 1"))
            .unwrap()
        {
            if let postgres::SimpleQueryMessage::Row(row) = message {
                all.push(format!("{table}: {}", row.get(0).unwrap_or_default()));
            }
        }
    }
    all
}

/// The chain and the squash, each applied to a database of its own through `through`, give
/// the same schema snapshot and the same rows.
fn prove_equal(chain: &[Migration], through: i64) -> Squash {
    let (squash, _dir, set) = squashed(chain, through);
    let server = TestServer::shared();
    let (by_chain, by_squash) = (
        server.create_database().unwrap(),
        server.create_database().unwrap(),
    );
    let (mut chain_client, mut squash_client) =
        (by_chain.client().unwrap(), by_squash.client().unwrap());
    everything(chain)
        .target(through)
        .run(&mut chain_client)
        .unwrap();
    let report = everything(&set)
        .target(through)
        .run(&mut squash_client)
        .unwrap();
    assert_eq!(report.applied.len(), 1, "the squash alone runs");
    let expected = everything(chain)
        .schema_snapshot(&mut chain_client)
        .unwrap();
    let actual = everything(&set)
        .schema_snapshot(&mut squash_client)
        .unwrap();
    let diff = expected.diff(&actual);
    assert!(diff.is_empty(), "chain vs squash:\n{diff}");
    assert!(expected.objects().count() > 0);
    assert_eq!(
        rows(&mut chain_client, &squash),
        rows(&mut squash_client, &squash)
    );
    squash
}

#[test]
fn this_repositorys_migrations_squash_to_the_same_schema() {
    // 011 applies in some environments only: the squash stops below it (it refuses to
    // replace it, see `a_migration_of_some_environments_is_not_squashed`).
    let squash = prove_equal(REPOSITORY, 10);
    assert_eq!(squash.replaced, (1..=10).collect::<Vec<i64>>());
    assert!(squash.text.contains("-- migrate:replaces 001 sha256:"));
}

#[test]
fn a_history_with_a_no_transaction_index_seed_rows_and_an_enum_squashes_to_the_same() {
    let squash = prove_equal(INDEXED, 3);
    // The seed rows are carried, and said so in the file.
    assert_eq!(
        squash.carried_rows,
        [
            ("public.customers".to_owned(), 2),
            ("public.orders".to_owned(), 2)
        ]
    );
    assert!(squash
        .text
        .contains("-- carried: 2 row(s) of public.orders"));
    // The index that ran outside a transaction is a plain one in the squash, which runs in
    // one transaction.
    assert!(squash
        .text
        .contains("CREATE INDEX orders_customer ON public.orders"));
    assert!(
        squash
            .text
            .contains("'new',\n    'paid',\n    'cancelled',\n    'shipped'"),
        "{}",
        squash.text
    );
    assert!(squash.text.contains("COMMENT ON TABLE public.orders IS"));
    assert!(squash.not_carried.is_empty());
}

#[test]
fn the_deploy_phases_release_squashes_to_the_same_schema() {
    let squash = prove_equal(PHASES, 3);
    assert_eq!(squash.file_name, "003_squashed.sql");
}

#[test]
fn a_database_that_applied_the_chain_records_the_squash_and_runs_nothing() {
    let (squash, _dir, set) = squashed(INDEXED, 3);
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    Migrator::new(INDEXED).target(3).run(&mut client).unwrap();
    let before = Migrator::new(INDEXED).schema_snapshot(&mut client).unwrap();
    let statements_before: i64 = client
        .query_one("SELECT count(*) FROM schema_migrations_history", &[])
        .unwrap()
        .get(0);

    // A binary built after the squash lacks only 004 (the squash counts as there), and its
    // `up` applies only 004.
    let readiness = Migrator::new(&set).check(&mut client).unwrap();
    let missing: Vec<i64> = readiness.missing.iter().map(|m| m.version()).collect();
    assert_eq!(missing, [4]);
    let status = Migrator::new(&set).status(&mut client).unwrap();
    let states: Vec<(i64, migrate_runtime::State)> = status
        .entries
        .iter()
        .map(|e| (e.version, e.state))
        .collect();
    assert_eq!(
        states,
        [
            (3, migrate_runtime::State::Applied),
            (4, migrate_runtime::State::Pending)
        ]
    );
    let report = Migrator::new(&set).run(&mut client).unwrap();
    let done: Vec<i64> = report.applied.iter().map(|a| a.version).collect();
    assert_eq!(done, [4], "nothing of the squash ran");
    let history: Vec<(i64, String)> = client
        .query(
            "SELECT version, name FROM schema_migrations ORDER BY version",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        history,
        [(3, "squashed".to_owned()), (4, "add_shipped_at".to_owned())]
    );
    let note: String = client
        .query_one(
            "SELECT note FROM schema_migrations_history WHERE id > $1 AND version = 3",
            &[&statements_before],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        note,
        "squash recorded in place of 1, 2, 3, which were applied one by one; no SQL ran"
    );
    // The schema is the chain's plus 004's column, nothing of the squash's SQL ran twice.
    let after = Migrator::new(&set).schema_snapshot(&mut client).unwrap();
    let diff = before.diff(&after);
    assert_eq!(
        diff.to_string().trim(),
        "+ column public.orders.shipped_at: timestamp with time zone"
    );
    let orders: i64 = client
        .query_one("SELECT count(*) FROM orders", &[])
        .unwrap()
        .get(0);
    assert_eq!(orders, 2, "the seed rows were not inserted again");
    // And again: nothing to do.
    assert!(Migrator::new(&set)
        .run(&mut client)
        .unwrap()
        .applied
        .is_empty());
    assert_eq!(squash.version, 3);
}

#[test]
fn a_fresh_database_runs_the_squash_then_later_migrations() {
    let (_squash, _dir, set) = squashed(INDEXED, 3);
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    let report = Migrator::new(&set).run(&mut client).unwrap();
    let done: Vec<(i64, String)> = report
        .applied
        .iter()
        .map(|a| (a.version, a.name.clone()))
        .collect();
    assert_eq!(
        done,
        [(3, "squashed".to_owned()), (4, "add_shipped_at".to_owned())]
    );
    let state: String = client
        .query_one("SELECT state::text FROM orders WHERE customer_id = 2", &[])
        .unwrap()
        .get(0);
    assert_eq!(state, "cancelled");
}

#[test]
fn a_database_part_way_below_the_squash_is_refused_and_left_alone() {
    let (_squash, _dir, set) = squashed(INDEXED, 3);
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    Migrator::new(INDEXED).target(2).run(&mut client).unwrap();
    let error = Migrator::new(&set).run(&mut client).unwrap_err();
    let Error::PartlySquashed(gap) = &error else {
        panic!("{error:?}")
    };
    assert_eq!((gap.first, gap.last), (1, 3));
    assert_eq!(gap.applied, [1, 2]);
    assert_eq!(gap.missing, [3]);
    let rendered = error.render().to_string();
    assert!(
        rendered.contains("error: squash 3 (squashed) replaces migrations 1..=3, and the database applied only some of them: nothing was applied"),
        "{rendered}"
    );
    assert!(rendered.contains("= note: not applied: 3"), "{rendered}");
    assert!(rendered.contains("its `migrate up --to 3`"), "{rendered}");
    assert!(Migrator::new(&set).check(&mut client).is_err());
    let versions: Vec<i64> = Migrator::new(INDEXED)
        .applied(&mut client)
        .unwrap()
        .iter()
        .map(|row| row.version)
        .collect();
    assert_eq!(versions, [1, 2], "the history is as it was");

    // What the help says: reach 3 with the release that has the chain; then the squash is
    // recorded and 4 applies.
    Migrator::new(INDEXED).target(3).run(&mut client).unwrap();
    let report = Migrator::new(&set).run(&mut client).unwrap();
    let done: Vec<i64> = report.applied.iter().map(|a| a.version).collect();
    assert_eq!(done, [4]);
}

#[test]
fn a_migration_of_some_environments_is_not_squashed() {
    let error = Migrator::new(REPOSITORY)
        .squash(TestServer::shared(), 11)
        .unwrap_err();
    let rendered = error.render().to_string();
    assert!(
        rendered.contains("error: cannot squash through 11: `../migrations/011_create_lancio_org.sql` applies only in some environments (`-- migrate:env`), so no one squash stands for it in every database; squash through a version below 11; nothing was written"),
        "{rendered}"
    );
}

#[test]
fn a_squash_beside_a_file_it_replaces_is_refused_until_the_file_is_deleted() {
    let checksum = format!("sha256:{}", "a".repeat(64));
    let dir = directory(&[
        ("001_a.sql", "CREATE TABLE a (id int);\n".to_owned()),
        (
            "002_squashed.sql",
            format!("-- migrate:replaces 001 {checksum}\n-- migrate:replaces 002 {checksum}\nCREATE TABLE a (id int);\n"),
        ),
    ]);
    let problems = migrate_runtime::source::read_dir(dir.path(), ".")
        .unwrap_err()
        .to_string();
    assert!(
        problems.contains(
            "002_squashed.sql:1: replaces version 1, whose file `001_a.sql` is still here"
        ),
        "{problems}"
    );
    assert!(problems.contains("help: delete `001_a.sql`"), "{problems}");
    // What the help says.
    std::fs::remove_file(dir.path().join("001_a.sql")).unwrap();
    let loaded = migrate_runtime::source::read_dir(dir.path(), ".").unwrap();
    let replaces: Vec<i64> = loaded.migrations[0].replaces().map(|(v, _)| v).collect();
    assert_eq!(replaces, [1, 2]);
}

#[test]
fn a_squash_rolls_back_with_the_replaced_downs_newest_first() {
    // This repository's 1..=9 all have a DOWN that runs in a transaction.
    let (squash, _dir, set) = squashed(REPOSITORY, 9);
    assert!(
        squash.text.contains("-- migrate:down\n-- from "),
        "{}",
        squash.text
    );
    let server = TestServer::shared();
    let (rolled, empty) = (
        server.create_database().unwrap(),
        server.create_database().unwrap(),
    );
    let mut client = rolled.client().unwrap();
    let migrator = everything(&set).target(9);
    let nothing = migrator
        .schema_snapshot(&mut empty.client().unwrap())
        .unwrap();
    migrator.run(&mut client).unwrap();
    let report = migrator.down_to(&mut client, 0).unwrap();
    let reverted: Vec<i64> = report.reverted.iter().map(|r| r.version).collect();
    assert_eq!(reverted, [9], "the squash is one migration to roll back");
    let after = migrator.schema_snapshot(&mut client).unwrap();
    let diff = nothing.diff(&after);
    assert!(diff.is_empty(), "what the rollback left:\n{diff}");
    // And up again: the squash applies cleanly where its DOWN ran.
    assert_eq!(migrator.run(&mut client).unwrap().applied.len(), 1);

    // A replaced DOWN that must run outside a transaction: the squash says why it has none.
    let (squash, _dir, _set) = squashed(REPOSITORY, 10);
    assert!(!squash.text.contains("-- migrate:down"), "{}", squash.text);
    assert!(
        squash.text.contains("-- no DOWN: `")
            && squash.text.contains("rolls back outside a transaction"),
        "{}",
        squash.text
    );
}
