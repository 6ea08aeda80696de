//! Data-safety snapshots against a real PostgreSQL: a policy enforced inside each migration's
//! transaction, and the data left as it was when a migration breaks it.

use migrate_runtime::testing::TestServer;
use migrate_runtime::{Error, Migration, Migrator, SafetyPolicy};
use migrate_tests::{migrations, scalar};
use postgres::Client;

/// Users with 100 rows and orders referencing them, as the state each check starts from.
fn base() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "001_users.sql",
            "CREATE TABLE users (id int PRIMARY KEY, active bool NOT NULL DEFAULT true);\n\
             INSERT INTO users SELECT g, g % 20 <> 0 FROM generate_series(1, 100) g;\n",
        ),
        (
            "002_orders.sql",
            "CREATE TABLE orders (id int PRIMARY KEY, user_id int NOT NULL REFERENCES users);\n\
             INSERT INTO orders SELECT g, g FROM generate_series(1, 10) g;\n",
        ),
    ]
}

/// The base set plus `third` as migration 3, applied under `policy`; base applied first.
fn run_third(third: &str, policy: SafetyPolicy) -> (Client, Result<usize, Error>, Vec<Migration>) {
    let mut files = base();
    files.push(("003_third.sql", third));
    let set = migrations(&files);
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    // The databases outlive the test harmlessly; the client keeps its own connection.
    std::mem::forget(database);
    Migrator::new(&set).target(2).run(&mut client).unwrap();
    let result = Migrator::new(&set)
        .safety(policy)
        .run(&mut client)
        .map(|report| report.applied.len());
    (client, result, set)
}

fn violation(result: Result<usize, Error>) -> (Vec<String>, String) {
    match result {
        Err(Error::PolicyViolation(violation)) => {
            let shown = Error::PolicyViolation(violation.clone())
                .render()
                .to_string();
            (violation.problems, shown)
        }
        other => panic!("expected a policy violation, got {other:?}"),
    }
}

#[test]
fn deleting_rows_is_refused_by_default_and_the_data_stays() {
    let (mut client, result, _) = run_third(
        "DELETE FROM users WHERE NOT active;\n",
        SafetyPolicy::default(),
    );
    let (problems, shown) = violation(result);
    assert_eq!(
        problems,
        ["table public.users: row count changed from 100 to 95 (allow_row_changes is off)"]
    );
    assert!(
        shown.starts_with("error: migration 3 (third) breaks the data-safety policy, so it was rolled back\n  --> ")
            && shown.contains("003_third.sql\n   = table public.users: row count changed from 100 to 95")
            && shown.ends_with("= help: nothing of it was kept; if this is intended, allow it in the policy for this run"),
        "{shown}"
    );
    assert_eq!(scalar(&mut client, "SELECT count(*) FROM users"), 100);
    assert_eq!(
        scalar(
            &mut client,
            "SELECT count(*) FROM schema_migrations WHERE version = 3"
        ),
        0
    );
    assert_eq!(
        scalar(
            &mut client,
            "SELECT count(*) FROM schema_migrations_history WHERE version = 3 AND status = 'failed' \
             AND error_message LIKE 'data-safety policy: table public.users: row count changed%'"
        ),
        1
    );
}

#[test]
fn the_same_migration_runs_when_the_policy_allows_row_changes() {
    let policy = SafetyPolicy {
        allow_row_changes: true,
        ..SafetyPolicy::default()
    };
    let (mut client, result, _) = run_third("DELETE FROM users WHERE NOT active;\n", policy);
    assert_eq!(result.unwrap(), 1);
    assert_eq!(scalar(&mut client, "SELECT count(*) FROM users"), 95);
}

