//! Property tests for the migration-file parser, and a replay of the fuzz corpus through the
//! fuzz targets' own checks (so CI exercises the corpus without a fuzzer).

use std::fs;
use std::path::Path;

use migrate_runtime::source::diesel_version;
use migrate_runtime::source::fuzzing::{check_file, check_file_name, check_sql};
use migrate_runtime::source::lexer::{Lexer, TokenKind};
use migrate_runtime::source::statements::{classify, find_unterminated, split};
use proptest::prelude::*;

/// Pieces of SQL that the lexer and the splitter treat specially, so random concatenations
/// reach nested comments, dollar quotes, routine bodies and unterminated constructs far more
/// often than random characters do.
const SQL_PIECES: &[&str] = &[
    "SELECT 1",
    "CREATE TABLE t (x int)",
    ";",
    ";;",
    " ",
    "\n",
    "\t",
    "'",
    "''",
    "'a;b'",
    "E'",
    "E'\\''",
    "\\",
    "\"",
    "\"a;\"\"b\"",
    "U&'",
    "U&\"",
    "$$",
    "$f$",
    "$1",
    "$",
    "a$b",
    "--",
    "-- c\n",
    "/*",
    "*/",
    "/* ; */",
    "(",
    ")",
    "BEGIN",
    "ATOMIC",
    "END",
    "CASE",
    "CREATE",
    "OR",
    "REPLACE",
    "FUNCTION",
    "PROCEDURE",
    "COMMIT",
    "ROLLBACK",
    "TO",
    "AND CHAIN",
    "START TRANSACTION",
    "CONCURRENTLY",
    "INDEX",
    "VACUUM",
    "REINDEX",
    "DATABASE",
    "1.5e-3",
    ".",
    "..",
    "0x1F",
    "é",
    "\u{0}",
    "\r\n",
];

/// Lines that make a file's structure: markers, directives, and a BEGIN/COMMIT wrapper.
const FILE_PIECES: &[&str] = &[
    "-- migrate:up\n",
    "-- migrate:down\n",
    "-- migrate:up transaction:false\n",
    "-- migrate:down transaction:true\n",
    "-- UP\n",
    "--down\n",
    "-- migrate:no-transaction\n",
    "-- no-transaction\n",
    "-- migrate:requires 001, 2\n",
    "-- migrate:env production\n",
    "-- migrate:bogus\n",
    "BEGIN;\n",
    "COMMIT;\n",
    "\u{FEFF}",
    "\r\n",
];

fn sql_shaped() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        8 => prop::sample::select(SQL_PIECES).prop_map(str::to_owned),
        1 => ".{0,4}",
    ];
    prop::collection::vec(piece, 0..32).prop_map(|pieces| pieces.concat())
}

fn file_shaped() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => prop::sample::select(FILE_PIECES).prop_map(str::to_owned),
        4 => prop::sample::select(SQL_PIECES).prop_map(str::to_owned),
        1 => ".{0,4}",
    ];
    prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

fn name_shaped() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        prop::sample::select(
            &[
                "001",
                "9223372036854775808",
                "2019-03-11-123456",
                "_",
                "-",
                ".",
                "a",
                "Z",
                "é",
                ".sql",
                ".SQL",
                ".up",
                ".down",
                "rollback-",
                "README",
                ".",
            ][..]
        )
        .prop_map(str::to_owned),
        "[0-9]{1,20}",
        ".{0,3}",
    ];
    prop::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
}

/// Pieces of a statement in which a `;` (or a `(`, or `END`) must not end the statement:
/// quoted, commented, dollar-quoted or parenthesised.
const GUARDED_PIECES: &[&str] = &[
    "x",
    "1",
    "'a;b'",
    "'('",
    "')'",
    "E'\\';'",
    "\"q;\"",
    "U&\"(\"",
    "$$;$$",
    "$t$ ; $$ $t$",
    "/* ; ( */",
    "/* /* ; */ */",
    "-- ; (\n",
    "(1; 2)",
    "(')')",
    "CASE",
    "END",
    "BEGIN",
    "$1",
];

