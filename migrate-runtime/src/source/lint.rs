//! Lint rules for risky DDL in UP sections: each with an id, a one-line why, and a way to
//! allow it per migration (`-- migrate:allow <rule>`), except `drop-database`.

use std::collections::BTreeSet;

use super::columns::{self, Columns};
use super::lexer::{Lexer, Token, TokenKind};
use super::position::Cursor;
use super::statements;
use crate::Migration;

/// A lint rule.
///
/// ```
/// use migrate_runtime::source::lint::{rule, RULES};
///
/// let index = rule("index-without-concurrently").unwrap();
/// assert!(index.instead.contains("CREATE INDEX CONCURRENTLY"));
/// for rule in RULES {
///     println!("{}: {}", rule.id, rule.why);
/// }
/// ```
#[derive(Debug, PartialEq, Eq)]
pub struct Rule {
    /// The id used in `-- migrate:allow <id>`.
    pub id: &'static str,
    /// Why it is risky, in one line.
    pub why: &'static str,
    /// What to do instead.
    pub instead: &'static str,
}

/// Every rule, in the order they are documented.
pub const RULES: &[Rule] = &[
    Rule {
        id: "drop-database",
        why: "dropping a database from a migration destroys everything in it, and cannot be allowed",
        instead: "drop databases by hand, outside migrations",
    },
    Rule {
        id: "index-without-concurrently",
        why: "CREATE INDEX without CONCURRENTLY blocks every write to an existing table until the index is built",
        instead: "use CREATE INDEX CONCURRENTLY in a `-- migrate:no-transaction` migration",
    },
    Rule {
        id: "add-column-not-null-without-default",
        why: "ADD COLUMN ... NOT NULL without a DEFAULT fails on a table that has rows",
        instead: "give the column a DEFAULT, or add it nullable, backfill it, then SET NOT NULL",
    },
    Rule {
        id: "constraint-without-not-valid",
        why: "adding a FOREIGN KEY or CHECK to an existing table scans every row while holding a lock that blocks writes",
        instead: "add it NOT VALID, then VALIDATE CONSTRAINT in a later migration (that scan does not block writes)",
    },
    Rule {
        id: "column-type-rewrite",
        why: "ALTER COLUMN ... TYPE rewrites the whole table (and its indexes) under an ACCESS EXCLUSIVE lock for most type changes",
        instead: "add a new column, backfill it, and switch over; allow the rule for changes that need no rewrite (e.g. varchar(n) to text)",
    },
    Rule {
        id: "long-exclusive-lock",
        why: "this statement rewrites, scans or indexes a whole existing table while holding ACCESS EXCLUSIVE: every read and write of the table waits until it ends (a lock timeout bounds only the wait for the lock, not the time it is held)",
        instead: "hold the lock only for an instant: add the column without a volatile default (or identity/serial) and backfill in batches; add CHECK (col IS NOT NULL) NOT VALID, VALIDATE it, then SET NOT NULL; CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... USING INDEX; REFRESH MATERIALIZED VIEW CONCURRENTLY; REINDEX CONCURRENTLY; pg_repack instead of VACUUM FULL or CLUSTER",
    },
    Rule {
        id: "destructive",
        why: "DROP TABLE, DROP COLUMN and TRUNCATE delete data that no DOWN section can bring back",
        instead: "make sure the data is no longer needed (or copied elsewhere), then allow the rule for this migration",
    },
];

/// The rule with this id.
///
/// ```
/// assert!(migrate_runtime::source::lint::rule("destructive").is_some());
/// ```
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|rule| rule.id == id)
}