#[test]
fn changes_made_without_naming_the_table_are_seen_too() {
    // A function deletes from `orders` though the migration's SQL never names it.
    let (mut client, result, _) = run_third(
        "CREATE FUNCTION purge() RETURNS void LANGUAGE sql AS $$ DELETE FROM orders WHERE id > 5 $$;\n\
         SELECT purge();\n",
        SafetyPolicy::default(),
    );
    let (problems, _) = violation(result);
    assert_eq!(
        problems,
        ["table public.orders: row count changed from 10 to 5 (allow_row_changes is off)"]
    );
    assert_eq!(scalar(&mut client, "SELECT count(*) FROM orders"), 10);
}

#[test]
fn truncate_and_drop_are_row_changes() {
    let (_, result, _) = run_third("TRUNCATE orders;\n", SafetyPolicy::default());
    let (problems, _) = violation(result);
    assert_eq!(
        problems,
        ["table public.orders: row count changed from 10 to 0 (allow_row_changes is off)"]
    );
    let (_, result, _) = run_third("DROP TABLE orders;\n", SafetyPolicy::default());
    let (problems, _) = violation(result);
    assert_eq!(
        problems,
        ["table public.orders: dropped with 10 rows (allow_row_changes is off)"]
    );
}

#[test]
fn new_tables_columns_and_constraints_follow_the_policy() {
    let sql = "CREATE TABLE tags (id int);\n\
               ALTER TABLE users ADD COLUMN nickname text;\n\
               ALTER TABLE users ADD CONSTRAINT id_positive CHECK (id > 0);\n";
    // The defaults allow new tables and columns, not constraint changes on existing tables.
    let (_, result, _) = run_third(sql, SafetyPolicy::default());
    let (problems, _) = violation(result);
    assert_eq!(
        problems,
        ["constraint public.users.id_positive: added (allow_constraint_modification is off)"]
    );
    let strict = SafetyPolicy {
        allow_table_creation: false,
        allow_column_addition: false,
        allow_constraint_modification: false,
        allow_row_changes: false,
    };
    let (_, result, _) = run_third(sql, strict);
    let (problems, _) = violation(result);
    assert_eq!(
        problems,
        [
            "column public.users.nickname: added to an existing table (allow_column_addition is off)",
            "table public.tags: created (allow_table_creation is off)",
            "constraint public.users.id_positive: added (allow_constraint_modification is off)",
        ]
    );
    let lenient = SafetyPolicy {
        allow_table_creation: true,
        allow_column_addition: true,
        allow_constraint_modification: true,
        allow_row_changes: false,
    };
    let (mut client, result, _) = run_third(sql, lenient);
    assert_eq!(result.unwrap(), 1);
    assert_eq!(
        scalar(&mut client, "SELECT count(*) FROM schema_migrations"),
        3
    );
}

#[test]
fn constraints_must_stay_valid_and_enforced_whatever_the_policy() {
    let lenient = SafetyPolicy {
        allow_table_creation: true,
        allow_column_addition: true,
        allow_constraint_modification: true,
        allow_row_changes: true,
    };
    let (_, result, _) = run_third("ALTER TABLE orders DISABLE TRIGGER ALL;\n", lenient);
    let (problems, _) = violation(result);
    assert_eq!(
        problems,
        ["table public.orders: foreign-key enforcement is disabled (its constraint triggers are off)"]
    );
    let (_, result, _) = run_third(
        "ALTER TABLE orders DROP CONSTRAINT orders_user_id_fkey;\n\
         ALTER TABLE orders ADD CONSTRAINT orders_user_id_fkey FOREIGN KEY (user_id) REFERENCES users NOT VALID;\n",
        lenient,
    );
    let (problems, _) = violation(result);
    assert_eq!(
        problems,
        ["constraint public.orders.orders_user_id_fkey: was valid, is now NOT VALID"]
    );
}

#[test]
fn safety_and_grouped_mode_do_not_mix() {
    let set = migrations(&base());
    let mut client = TestServer::shared().connect("postgres").unwrap();
    let error = Migrator::new(&set)
        .grouped(true)
        .safety(SafetyPolicy::default())
        .run(&mut client)
        .unwrap_err();
    assert!(matches!(error, Error::GroupedWithSafety), "{error}");
}