/// Statements that start with `SELECT` (so no routine body nests), made of guarded pieces.
fn guarded_statements() -> impl Strategy<Value = Vec<String>> {
    let statement = prop::collection::vec(prop::sample::select(GUARDED_PIECES), 0..8)
        .prop_map(|pieces| format!("SELECT {};", pieces.join(" ")));
    prop::collection::vec(statement, 1..6)
}

/// The statements and what lies between them give back the input, and what lies between them
/// is only whitespace, comments and the `;` of empty statements.
fn assert_rejoins(sql: &str) {
    let mut rebuilt = String::with_capacity(sql.len());
    let mut previous_end = 0;
    let mut separators = Vec::new();
    for statement in split(sql) {
        separators.push(&sql[previous_end..statement.start]);
        rebuilt.push_str(&sql[previous_end..statement.start]);
        rebuilt.push_str(statement.text);
        previous_end = statement.end();
    }
    separators.push(&sql[previous_end..]);
    rebuilt.push_str(&sql[previous_end..]);
    assert_eq!(rebuilt, sql);
    for separator in separators {
        for token in Lexer::new(separator) {
            assert!(
                token.is_trivia() || token.kind == TokenKind::Semicolon,
                "{:?} between statements of {sql:?}",
                token.text
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn statements_rejoin_to_arbitrary_strings(sql in any::<String>()) {
        assert_rejoins(&sql);
    }

    #[test]
    fn statements_rejoin_to_sql_shaped_strings(sql in sql_shaped()) {
        assert_rejoins(&sql);
        check_sql(sql.as_bytes());
    }

    #[test]
    fn semicolons_in_guarded_constructs_never_split(statements in guarded_statements()) {
        let sql = statements.join("\n");
        let found: Vec<&str> = split(&sql).map(|statement| statement.text).collect();
        prop_assert_eq!(found, statements.iter().map(String::as_str).collect::<Vec<_>>());
    }

    #[test]
    fn public_sql_entry_points_never_panic_on_bytes(bytes in any::<Vec<u8>>()) {
        let sql = String::from_utf8_lossy(&bytes);
        let rebuilt: String = Lexer::new(&sql).map(|token| token.text).collect();
        prop_assert_eq!(&rebuilt, &sql);
        for statement in split(&sql) {
            let _ = classify(statement.text);
        }
        let _ = classify(&sql);
        let _ = find_unterminated(&sql);
        let _ = diesel_version(&sql);
        check_sql(&bytes);
    }

    #[test]
    fn file_names_never_panic_on_bytes(bytes in any::<Vec<u8>>()) {
        check_file_name(&bytes);
    }

    #[test]
    fn name_shaped_strings_keep_the_file_name_invariants(name in name_shaped()) {
        check_file_name(name.as_bytes());
    }
}

proptest! {
    // Each input is parsed in every layout, so fewer cases keep the debug build under a few
    // seconds.
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn whole_files_never_panic_on_bytes(bytes in any::<Vec<u8>>()) {
        check_file(&bytes);
    }

    #[test]
    fn file_shaped_strings_keep_the_file_invariants(text in file_shaped()) {
        check_file(text.as_bytes());
    }
}

/// Every committed corpus input, through the check its fuzz target runs.
#[test]
fn fuzz_corpus_replays_cleanly() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let file_name: fn(&[u8]) = check_file_name;
    let migration_file: fn(&[u8]) = check_file;
    let sql: fn(&[u8]) = check_sql;
    let targets = [
        ("file_name", file_name),
        ("migration_file", migration_file),
        ("sql", sql),
    ];
    for (target, check) in targets {
        let entries = fs::read_dir(corpus.join(target))
            .unwrap_or_else(|error| panic!("the {target} corpus: {error}"));
        let mut replayed = 0;
        for entry in entries {
            let path = entry.expect("a corpus entry").path();
            let input = fs::read(&path).expect("a corpus file");
            let outcome = std::panic::catch_unwind(|| check(&input));
            assert!(
                outcome.is_ok(),
                "{} fails its target's checks",
                path.display()
            );
            replayed += 1;
        }
        // An emptied or misplaced corpus would make this test pass without checking anything.
        assert!(
            replayed >= 10,
            "only {replayed} inputs in the {target} corpus"
        );
    }
}