/// One statement a rule fires on.
///
/// ```
/// static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
///
/// for finding in migrate_runtime::source::lint::lint_set(MIGRATIONS) {
///     // e.g. `error[destructive]: migrations/005_x.sql:4: DROP TABLE ...` with why and what to do
///     println!("{finding}");
///     assert!(finding.line >= 1 && finding.path.starts_with("../migrations/"));
/// }
/// ```
#[derive(Debug, PartialEq, Eq)]
pub struct Finding {
    /// The rule.
    pub rule: &'static Rule,
    /// The migration's file.
    pub path: String,
    /// The file line where the statement starts.
    pub line: u32,
    /// The statement's first line.
    pub statement: String,
    /// Whether the migration allows the rule (`-- migrate:allow`); never for `drop-database`.
    pub allowed: bool,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = if self.allowed { "allowed" } else { "error" };
        write!(
            f,
            "{verdict}[{}]: {}:{}: {}\n   = why: {}\n   = instead: {}",
            self.rule.id, self.path, self.line, self.statement, self.rule.why, self.rule.instead
        )?;
        if !self.allowed && self.rule.id != "drop-database" {
            write!(
                f,
                "\n   = or allow it: add `-- migrate:allow {}` to the file's header",
                self.rule.id
            )?;
        }
        Ok(())
    }
}

/// The findings for one migration's UP section, in statement order.
///
/// ```
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// for migration in MIGRATIONS {
///     for finding in migrate_runtime::source::lint::lint(migration) {
///         eprintln!("{finding}");
///         assert_eq!(finding.path, migration.path());
///     }
/// }
/// ```
pub fn lint(migration: &Migration) -> Vec<Finding> {
    lint_with(migration, &mut Columns::default())
}

/// Lints a whole set in version order, as [`lint`] does one migration, and knows more: the
/// column types earlier migrations gave each table, so a type change PostgreSQL makes without
/// rewriting the table (`varchar(20)` to `varchar(50)` or `text`, `numeric(8, 2)` to
/// `numeric(12, 2)`, `timestamp` to `timestamptz` in a migration that sets the time zone to
/// UTC) does not fire `column-type-rewrite`.
///
/// ```
/// static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
///
/// let errors = migrate_runtime::source::lint::lint_set(MIGRATIONS)
///     .into_iter()
///     .filter(|finding| !finding.allowed)
///     .count();
/// ```
pub fn lint_set(migrations: &[Migration]) -> Vec<Finding> {
    let mut columns = Columns::default();
    migrations
        .iter()
        .flat_map(|migration| lint_with(migration, &mut columns))
        .collect()
}

fn lint_with(migration: &Migration, columns: &mut Columns) -> Vec<Finding> {
    let up = migration.up();
    let sql = up.sql();
    // Each statement's tokens are made twice rather than kept for the whole file: a
    // migration of half a million INSERTs would otherwise hold many times its size in tokens.
    // Tables (and materialized views) this migration creates are new: nothing can be locked
    // out of them or lost.
    let created: BTreeSet<String> = statements::split(sql)
        .filter(|statement| starts_with_create(statement.text))
        .filter_map(|statement| created_table(&significant(statement.text)))
        .collect();
    let is_new = |name: Option<String>| name.is_some_and(|name| created.contains(&name));
    let mut findings = Vec::new();
    let mut utc = false;
    let mut position = Cursor::new(sql, up.line());
    for statement in statements::split(sql) {
        let tokens = significant(statement.text);
        utc |= columns::sets_utc(&tokens);
        let known = Known {
            columns: &*columns,
            utc,
        };
        let ids = fired(&tokens, &is_new, &known);
        columns.learn(&tokens);
        for id in ids {
            let rule = rule(id).expect("every rule fired is in RULES");
            findings.push(Finding {
                rule,
                path: up.path().to_owned(),
                line: position.line_at(statement.start),
                statement: statement.text.lines().next().unwrap_or_default().to_owned(),
                allowed: id != "drop-database" && migration.allowed_lints().any(|a| a == id),
            });
        }
    }
    findings
}

/// A statement's tokens, without whitespace, comments and its `;`.
fn significant(statement: &str) -> Vec<Token<'_>> {
    Lexer::new(statement)
        .filter(|t| !t.is_trivia() && t.kind != TokenKind::Semicolon)
        .collect()
}

