//! Release checks against a real PostgreSQL: the schema fingerprint, `verify` (UP, DOWN, the
//! schema as before, UP again) and `drift`.

use migrate_runtime::testing::TestServer;
use migrate_runtime::verify::Verdict;
use migrate_runtime::{Migration, Migrator};
use migrate_tests::migrations;
use postgres::error::SqlState;

static EXAMPLE: &[Migration] = migrate_macros::embed_migrations!("../migrations");

fn server() -> &'static TestServer {
    TestServer::shared()
}

/// What an application puts in its own tests.
#[test]
fn the_test_helper_passes_on_the_example_migrations() {
    migrate_runtime::verify::assert_reversible(EXAMPLE, true);
}

#[test]
#[should_panic(expected = "DOWN does not restore the schema")]
fn the_test_helper_fails_on_a_down_that_forgets_an_index() {
    migrate_runtime::verify::assert_reversible(&flawed_set(), false);
}

#[test]
fn verify_passes_on_the_example_migrations() {
    let report = Migrator::new(EXAMPLE).verify(server(), false).unwrap();
    assert!(report.passed(true), "{report}");
    // 011 is production-only and no environment was given.
    assert_eq!(report.migrations.len(), 10, "{report}");
}

/// 2 forgets its index on the way down, 3's DOWN fails, 4 has no DOWN, 5 is fine.
fn flawed_set() -> Vec<Migration> {
    migrations(&[
        (
            "001_t.sql",
            "-- migrate:up\nCREATE TABLE t (id int PRIMARY KEY, x int);\n-- migrate:down\nDROP TABLE t;\n",
        ),
        (
            "002_index_and_column.sql",
            "-- migrate:up\nCREATE INDEX t_x ON t (x);\nALTER TABLE t ADD COLUMN y int;\n\
             -- migrate:down\nALTER TABLE t DROP COLUMN y;\n",
        ),
        (
            "003_u.sql",
            "-- migrate:up\nCREATE TABLE u (id int);\n-- migrate:down\nDROP TABLE u_typo;\n",
        ),
        ("004_v.sql", "-- migrate:up\nCREATE TABLE v (id int);\n"),
        (
            "005_w.sql",
            "-- migrate:up\nCREATE TABLE w (id int);\n-- migrate:down\nDROP TABLE w;\n",
        ),
    ])
}

#[test]
fn verify_reports_each_flawed_down_and_goes_on() {
    let set = flawed_set();
    let report = Migrator::new(&set).verify(server(), false).unwrap();

    let verdicts: Vec<(i64, &Verdict)> = report
        .migrations
        .iter()
        .map(|m| (m.version, &m.verdict))
        .collect();
    assert!(matches!(verdicts[0], (1, Verdict::Reversible)), "{report}");
    let (2, Verdict::DownDoesNotRestore(diff)) = verdicts[1] else {
        panic!("{report}");
    };
    assert_eq!(
        diff.added,
        [(
            "index public.t_x".to_owned(),
            "CREATE INDEX t_x ON public.t USING btree (x)".to_owned()
        )],
        "{report}"
    );
    assert!(diff.removed.is_empty() && diff.changed.is_empty(), "{diff}");
    let (3, Verdict::DownFailed(error)) = verdicts[2] else {
        panic!("{report}");
    };
    assert_eq!(
        error.sqlstate().as_ref().map(SqlState::code),
        Some("42P01"),
        "{error}"
    );
    assert!(
        matches!(verdicts[3], (4, Verdict::Irreversible)),
        "{report}"
    );
    assert!(matches!(verdicts[4], (5, Verdict::Reversible)), "{report}");
    assert!(!report.passed(false));

    let shown = report.to_string();
    assert!(
        shown.contains("DOWN does not restore the schema")
            && shown.contains("  + index public.t_x: CREATE INDEX t_x ON public.t USING btree (x)")
            && shown.contains("DOWN failed")
            && shown.contains("irreversible: no DOWN section to check")
            && shown.ends_with("5 checked: 2 failed, 1 irreversible"),
        "{shown}"
    );
}

#[test]
fn verify_can_stop_at_the_first_problem() {
    let set = flawed_set();
    let report = Migrator::new(&set).verify(server(), true).unwrap();
    let versions: Vec<i64> = report.migrations.iter().map(|m| m.version).collect();
    assert_eq!(versions, [1, 2], "{report}");
}

#[test]
fn verify_stops_when_an_up_fails() {
    let set = migrations(&[
        (
            "001_t.sql",
            "-- migrate:up\nCREATE TABLE t (id int);\n-- migrate:down\nDROP TABLE t;\n",
        ),
        (
            "002_bad.sql",
            "-- migrate:up\nALTER TABLE missing ADD COLUMN x int;\n",
        ),
        ("003_u.sql", "-- migrate:up\nCREATE TABLE u (id int);\n"),
    ]);
    let report = Migrator::new(&set).verify(server(), false).unwrap();
    assert_eq!(report.migrations.len(), 2, "{report}");
    assert!(
        matches!(&report.migrations[1].verdict, Verdict::UpFailed(e) if e.sqlstate() == Some(SqlState::UNDEFINED_TABLE)),
        "{report}"
    );
}

