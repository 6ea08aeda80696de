//! What the binary's tests share: the real `migrate` binary with a clean environment; for the
//! fault tests, the 200-migration set and the invariants checked against the catalog after
//! every fault. What `migrate-tests` needs too (what a run showed, project directories,
//! password servers) is in the `migrate-test-support` crate.
#![allow(dead_code)] // Each test binary uses its own part of this module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use migrate_test_support::process::{text, without_settings};
use postgres::{Client, SimpleQueryMessage};

/// Migrations in the fault set; every tenth runs outside a transaction.
pub(crate) const COUNT: i64 = 200;

/// Rows each transactional migration inserts.
const ROWS: i64 = 100;

pub(crate) fn is_no_transaction(version: i64) -> bool {
    version % 10 == 0
}

/// Writes the fault set into `dir`. A transactional migration creates `t{v}` with an index and
/// rows; a no-transaction one builds two indexes concurrently on the table before it, with a
/// pause between them so that a kill often lands inside it. Its statements are idempotent
/// (`IF NOT EXISTS`), as the operations guide advises for no-transaction migrations, so "undo by hand"
/// is only dropping an index left invalid.
pub(crate) fn write_fault_set(dir: &Path) {
    for version in 1..=COUNT {
        let (name, sql) = if is_no_transaction(version) {
            let table = version - 1;
            (
                format!("{version:03}_index_t{table}.sql"),
                format!(
                    "-- migrate:no-transaction\n\
                     CREATE INDEX CONCURRENTLY IF NOT EXISTS c{version}_a ON t{table} (a);\n\
                     SELECT pg_sleep(0.01);\n\
                     CREATE INDEX CONCURRENTLY IF NOT EXISTS c{version}_b ON t{table} (b);\n"
                ),
            )
        } else {
            (
                format!("{version:03}_create_t{version}.sql"),
                format!(
                    "CREATE TABLE t{version} (id serial PRIMARY KEY, a int NOT NULL, b text);\n\
                     CREATE INDEX t{version}_a ON t{version} (a);\n\
                     INSERT INTO t{version} (a, b) SELECT g, md5(g::text) FROM generate_series(1, {ROWS}) g;\n"
                ),
            )
        };
        std::fs::write(dir.join(name), sql).unwrap();
    }
}

/// The real binary on `dir`, connecting to `url`, with none of the caller's configuration
/// variables.
pub(crate) fn migrate(dir: &Path, url: &str) -> Command {
    let mut command = unconfigured(dir);
    command.env("DATABASE_URL", url);
    command
}

/// The real binary on `dir`, with no database configured and none of the caller's
/// configuration variables.
pub(crate) fn unconfigured(dir: &Path) -> Command {
    let mut command = binary();
    command.env("NO_COLOR", "1").arg("--dir").arg(dir);
    command
}

/// The real binary with none of the variables it reads from the caller's environment (so a
/// developer's `PGHOST` or `DATABASE_URL` cannot leak into a test), colour left to the binary.
pub(crate) fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_migrate"));
    without_settings(&mut command).env_remove("NO_COLOR");
    command
}

