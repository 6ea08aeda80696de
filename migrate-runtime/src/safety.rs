//! Data-safety snapshots (opt-in, seed 004): inside each transactional migration's own
//! transaction, what it did to existing tables is compared with a policy before `COMMIT`; a
//! migration that breaks the policy is rolled back.

use std::collections::{BTreeMap, BTreeSet};

use postgres::{Client, SimpleQueryMessage};

use crate::error::PolicyViolation;
use crate::history::{literal, HistoryTables};
use crate::schema::SchemaSnapshot;
use crate::source::lexer::{Lexer, TokenKind};
use crate::{Error, Migration};

/// What a migration may do to the tables that existed before it, checked by
/// [`crate::Migrator::safety`] (the defaults are seed 004's: new tables and columns are fine, changing
/// row counts or constraints of existing tables is not). Whatever the policy, a constraint
/// that was valid must stay valid, foreign keys must stay enforced, and no index may be left
/// invalid.
///
/// ```
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let mut client = database.client()?;
/// # migrate_runtime::Migrator::new(&MIGRATIONS[..1]).run(&mut client)?;
/// use migrate_runtime::{Error, Migrator, SafetyPolicy};
/// let strict = SafetyPolicy { allow_table_creation: false, ..SafetyPolicy::default() };
/// let migrator = Migrator::new(MIGRATIONS).safety(strict);
/// // Migration 2 creates the `roles` table: rolled back.
/// let result = migrator.run(&mut client);
/// assert!(matches!(&result, Err(Error::PolicyViolation(violation)) if violation.version == 2), "{result:?}");
/// assert_eq!(migrator.applied(&mut client)?.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SafetyPolicy {
    /// Rows may be inserted into or deleted from existing tables, or a table with rows dropped.
    pub allow_row_changes: bool,
    /// New tables may be created.
    pub allow_table_creation: bool,
    /// Existing tables may get new columns.
    pub allow_column_addition: bool,
    /// Constraints of existing tables may be added, dropped or changed.
    pub allow_constraint_modification: bool,
}

impl Default for SafetyPolicy {
    fn default() -> Self {
        SafetyPolicy {
            allow_row_changes: false,
            allow_table_creation: true,
            allow_column_addition: true,
            allow_constraint_modification: false,
        }
    }
}

/// One side of the comparison: the schema, and the row counts of the existing tables the
/// migration names or touches.
struct Snapshot {
    schema: SchemaSnapshot,
    rows: BTreeMap<String, i64>,
}

/// What the guard saw inside the migration's transaction before its SQL ran.
pub(crate) struct Before {
    named: BTreeSet<String>,
    snapshot: Snapshot,
    activity: BTreeMap<String, (i64, i64)>,
}

/// The guard's first step, inside the migration's open transaction: the schema and the row
/// counts of the existing tables `sql` names.
pub(crate) fn before(
    client: &mut Client,
    tables: &HistoryTables,
    sql: &str,
) -> Result<Before, Error> {
    let named = named_tables(client, sql)?;
    let snapshot = snapshot(client, tables, &named)?;
    // The statistics include earlier transactions of this session not yet flushed, so this
    // transaction's share is the difference from here on.
    let activity = table_activity(client)?;
    Ok(Before {
        named,
        snapshot,
        activity,
    })
}

/// The guard's second step, after the migration's SQL ran in the same transaction: what the
/// policy forbids of what it did (`None`: nothing).
pub(crate) fn after(
    client: &mut Client,
    tables: &HistoryTables,
    before: Before,
    policy: SafetyPolicy,
    migration: &Migration,
) -> Result<Option<PolicyViolation>, Error> {
    let Before {
        named,
        snapshot: mut before,
        activity,
    } = before;
    let touched = touched_since(&activity, table_activity(client)?);
    let after_names: BTreeSet<String> = named.iter().chain(touched.keys()).cloned().collect();
    let mut after = snapshot(client, tables, &after_names)?;
    // A table changed without being named (by a function, a trigger...): its count before is
    // its count now less what this transaction inserted and deleted.
    for (table, net) in &touched {
        if let (false, Some(&now)) = (before.rows.contains_key(table), after.rows.get(table)) {
            if before.schema.has_table(table) {
                before.rows.insert(table.clone(), now - net);
            }
        }
    }
    after
        .rows
        .retain(|table, _| before.rows.contains_key(table));
    let problems = check(policy, &before, &after, client)?;
    Ok((!problems.is_empty()).then(|| PolicyViolation {
        version: migration.version(),
        name: migration.name().to_owned(),
        path: migration.path().to_owned(),
        problems,
    }))
}