/// Whether a statement (which starts with a significant token) starts with `CREATE`.
fn starts_with_create(statement: &str) -> bool {
    statement
        .get(..6)
        .is_some_and(|word| word.eq_ignore_ascii_case("create"))
}

/// What the migrations before a statement say: column types, and whether this migration set
/// the time zone to UTC.
struct Known<'c> {
    columns: &'c Columns,
    utc: bool,
}

/// The ids of the rules a statement breaks.
fn fired(
    tokens: &[Token<'_>],
    is_new: &dyn Fn(Option<String>) -> bool,
    known: &Known<'_>,
) -> Vec<&'static str> {
    let word = |i: usize, keyword: &str| tokens.get(i).is_some_and(|t| t.is_keyword(keyword));
    let mut fired = Vec::new();
    if word(0, "DROP") && word(1, "DATABASE") {
        fired.push("drop-database");
    }
    if word(0, "DROP") && word(1, "TABLE") {
        let mut i = 2;
        if word(i, "IF") && word(i + 1, "EXISTS") {
            i += 2;
        }
        if !is_new(name_at(tokens, i).map(|(name, _)| name)) {
            fired.push("destructive");
        }
    }
    if word(0, "TRUNCATE") {
        fired.push("destructive");
    }
    if word(0, "CREATE") {
        let index_at = if word(1, "UNIQUE") { 2 } else { 1 };
        if word(index_at, "INDEX") && !word(index_at + 1, "CONCURRENTLY") {
            let on = tokens.iter().position(|t| t.is_keyword("ON"));
            let mut table_at = on.map(|on| on + 1);
            if let Some(at) = table_at.filter(|&at| word(at, "ONLY")) {
                table_at = Some(at + 1);
            }
            let table = table_at
                .and_then(|at| name_at(tokens, at))
                .map(|(name, _)| name);
            if !is_new(table) {
                fired.push("index-without-concurrently");
            }
        }
    }
    if let Some(at) = whole_table_statement(tokens) {
        if !is_new(name_at(tokens, at).map(|(name, _)| name)) {
            fired.push("long-exclusive-lock");
        }
    }
    if word(0, "ALTER") && word(1, "TABLE") {
        let mut i = 2;
        if word(i, "IF") && word(i + 1, "EXISTS") {
            i += 2;
        }
        if word(i, "ONLY") {
            i += 1;
        }
        let Some((table, after_name)) = name_at(tokens, i) else {
            return fired;
        };
        if is_new(Some(table.clone())) {
            return fired;
        }
        for action in actions(&tokens[after_name..]) {
            fired.extend(action_rule(&table, action, known));
        }
    }
    fired
}