/// Rows of a simple query, every column as text (NULL as "").
pub(crate) fn rows(client: &mut Client, sql: &str) -> Vec<Vec<String>> {
    client
        .simple_query(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or_default().to_owned())
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// Waits until no other session is connected to this database: a killed client's backend
/// may still be finishing the message it was sent.
pub(crate) fn wait_for_other_sessions(client: &mut Client) {
    let started = Instant::now();
    loop {
        let others = rows(
            client,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
        );
        if others[0][0] == "0" {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "sessions still connected a minute after the kill"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the history and the catalog say after a fault.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    /// Versions recorded as applied.
    pub(crate) applied: Vec<i64>,
    /// The no-transaction migration left `running` or `failed`, if any.
    pub(crate) unfinished: Option<(i64, String)>,
}

/// Checks the invariants of the fault set against the catalog and panics, naming the
/// version, when one is broken:
/// - the recorded versions are 1..=k in order, all `applied` but possibly the last, which
///   may only be a no-transaction migration left `running`/`failed`;
/// - every applied migration has all its objects (and each transactional one all its rows);
/// - no migration without a record has any of its objects;
/// - every applied migration has exactly one successful `apply` in the action log.
pub(crate) fn check_invariants(client: &mut Client) -> Observed {
    let mut observed = Observed::default();
    let history_exists = rows(
        client,
        "SELECT to_regclass('public.schema_migrations') IS NOT NULL",
    )[0][0]
        == "t";
    let recorded: BTreeMap<i64, String> = if history_exists {
        rows(
            client,
            "SELECT version, status FROM schema_migrations ORDER BY version",
        )
        .into_iter()
        .map(|row| (row[0].parse().unwrap(), row[1].clone()))
        .collect()
    } else {
        BTreeMap::new()
    };
    let versions: Vec<i64> = recorded.keys().copied().collect();
    let expected: Vec<i64> = (1..=versions.len() as i64).collect();
    assert_eq!(
        versions, expected,
        "recorded versions are not a prefix of the set"
    );
    for (&version, status) in &recorded {
        if status == "applied" {
            observed.applied.push(version);
            continue;
        }
        assert!(
            is_no_transaction(version) && version == *versions.last().unwrap(),
            "migration {version} is `{status}`: only the last, no-transaction one may be unfinished"
        );
        assert!(
            status == "running" || status == "failed",
            "status `{status}`"
        );
        observed.unfinished = Some((version, status.clone()));
    }

    let relations: BTreeMap<String, bool> = rows(
        client,
        "SELECT c.relname, coalesce(i.indisvalid, true) FROM pg_class c \
         LEFT JOIN pg_index i ON i.indexrelid = c.oid \
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'i')",
    )
    .into_iter()
    .map(|row| (row[0].clone(), row[1] == "t"))
    .collect();
    let valid = |name: &str| relations.get(name).copied();
    let mut counted = Vec::new();
    for version in 1..=COUNT {
        let status = recorded.get(&version).map(String::as_str);
        let objects = if is_no_transaction(version) {
            vec![format!("c{version}_a"), format!("c{version}_b")]
        } else {
            vec![format!("t{version}"), format!("t{version}_a")]
        };
        match status {
            Some("applied") => {
                for object in &objects {
                    assert_eq!(
                        valid(object),
                        Some(true),
                        "migration {version} is recorded as applied but {object} is missing or invalid"
                    );
                }
                if !is_no_transaction(version) {
                    counted.push(version);
                }
            }
            None => {
                for object in &objects {
                    assert_eq!(
                        valid(object),
                        None,
                        "migration {version} has no record but {object} exists"
                    );
                }
            }
            // Unfinished: some of its statements may have run; recovery deals with them.
            Some(_) => {}
        }
    }
    if !counted.is_empty() {
        let sql = counted
            .iter()
            .map(|v| format!("SELECT {v}, count(*) FROM t{v}"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        for row in rows(client, &sql) {
            assert_eq!(row[1], ROWS.to_string(), "rows of migration {}", row[0]);
        }
    }
    if history_exists {
        let successes = rows(
            client,
            "SELECT version FROM schema_migrations_history WHERE action = 'apply' AND status = 'success' ORDER BY version",
        );
        let successes: Vec<i64> = successes
            .iter()
            .map(|row| row[0].parse().unwrap())
            .collect();
        assert_eq!(
            successes, observed.applied,
            "the action log's successful applies differ from the applied migrations"
        );
    }
    observed
}

/// The documented recovery of an interrupted no-transaction migration whose statements are
/// idempotent: drop what it left invalid, record it as rolled back, run again.
pub(crate) fn recover(client: &mut Client, dir: &Path, url: &str, version: i64) {
    for row in rows(
        client,
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         WHERE NOT i.indisvalid AND c.relnamespace = 'public'::regnamespace",
    ) {
        client
            .batch_execute(&format!("DROP INDEX \"{}\"", row[0]))
            .unwrap();
    }
    let output = migrate(dir, url)
        .args(["repair", &version.to_string(), "--mark", "rolled-back"])
        .args(["--reason", "interrupted; invalid index dropped"])
        .output()
        .unwrap();
    assert!(output.status.success(), "repair failed:\n{}", text(&output));
}

/// The refusal a run gives while a no-transaction migration is unfinished.
pub(crate) fn assert_refuses_unfinished(output: &Output, version: i64) {
    let shown = text(output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains(&format!("error: migration {version} (")),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("migrate repair {version} --mark rolled-back")),
        "{shown}"
    );
}

/// Tables, columns, indexes (with validity) and row counts of the `public` schema, sorted:
/// equal for two databases with the same schema and data.
pub(crate) fn schema_fingerprint(client: &mut Client) -> BTreeSet<String> {
    let mut items: BTreeSet<String> = rows(
        client,
        "SELECT format('column %s.%s %s %s %s', table_name, column_name, data_type, is_nullable, \
                coalesce(regexp_replace(column_default, 'nextval\\(.*\\)', 'nextval'), '')) \
         FROM information_schema.columns WHERE table_schema = 'public' \
         UNION ALL \
         SELECT format('index %s %s', indexdef, i.indisvalid) FROM pg_indexes x \
         JOIN pg_class c ON c.relname = x.indexname AND c.relnamespace = 'public'::regnamespace \
         JOIN pg_index i ON i.indexrelid = c.oid WHERE x.schemaname = 'public'",
    )
    .into_iter()
    .map(|row| row[0].clone())
    .collect();
    let tables = rows(
        client,
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' \
         AND relname NOT LIKE 'schema_migrations%'",
    );
    if !tables.is_empty() {
        let sql = tables
            .iter()
            .map(|t| format!("SELECT '{0}', count(*) FROM \"{0}\"", t[0]))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        items.extend(
            rows(client, &sql)
                .into_iter()
                .map(|row| format!("rows {} {}", row[0], row[1])),
        );
    }
    items.extend(
        rows(
            client,
            "SELECT version, status FROM schema_migrations ORDER BY version",
        )
        .into_iter()
        .map(|row| format!("history {} {}", row[0], row[1])),
    );
    items
}