/// The existing tables among the names the SQL mentions (words and quoted identifiers,
/// qualified or not), as `regclass` text.
fn named_tables(client: &mut Client, sql: &str) -> Result<BTreeSet<String>, Error> {
    let mut names: BTreeSet<String> = BTreeSet::new();
    let tokens: Vec<_> = Lexer::new(sql).filter(|t| !t.is_trivia()).collect();
    for (index, token) in tokens.iter().enumerate() {
        if !matches!(token.kind, TokenKind::Word | TokenKind::QuotedIdentifier) {
            continue;
        }
        names.insert(token.text.to_owned());
        // `schema.table`: the lexer gives `.` as its own token.
        if let (Some(dot), Some(next)) = (tokens.get(index + 1), tokens.get(index + 2)) {
            if dot.text == "." && matches!(next.kind, TokenKind::Word | TokenKind::QuotedIdentifier)
            {
                names.insert(format!("{}.{}", token.text, next.text));
            }
        }
    }
    if names.is_empty() {
        return Ok(BTreeSet::new());
    }
    let list = names
        .iter()
        .map(|n| literal(n))
        .collect::<Vec<_>>()
        .join(", ");
    // `parse_ident` first: to_regclass raises on text that is not a name at all.
    let query = format!(
        "SELECT DISTINCT format('%I.%I', s.nspname, c.relname) FROM unnest(ARRAY[{list}]::text[]) AS n(name) \
         JOIN pg_class c ON c.oid = to_regclass(n.name) JOIN pg_namespace s ON s.oid = c.relnamespace \
         WHERE n.name ~ '^(\"([^\"]|\"\")+\"|[A-Za-z_][A-Za-z0-9_$]*)(\\.(\"([^\"]|\"\")+\"|[A-Za-z_][A-Za-z0-9_$]*))?$' \
         AND c.relkind IN ('r', 'p')"
    );
    Ok(column(client, &query)?.into_iter().collect())
}

/// Per table (as `schema.table`): rows inserted, updated or deleted, and rows inserted less
/// rows deleted, by this session's transactions whose statistics are not yet flushed.
fn table_activity(client: &mut Client) -> Result<BTreeMap<String, (i64, i64)>, Error> {
    Ok(rows(
        client,
        "SELECT format('%I.%I', schemaname, relname), n_tup_ins + n_tup_upd + n_tup_del, \
         n_tup_ins - n_tup_del FROM pg_stat_xact_user_tables WHERE n_tup_ins + n_tup_upd + n_tup_del > 0",
    )?
    .into_iter()
    .filter(|row| row.len() == 3)
    .map(|row| {
        let number = |i: usize| row[i].parse::<i64>().unwrap_or_default();
        (row[0].clone(), (number(1), number(2)))
    })
    .collect())
}

/// The tables touched between two readings of [`table_activity`], with their net rows.
fn touched_since(
    before: &BTreeMap<String, (i64, i64)>,
    after: BTreeMap<String, (i64, i64)>,
) -> BTreeMap<String, i64> {
    after
        .into_iter()
        .filter_map(|(table, (activity, net))| {
            let (was_activity, was_net) = before.get(&table).copied().unwrap_or_default();
            (activity > was_activity).then_some((table, net - was_net))
        })
        .collect()
}

/// The schema, and the row counts of those of `tables` (as `schema.table`) that exist.
fn snapshot(
    client: &mut Client,
    history: &HistoryTables,
    tables: &BTreeSet<String>,
) -> Result<Snapshot, Error> {
    let (schema, table) = history.names();
    let schema = SchemaSnapshot::read(client, schema, table)?;
    let mut rows = BTreeMap::new();
    let list = tables.iter().map(|t| literal(t)).collect::<Vec<_>>();
    let existing = if list.is_empty() {
        Vec::new()
    } else {
        column(
            client,
            &format!(
                "SELECT n FROM unnest(ARRAY[{}]::text[]) AS n WHERE to_regclass(n) IS NOT NULL",
                list.join(", ")
            ),
        )?
    };
    if !existing.is_empty() {
        let query = existing
            .iter()
            .map(|t| format!("SELECT {}, count(*) FROM {t}", literal(t)))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        for (table, count) in pairs(client, &query)? {
            rows.insert(table, count.parse().unwrap_or_default());
        }
    }
    Ok(Snapshot { schema, rows })
}

