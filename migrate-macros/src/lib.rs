//! `embed_migrations!`: reads a directory of PostgreSQL migration files when the crate
//! compiles, checks them, and embeds them in the executable as a
//! `&'static [migrate_runtime::Migration]` for
//! [`migrate_runtime::Migrator`](https://docs.rs/migrate-runtime) to apply. A bad file is a
//! compile error naming the file and line.
//!
//! ```toml
//! [dependencies]
//! migrate-macros = "0.1"
//! migrate-runtime = "0.1"
//! postgres = "0.19"
//!
//! [build-dependencies]
//! migrate-runtime = { version = "0.1", default-features = false }
//! ```
//!
//! The file format, the runtime and the guides are documented in
//! [`migrate-runtime`](https://docs.rs/migrate-runtime).
//!
//! | Feature | What it adds |
//! |---|---|
//! | `sql-syntax` | Every statement parsed by PostgreSQL's own parser (libpg_query, built from C; needs libclang) at compile time: a syntax error is a compile error at its file, line and column |
#![cfg_attr(docsrs, feature(doc_cfg))]

// The macro is three steps, one module each: `args` reads the macro's input, `load` reads and
// checks the directory with the parser shared with the runtime (`migrate_runtime::source`),
// `validate` applies the lint rules when asked, and `expand` writes the static array.
mod args;
mod expand;
mod load;
mod test_attribute;
mod validate;
mod watch;

use proc_macro::TokenStream;

/// Embeds every migration in a directory, checked at compile time.
///
/// ```no_run
/// # /* This crate has no migrations/ of its own, so the example compiles the repository's.
/// static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!();
/// static OTHERS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("db/migrations");
/// # */
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// for migration in MIGRATIONS {
///     println!("{} {}", migration.version(), migration.name());
/// }
/// ```
///
/// The path is relative to the invoking crate's root (`CARGO_MANIFEST_DIR`) and defaults to
/// `"migrations"`. The result is sorted by version. Any problem in the directory (a bad file
/// name, a duplicate version, an empty UP section, a statement that cannot run inside a
/// transaction, ...) is a compile error naming the file and line; every problem is reported
/// in the same build.
///
/// # Lint
///
/// `embed_migrations!("migrations", lint)` also makes every finding of the lint rules
/// (`migrate_runtime::source::lint`: risky DDL such as `CREATE INDEX` without
/// `CONCURRENTLY` on an existing table, or `DROP TABLE`) a compile error, unless the file's
/// header allows the rule with `-- migrate:allow <rule>`.
///
/// # When the crate is rebuilt
///
/// Each embedded file is tracked by the compiler, so editing, renaming or deleting a migration
/// rebuilds the crate. Adding a *new* file does not: a procedural macro cannot watch a
/// directory on stable Rust. A crate whose migrations grow over time should therefore call
/// `migrate_runtime::build::rerun_if_migrations_change("migrations")` from its `build.rs`.
/// Without it, the first build after adding a file (and nothing else) keeps the old set, until
/// any other change to the crate; so when the crate has no build script, or its build script
/// does not watch the directory, the macro makes rustc print a warning (a `deprecated` one,
/// the only kind a procedural macro can raise on stable Rust) at the macro call, naming the
/// line to add and the file to add it to. `#[allow(deprecated)]` on the item silences it.
#[proc_macro]
pub fn embed_migrations(input: TokenStream) -> TokenStream {
    let args = syn::parse_macro_input!(input as args::Args);
    match load::load(&args).and_then(|loaded| validate::validate(&args, loaded)) {
        Ok(loaded) => expand::expand(&loaded, unwatched_warning(&args)),
        Err(problems) => expand::errors(problems),
    }
    .into()
}

/// A test with its own database, migrated with the crate's embedded migrations: the function
/// takes one argument, `&mut postgres::Client`, `postgres::Client`,
/// `migrate_runtime::testing::TestDatabase` or `String` (the database's URL), and the
/// attribute makes it a `#[test]` that hands it a fresh clone of the migration set's template.
///
/// (Not compiled here: this crate has no migrations of its own; `tests/tests/test_databases.rs`
/// in the repository runs each form.)
///
/// ```ignore
/// #[migrate_macros::test]
/// fn orders_start_empty(client: &mut postgres::Client) {
///     let count: i64 = client.query_one("SELECT count(*) FROM orders", &[]).unwrap().get(0);
///     assert_eq!(count, 0);
/// }
///
/// // A set the crate already embeds (recommended: the set is embedded once, not per test).
/// static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!();
///
/// #[migrate_macros::test(migrations = crate::MIGRATIONS)]
/// #[tokio::test]
/// async fn from_async_code(url: String) {
///     let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
/// }
/// ```
///
/// `migrations = "dir"` embeds another directory (relative to the crate root, default
/// `"migrations"`); `migrations = path::TO_MIGRATIONS` uses a `&'static [Migration]`. An
/// `async fn` needs its runtime's test attribute (`#[tokio::test]`, any flavour) *below* this
/// one, and cannot take a blocking `postgres::Client`.
///
/// The databases come from `migrate_runtime::testing::migrated_database`: a template
/// per migration set that outlives the test process (on the server `MIGRATE_TEST_DATABASE_URL`
/// names, else a shared throwaway server the crate starts once per machine and user) and a warm
/// pool of its clones. A test that passes drops its database; one that panics or returns an
/// error keeps it and prints its URL (without password), unless `MIGRATE_TEST_KEEP_FAILED=0`.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = syn::parse_macro_input!(args as test_attribute::Args);
    let function = match syn::parse::<syn::ItemFn>(item) {
        Ok(function) => function,
        Err(error) => {
            return syn::Error::new(
                error.span(),
                "`#[migrate_macros::test]` goes on a test function: `fn name(client: &mut postgres::Client) { ... }`",
            )
            .into_compile_error()
            .into()
        }
    };
    test_attribute::expand(args, function)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// The compile-time warning when a file added to the directory would not rebuild the crate
/// (see [`watch`]), or nothing.
fn unwatched_warning(args: &args::Args) -> proc_macro2::TokenStream {
    let (Ok(root), Some(package)) = (load::root(args), std::env::var_os("CARGO_MANIFEST_DIR"))
    else {
        return proc_macro2::TokenStream::new();
    };
    match watch::check(&root, &args.dir, std::path::Path::new(&package)) {
        Some(unwatched) => watch::warning(&unwatched, &args.dir, args.span),
        None => proc_macro2::TokenStream::new(),
    }
}