#[test]
fn drift_finds_a_column_added_by_hand() {
    let database = server().create_database().unwrap();
    let mut client = database.client().unwrap();
    let migrator = Migrator::new(EXAMPLE).target(5);
    migrator.run(&mut client).unwrap();

    let drift = migrator.drift(&mut client, server()).unwrap();
    assert!(drift.diff.is_empty(), "{drift}");
    assert_eq!(drift.applied, [1, 2, 3, 4, 5]);

    client
        .batch_execute(
            "ALTER TABLE users ADD COLUMN nickname text; DROP INDEX users_email_lower_key",
        )
        .unwrap();
    let drift = migrator.drift(&mut client, server()).unwrap();
    assert_eq!(
        drift.diff.added,
        [("column public.users.nickname".to_owned(), "text".to_owned())],
        "{drift}"
    );
    assert_eq!(
        drift
            .diff
            .removed
            .iter()
            .map(|(o, _)| o.as_str())
            .collect::<Vec<_>>(),
        ["index public.users_email_lower_key"],
        "{drift}"
    );
    let shown = drift.to_string();
    assert!(
        shown.starts_with(
            "drift: the database differs from the schema its 5 applied migration(s) produce"
        ) && shown.contains("  + column public.users.nickname: text"),
        "{shown}"
    );
}

#[test]
fn the_fingerprint_sees_every_kind_of_object_and_ignores_the_history() {
    let database = server().create_database().unwrap();
    let mut client = database.client().unwrap();
    let migrator = Migrator::new(EXAMPLE);
    let empty = migrator.schema_snapshot(&mut client).unwrap();
    migrator.clone().target(1).run(&mut client).unwrap();
    // Only what migration 1 made: the history tables are left out.
    let after_one = migrator.schema_snapshot(&mut client).unwrap();
    assert!(
        empty
            .diff(&after_one)
            .added
            .iter()
            .all(|(object, _)| !object.contains("schema_migrations")),
        "{}",
        empty.diff(&after_one)
    );

    client
        .batch_execute(
            "CREATE SCHEMA extra;
             CREATE TYPE extra.mood AS ENUM ('sad', 'ok', 'happy');
             CREATE DOMAIN extra.positive AS int CHECK (VALUE > 0);
             CREATE TYPE extra.pair AS (a int, b text);
             CREATE TYPE extra.span AS RANGE (subtype = float8);
             CREATE SEQUENCE extra.counter START 7 INCREMENT 3;
             CREATE TABLE extra.item (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                                      mood extra.mood NOT NULL DEFAULT 'ok',
                                      qty extra.positive, note text COLLATE \"C\");
             ALTER TABLE extra.item ADD CONSTRAINT qty_small CHECK (qty < 100) NOT VALID;
             CREATE INDEX item_mood ON extra.item (mood) WHERE qty > 1;
             CREATE VIEW extra.happy AS SELECT id FROM extra.item WHERE mood = 'happy';
             CREATE MATERIALIZED VIEW extra.counts AS SELECT mood, count(*) FROM extra.item GROUP BY mood;
             CREATE FUNCTION extra.touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
             CREATE PROCEDURE extra.noop() LANGUAGE sql AS $$SELECT 1$$;
             CREATE TRIGGER item_touch BEFORE UPDATE ON extra.item FOR EACH ROW EXECUTE FUNCTION extra.touch();
             COMMENT ON TABLE extra.item IS 'things';
             COMMENT ON COLUMN extra.item.note IS 'free text';
             CREATE EXTENSION IF NOT EXISTS pgcrypto;",
        )
        .unwrap();
    let snapshot = migrator.schema_snapshot(&mut client).unwrap();
    let objects: std::collections::BTreeMap<&str, &str> = snapshot.objects().collect();
    let expect = [
        ("schema extra", ""),
        ("enum extra.mood", "'sad', 'ok', 'happy'"),
        ("domain extra.positive", "integer CHECK ((VALUE > 0))"),
        ("type extra.pair", "a integer, b text"),
        ("range extra.span", "double precision"),
        (
            "sequence extra.counter",
            "bigint start 7 increment 3 min 1 max 9223372036854775807 cache 1",
        ),
        (
            "column extra.item.id",
            "integer not null generated always as identity",
        ),
        (
            "column extra.item.mood",
            "extra.mood not null default 'ok'::extra.mood",
        ),
        ("column extra.item.note", "text collate \"C\""),
        (
            "constraint extra.item.qty_small",
            "CHECK (((qty)::integer < 100)) NOT VALID",
        ),
        (
            "index extra.item_mood",
            "CREATE INDEX item_mood ON extra.item USING btree (mood) WHERE ((qty)::integer > 1)",
        ),
        ("comment on table extra.item", "things"),
        ("comment on table column extra.item.note", "free text"),
        ("extension pgcrypto", "in schema public"),
    ];
    let wrong: Vec<_> = expect
        .iter()
        .filter(|(object, definition)| objects.get(object) != Some(definition))
        .map(|(object, _)| (object, objects.get(object)))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
    for object in [
        "view extra.happy",
        "materialized view extra.counts",
        "function extra.touch()",
        "procedure extra.noop()",
        "trigger extra.item.item_touch",
        "constraint extra.item.item_pkey",
    ] {
        assert!(objects.contains_key(object), "{object} missing");
    }
    // An extension's own functions belong to it, not to the schema.
    assert!(
        !objects
            .keys()
            .any(|o| o.starts_with("function public.crypt(")),
        "extension members listed"
    );
}