fn check(
    policy: SafetyPolicy,
    before: &Snapshot,
    after: &Snapshot,
    client: &mut Client,
) -> Result<Vec<String>, Error> {
    let mut problems = Vec::new();
    let existed = |table: &str| before.schema.has_table(table);
    let exists_now = |table: &str| after.schema.has_table(table);
    for (table, &count) in &before.rows {
        match after.rows.get(table) {
            Some(&now) if now != count && !policy.allow_row_changes => problems.push(format!(
                "table {table}: row count changed from {count} to {now} (allow_row_changes is off)"
            )),
            None if count > 0 && !policy.allow_row_changes => problems.push(format!(
                "table {table}: dropped with {count} rows (allow_row_changes is off)"
            )),
            _ => {}
        }
    }
    let diff = before.schema.diff(&after.schema);
    for (object, _) in &diff.added {
        if let Some(table) = object.strip_prefix("table ") {
            if !policy.allow_table_creation {
                problems.push(format!(
                    "table {table}: created (allow_table_creation is off)"
                ));
            }
        } else if let Some(column) = object.strip_prefix("column ") {
            if !policy.allow_column_addition && existed(owner(column)) {
                problems.push(format!(
                    "column {column}: added to an existing table (allow_column_addition is off)"
                ));
            }
        }
    }
    let constraints = diff
        .added
        .iter()
        .map(|(o, _)| (o, "added"))
        .chain(diff.removed.iter().map(|(o, _)| (o, "dropped")))
        .chain(diff.changed.iter().map(|(o, _, _)| (o, "changed")));
    for (object, what) in constraints {
        if let Some(constraint) = object.strip_prefix("constraint ") {
            // A dropped table's constraints go with it: that is the table's drop, not theirs.
            let table = owner(constraint);
            if !policy.allow_constraint_modification && existed(table) && exists_now(table) {
                problems.push(format!(
                    "constraint {constraint}: {what} (allow_constraint_modification is off)"
                ));
            }
        }
    }
    for (object, was, now) in &diff.changed {
        if object.starts_with("constraint ")
            && !was.ends_with("NOT VALID")
            && now.ends_with("NOT VALID")
        {
            problems.push(format!("{object}: was valid, is now NOT VALID"));
        }
    }
    for index in column(
        client,
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_index x \
         JOIN pg_class c ON c.oid = x.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE NOT x.indisvalid",
    )? {
        problems.push(format!("index {index}: left INVALID"));
    }
    for table in column(
        client,
        "SELECT DISTINCT format('%I.%I', n.nspname, c.relname) FROM pg_trigger t \
         JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE t.tgisinternal AND t.tgconstraint <> 0 AND t.tgenabled = 'D'",
    )? {
        problems.push(format!(
            "table {table}: foreign-key enforcement is disabled (its constraint triggers are off)"
        ));
    }
    Ok(problems)
}

/// `schema.table` of `schema.table.column`.
fn owner(qualified_column: &str) -> &str {
    qualified_column
        .rsplit_once('.')
        .map_or(qualified_column, |(table, _)| table)
}

fn column(client: &mut Client, query: &str) -> Result<Vec<String>, Error> {
    Ok(rows(client, query)?
        .into_iter()
        .filter_map(|mut row| (!row.is_empty()).then(|| row.swap_remove(0)))
        .collect())
}

fn pairs(client: &mut Client, query: &str) -> Result<Vec<(String, String)>, Error> {
    Ok(rows(client, query)?
        .into_iter()
        .filter(|row| row.len() >= 2)
        .map(|mut row| {
            let second = row.swap_remove(1);
            (row.swap_remove(0), second)
        })
        .collect())
}

fn rows(client: &mut Client, query: &str) -> Result<Vec<Vec<String>>, Error> {
    let messages = client
        .simple_query(query)
        .map_err(Error::database("taking a data-safety snapshot"))?;
    Ok(messages
        .iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or_default().to_owned())
                    .collect(),
            ),
            _ => None,
        })
        .collect())
}
