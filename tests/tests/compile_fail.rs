//! Every malformed migrations directory is a compile error that names the file and line and
//! says how to fix it. The expected messages are the `.stderr` files beside each case in `ui/`.

#[test]
fn malformed_migrations_are_compile_errors() {
    // trybuild compiles each case in its own crate under `target/`; point the macro back at
    // this crate so `fixtures/...` resolves and the messages show stable relative paths.
    std::env::set_var("MIGRATE_MACROS_MANIFEST_DIR", env!("CARGO_MANIFEST_DIR"));
    trybuild::TestCases::new().compile_fail("ui/*.rs");
}

/// With the macro's `sql-syntax` feature, a statement PostgreSQL's parser rejects is a compile
/// error at its file, line and column.
#[cfg(feature = "sql-syntax")]
#[test]
fn sql_syntax_errors_are_compile_errors() {
    std::env::set_var("MIGRATE_MACROS_MANIFEST_DIR", env!("CARGO_MANIFEST_DIR"));
    trybuild::TestCases::new().compile_fail("ui-sql-syntax/*.rs");
}