/// The rule one `ALTER TABLE` action on `table` breaks, if any.
fn action_rule(table: &str, action: &[Token<'_>], known: &Known<'_>) -> Option<&'static str> {
    let word = |i: usize, keyword: &str| action.get(i).is_some_and(|t| t.is_keyword(keyword));
    let has = |keyword: &str| action.iter().any(|t| t.is_keyword(keyword));
    let has_pair = |first: &str, second: &str| {
        action
            .windows(2)
            .any(|pair| pair[0].is_keyword(first) && pair[1].is_keyword(second))
    };
    if word(0, "ADD") {
        let constraint = word(1, "CONSTRAINT")
            || word(1, "FOREIGN")
            || word(1, "CHECK")
            || word(1, "PRIMARY")
            || word(1, "UNIQUE")
            || word(1, "EXCLUDE");
        if constraint {
            let checked = has_pair("FOREIGN", "KEY") || has("CHECK");
            if checked && !has_pair("NOT", "VALID") {
                return Some("constraint-without-not-valid");
            }
            // A primary key, unique or exclusion constraint builds its index under ACCESS
            // EXCLUSIVE, unless it takes over an index built beforehand.
            let indexed = has("PRIMARY") || has("UNIQUE") || has("EXCLUDE");
            return (indexed && !has_pair("USING", "INDEX")).then_some("long-exclusive-lock");
        }
        // ADD [COLUMN] [IF NOT EXISTS] name type ...
        let not_null = has_pair("NOT", "NULL");
        let filled = has("DEFAULT") || has("GENERATED");
        if not_null && !filled {
            return Some("add-column-not-null-without-default");
        }
        return fills_every_row(action).then_some("long-exclusive-lock");
    }
    // SET NOT NULL scans the table (unless a valid CHECK proves it, which lint cannot see);
    // a new tablespace, persistence or access method rewrites it.
    let sets_not_null = word(0, "ALTER") && has_pair("SET", "NOT") && has("NULL");
    let rewrites = word(0, "SET")
        && (word(1, "TABLESPACE")
            || word(1, "LOGGED")
            || word(1, "UNLOGGED")
            || (word(1, "ACCESS") && word(2, "METHOD")));
    if sets_not_null || rewrites {
        return Some("long-exclusive-lock");
    }
    if word(0, "ALTER") && (has("TYPE")) {
        let column_at = if word(1, "COLUMN") { 2 } else { 1 };
        let type_at = column_at + 1;
        if word(type_at, "TYPE") || (word(type_at, "SET") && word(type_at + 1, "DATA")) {
            // A change PostgreSQL makes without a rewrite, from the type earlier DDL gave the
            // column, does not fire; an unknown one does.
            let old = action
                .get(column_at)
                .and_then(identifier)
                .and_then(|column| known.columns.get(table, &column));
            let new = columns::new_type(action, column_at);
            if let (Some(old), Some(new)) = (old, new) {
                if !old.change_rewrites(&new, known.utc) {
                    return None;
                }
            }
            return Some("column-type-rewrite");
        }
    }
    if word(0, "DROP") {
        let column = word(1, "COLUMN")
            || !(word(1, "CONSTRAINT")
                || word(1, "DEFAULT")
                || word(1, "NOT")
                || word(1, "IDENTITY")
                || word(1, "EXPRESSION"));
        return column.then_some("destructive");
    }
    None
}

/// Whether an added column's value has to be written into every existing row: a volatile
/// default (PostgreSQL 11 and later store a constant one in the catalog instead), an identity
/// or serial column, or a stored generated column.
fn fills_every_row(action: &[Token<'_>]) -> bool {
    const VOLATILE: &[&str] = &[
        "random",
        "gen_random_uuid",
        "uuid_generate_v1",
        "uuid_generate_v1mc",
        "uuid_generate_v4",
        "clock_timestamp",
        "timeofday",
        "nextval",
    ];
    const SERIAL: &[&str] = &[
        "serial",
        "bigserial",
        "smallserial",
        "serial2",
        "serial4",
        "serial8",
    ];
    let default_at = action.iter().position(|t| t.is_keyword("DEFAULT"));
    let volatile_default = default_at.is_some_and(|at| {
        action[at..]
            .iter()
            .any(|t| VOLATILE.iter().any(|name| t.is_keyword(name)))
    });
    volatile_default
        || action
            .iter()
            .any(|t| t.is_keyword("IDENTITY") || t.is_keyword("STORED"))
        || action
            .iter()
            .any(|t| SERIAL.iter().any(|name| t.is_keyword(name)))
}

/// Where the table's name is in a statement that rewrites or locks a whole table for its
/// duration: `VACUUM FULL t`, `CLUSTER t`, `REFRESH MATERIALIZED VIEW t` and `REINDEX TABLE t`
/// (without `CONCURRENTLY`).
fn whole_table_statement(tokens: &[Token<'_>]) -> Option<usize> {
    let word = |i: usize, keyword: &str| tokens.get(i).is_some_and(|t| t.is_keyword(keyword));
    let concurrently = tokens.iter().any(|t| t.is_keyword("CONCURRENTLY"));
    if word(0, "VACUUM") && tokens.iter().any(|t| t.is_keyword("FULL")) {
        // VACUUM FULL t, VACUUM (FULL) t, VACUUM (FULL, ANALYZE) t
        let close = tokens.iter().rposition(|t| t.kind == TokenKind::CloseParen);
        return Some(close.map_or(2, |at| at + 1)).filter(|&at| at < tokens.len());
    }
    if word(0, "CLUSTER") && tokens.len() > 1 {
        return Some(if word(1, "VERBOSE") { 2 } else { 1 });
    }
    if concurrently {
        return None;
    }
    if word(0, "REFRESH") && word(1, "MATERIALIZED") && word(2, "VIEW") {
        return Some(3);
    }
    if word(0, "REINDEX") && word(1, "TABLE") {
        return Some(2);
    }
    None
}

/// The comma-separated actions of an `ALTER TABLE` (commas inside parentheses do not count).
fn actions<'t, 'a>(tokens: &'t [Token<'a>]) -> Vec<&'t [Token<'a>]> {
    let mut depth = 0_i32;
    let mut start = 0;
    let mut actions = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        match token.kind {
            TokenKind::OpenParen => depth += 1,
            TokenKind::CloseParen => depth -= 1,
            _ if depth == 0 && token.text == "," => {
                actions.push(&tokens[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    actions.push(&tokens[start..]);
    actions
}

/// The table a `CREATE [UNLOGGED|TEMP] TABLE [IF NOT EXISTS] name` statement creates, or the
/// materialized view of `CREATE MATERIALIZED VIEW [IF NOT EXISTS] name`.
fn created_table(tokens: &[Token<'_>]) -> Option<String> {
    if !tokens.first()?.is_keyword("CREATE") {
        return None;
    }
    let table = tokens
        .iter()
        .position(|t| t.is_keyword("TABLE"))
        .or_else(|| {
            (tokens.get(1)?.is_keyword("MATERIALIZED") && tokens.get(2)?.is_keyword("VIEW"))
                .then_some(2)
        })?;
    if table > 3 {
        return None;
    }
    let mut i = table + 1;
    if tokens.get(i).is_some_and(|t| t.is_keyword("IF")) {
        i += 3;
    }
    name_at(tokens, i).map(|(name, _)| name)
}

/// The (possibly schema-qualified) name starting at `i`, normalised the way PostgreSQL
/// folds it (unquoted names lowercased) and without its schema, and the index just past it.
pub(super) fn name_at(tokens: &[Token<'_>], mut i: usize) -> Option<(String, usize)> {
    let mut name = identifier(tokens.get(i)?)?;
    while tokens.get(i + 1).is_some_and(|t| t.text == ".") {
        name = identifier(tokens.get(i + 2)?)?;
        i += 2;
    }
    Some((name, i + 1))
}

pub(super) fn identifier(token: &Token<'_>) -> Option<String> {
    match token.kind {
        TokenKind::Word => Some(token.text.to_ascii_lowercase()),
        TokenKind::QuotedIdentifier => {
            Some(token.text[1..token.text.len().saturating_sub(1)].replace("\"\"", "\""))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (rule, allowed, line) for `up` as migration 2, after a migration 1 that creates
    /// `accounts` (so it is an existing table for migration 2).
    fn findings(header: &str, up: &str) -> Vec<(&'static str, bool, u32)> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("001_accounts.sql"),
            "CREATE TABLE accounts (id int PRIMARY KEY, email text, owner int);\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("002_change.sql"),
            format!("{header}-- migrate:up\n{up}"),
        )
        .unwrap();
        let loaded = crate::source::read_dir(dir.path(), "").unwrap();
        lint(&loaded.migrations[1])
            .into_iter()
            .map(|f| (f.rule.id, f.allowed, f.line))
            .collect()
    }

    fn fires(up: &str) -> Vec<&'static str> {
        // What PostgreSQL refuses inside a transaction block needs the directive.
        let header = if up.contains("CONCURRENTLY") || up.contains("DATABASE") {
            "-- migrate:no-transaction\n"
        } else {
            ""
        };
        findings(header, up)
            .into_iter()
            .map(|(id, _, _)| id)
            .collect()
    }

    #[test]
    fn drop_database_always_fires() {
        assert_eq!(fires("DROP DATABASE other;\n"), ["drop-database"]);
        assert!(fires("DROP SCHEMA other;\n").is_empty());
    }

    #[test]
    fn index_without_concurrently_on_an_existing_table() {
        assert_eq!(
            fires("CREATE INDEX accounts_email ON accounts (email);\n"),
            ["index-without-concurrently"]
        );
        assert_eq!(
            fires("CREATE UNIQUE INDEX IF NOT EXISTS x ON ONLY public.accounts (email);\n"),
            ["index-without-concurrently"]
        );
        assert!(
            fires("CREATE INDEX CONCURRENTLY accounts_email ON accounts (email);\n").is_empty()
        );
        // A table the same migration creates has no writers to block.
        assert!(fires("CREATE TABLE t (a int);\nCREATE INDEX t_a ON t (a);\n").is_empty());
    }

    #[test]
    fn add_column_not_null_needs_a_default() {
        assert_eq!(
            fires("ALTER TABLE accounts ADD COLUMN plan text NOT NULL;\n"),
            ["add-column-not-null-without-default"]
        );
        assert!(
            fires("ALTER TABLE accounts ADD COLUMN plan text NOT NULL DEFAULT 'free';\n")
                .is_empty()
        );
        assert!(fires("ALTER TABLE accounts ADD COLUMN plan text;\n").is_empty());
        // An identity column needs no DEFAULT, but fills every existing row: a rewrite.
        assert_eq!(
            fires(
                "ALTER TABLE accounts ADD COLUMN n bigint NOT NULL GENERATED ALWAYS AS IDENTITY;\n"
            ),
            ["long-exclusive-lock"]
        );
    }

    #[test]
    fn statements_that_hold_access_exclusive_for_a_whole_table_pass() {
        for (loud, why) in [
            ("ALTER TABLE accounts ADD COLUMN token uuid DEFAULT gen_random_uuid();", "volatile default"),
            ("ALTER TABLE accounts ADD COLUMN seen timestamptz NOT NULL DEFAULT clock_timestamp();", "volatile default"),
            ("ALTER TABLE accounts ADD COLUMN n bigserial;", "serial"),
            ("ALTER TABLE accounts ADD COLUMN lower_email text GENERATED ALWAYS AS (lower(email)) STORED;", "stored generated"),
            ("ALTER TABLE accounts ALTER COLUMN email SET NOT NULL;", "SET NOT NULL scans"),
            ("ALTER TABLE accounts ADD CONSTRAINT accounts_email_key UNIQUE (email);", "index built under the lock"),
            ("ALTER TABLE accounts ADD PRIMARY KEY (id);", "index built under the lock"),
            ("ALTER TABLE accounts SET TABLESPACE pg_default;", "rewrite"),
            ("ALTER TABLE accounts SET UNLOGGED;", "rewrite"),
            ("VACUUM FULL accounts;", "rewrite"),
            ("VACUUM (FULL, ANALYZE) accounts;", "rewrite"),
            ("CLUSTER accounts USING accounts_pkey;", "rewrite"),
            ("REINDEX TABLE accounts;", "rebuilds every index"),
        ] {
            let header = if loud.starts_with("VACUUM") { "-- migrate:no-transaction\n" } else { "" };
            let fired: Vec<_> = findings(header, &format!("{loud}\n")).into_iter().map(|f| f.0).collect();
            assert_eq!(fired, ["long-exclusive-lock"], "{loud} ({why})");
        }
        for quiet in [
            // A constant default is stored in the catalog (PostgreSQL 11+): no rewrite.
            "ALTER TABLE accounts ADD COLUMN plan text NOT NULL DEFAULT 'free';",
            "ALTER TABLE accounts ADD COLUMN created timestamptz DEFAULT now();",
            "ALTER TABLE accounts ADD COLUMN note text;",
            "ALTER TABLE accounts ADD CONSTRAINT accounts_email_key UNIQUE USING INDEX accounts_email_idx;",
            "ALTER TABLE accounts ALTER COLUMN email DROP NOT NULL;",
            "ALTER TABLE accounts SET (fillfactor = 90);",
            "REINDEX TABLE CONCURRENTLY accounts;",
            "REFRESH MATERIALIZED VIEW CONCURRENTLY totals;",
            "CLUSTER;",
            // Tables made by the same migration have no readers yet.
            "CREATE TABLE t (a int);\nALTER TABLE t ADD COLUMN id bigserial;\nALTER TABLE t ALTER COLUMN a SET NOT NULL;\nVACUUM FULL t;",
            "CREATE MATERIALIZED VIEW totals AS SELECT 1 AS n;\nREFRESH MATERIALIZED VIEW totals;",
        ] {
            let header = if quiet.contains("CONCURRENTLY")
                || quiet.contains("VACUUM")
                || quiet.starts_with("CLUSTER;")
            { "-- migrate:no-transaction\n" } else { "" };
            assert!(findings(header, &format!("{quiet}\n")).is_empty(), "{quiet}");
        }
    }

    #[test]
    fn foreign_keys_and_checks_on_existing_tables_need_not_valid() {
        assert_eq!(
            fires("ALTER TABLE accounts ADD CONSTRAINT owner_fk FOREIGN KEY (owner) REFERENCES accounts (id);\n"),
            ["constraint-without-not-valid"]
        );
        assert_eq!(
            fires("ALTER TABLE accounts ADD CHECK (id > 0);\n"),
            ["constraint-without-not-valid"]
        );
        assert!(fires(
            "ALTER TABLE accounts ADD CONSTRAINT owner_fk FOREIGN KEY (owner) REFERENCES accounts (id) NOT VALID;\n"
        )
        .is_empty());
        assert!(fires("ALTER TABLE accounts VALIDATE CONSTRAINT owner_fk;\n").is_empty());
    }

    #[test]
    fn column_type_changes_rewrite() {
        assert_eq!(
            fires("ALTER TABLE accounts ALTER COLUMN email TYPE varchar(200);\n"),
            ["column-type-rewrite"]
        );
        assert_eq!(
            fires("ALTER TABLE accounts ALTER email SET DATA TYPE citext;\n"),
            ["column-type-rewrite"]
        );
        assert!(fires("ALTER TABLE accounts ALTER COLUMN email SET DEFAULT '';\n").is_empty());
    }

    /// The rules `second` fires after `first`, linted as a set.
    fn fires_after(first: &str, second: &str) -> Vec<&'static str> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("001_first.sql"), first).unwrap();
        std::fs::write(dir.path().join("002_second.sql"), second).unwrap();
        let loaded = crate::source::read_dir(dir.path(), "").unwrap();
        lint_set(&loaded.migrations)
            .into_iter()
            .filter(|f| f.path.ends_with("002_second.sql"))
            .map(|f| f.rule.id)
            .collect()
    }

    #[test]
    fn type_changes_without_a_rewrite_do_not_fire_when_the_old_type_is_known() {
        let table =
            "CREATE TABLE t (id int PRIMARY KEY, a varchar(20) NOT NULL, b character varying, \
                     n numeric(8, 2), ts timestamp without time zone DEFAULT now());\n";
        for quiet in [
            "ALTER TABLE t ALTER COLUMN a TYPE varchar(50);",
            "ALTER TABLE t ALTER COLUMN a TYPE text;",
            "ALTER TABLE t ALTER COLUMN a TYPE character varying;",
            "ALTER TABLE t ALTER COLUMN b TYPE text;",
            "ALTER TABLE t ALTER COLUMN n TYPE numeric(12, 2);",
            "ALTER TABLE t ALTER n SET DATA TYPE numeric;",
            "SET timezone = 'UTC';\nALTER TABLE t ALTER COLUMN ts TYPE timestamptz;",
            "SET TIME ZONE 'UTC';\nALTER TABLE t ALTER COLUMN ts TYPE timestamp with time zone;",
        ] {
            assert!(fires_after(table, quiet).is_empty(), "{quiet}");
        }
        for loud in [
            "ALTER TABLE t ALTER COLUMN a TYPE varchar(10);",
            "ALTER TABLE t ALTER COLUMN a TYPE integer USING length(a);",
            "ALTER TABLE t ALTER COLUMN n TYPE numeric(12, 4);",
            "ALTER TABLE t ALTER COLUMN ts TYPE timestamptz;",
            "ALTER TABLE t ALTER COLUMN id TYPE bigint;",
            "ALTER TABLE t ALTER COLUMN unknown TYPE text;",
        ] {
            assert_eq!(fires_after(table, loud), ["column-type-rewrite"], "{loud}");
        }
        // A type learned from an earlier change counts too.
        assert!(fires_after(
            &format!("{table}ALTER TABLE t ALTER COLUMN a TYPE varchar(30);\n"),
            "ALTER TABLE t ALTER COLUMN a TYPE varchar(40);"
        )
        .is_empty());
    }

    #[test]
    fn an_index_on_a_materialized_view_made_in_the_same_migration_does_not_fire() {
        assert!(fires(
            "CREATE MATERIALIZED VIEW totals AS SELECT owner, count(*) FROM accounts GROUP BY owner;\n\
             CREATE UNIQUE INDEX totals_owner ON totals (owner);\n"
        )
        .is_empty());
        assert_eq!(
            fires("CREATE INDEX accounts_owner ON accounts (owner);\n"),
            ["index-without-concurrently"]
        );
    }

    #[test]
    fn destructive_statements() {
        assert_eq!(fires("DROP TABLE accounts;\n"), ["destructive"]);
        assert_eq!(fires("TRUNCATE accounts;\n"), ["destructive"]);
        assert_eq!(
            fires("ALTER TABLE accounts DROP COLUMN email;\n"),
            ["destructive"]
        );
        assert_eq!(fires("ALTER TABLE accounts DROP email;\n"), ["destructive"]);
        assert!(fires("ALTER TABLE accounts DROP CONSTRAINT owner_fk;\n").is_empty());
        assert!(fires("ALTER TABLE accounts ALTER COLUMN email DROP NOT NULL;\n").is_empty());
        assert!(fires("CREATE TABLE t (a int);\nDROP TABLE t;\n").is_empty());
    }

    #[test]
    fn several_actions_of_one_alter_table_each_count() {
        assert_eq!(
            fires("ALTER TABLE accounts ADD COLUMN a int NOT NULL, DROP COLUMN email, ADD COLUMN b numeric(10, 2);\n"),
            ["add-column-not-null-without-default", "destructive"]
        );
    }

    #[test]
    fn a_header_directive_allows_a_rule_and_lines_point_into_the_file() {
        assert_eq!(
            findings(
                "-- migrate:allow destructive\n",
                "CREATE TABLE t (a int);\n\nDROP TABLE accounts;\nCREATE INDEX t_a2 ON accounts (id);\n"
            ),
            [("destructive", true, 5), ("index-without-concurrently", false, 6)]
        );
    }

    #[test]
    fn allow_names_must_be_rules_and_drop_database_cannot_be_allowed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("001_a.sql"),
            "-- migrate:allow drop-database, destructiv\n-- migrate:up\nSELECT 1;\n",
        )
        .unwrap();
        let problems = crate::source::read_dir(dir.path(), "")
            .unwrap_err()
            .to_string();
        assert!(
            problems.contains("`drop-database` cannot be allowed"),
            "{problems}"
        );
        assert!(
            problems.contains("`destructiv` is not a lint rule")
                && problems.contains("the rules that can be allowed: index-without-concurrently, "),
            "{problems}"
        );
    }
}
