//! The schema fingerprint: a normalised, comparable description of everything in a database's
//! own schemas, read from `pg_catalog`, and the readable difference between two of them.

use std::collections::BTreeMap;
use std::fmt;

use postgres::{Client, SimpleQueryMessage};
use postgres_protocol::escape::escape_literal;

use crate::Error;

/// Every object in the database's own schemas (all but `pg_catalog`, `information_schema`,
/// the TOAST and temporary schemas) except objects that belong to an extension and the
/// migrator's own history tables: schemas, tables and their columns (type, nullability,
/// default, identity, collation), constraints, indexes (definition and validity), sequences,
/// views and materialized views, functions and procedures, triggers, enums (labels in order),
/// domains, composite and range types, extensions, and comments.
///
/// Two snapshots are equal when the schemas are; [`SchemaSnapshot::diff`] says how they differ.
/// Nothing in it depends on object ids, so snapshots of two databases compare.
///
/// ```
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let migrations = MIGRATIONS;
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let url = database.url();
/// # migrate_runtime::Migrator::new(migrations).run(&mut database.client()?)?;
/// // e.g. url = "postgresql://localhost/app"
/// let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
/// let before = migrate_runtime::Migrator::new(migrations).schema_snapshot(&mut client)?;
/// client.batch_execute("ALTER TABLE users ADD COLUMN nickname text")?;
/// let after = migrate_runtime::Migrator::new(migrations).schema_snapshot(&mut client)?;
/// print!("{}", before.diff(&after)); // + column public.users.nickname: text
/// let diff = before.diff(&after);
/// assert_eq!(diff.added.len(), 1);
/// assert!(diff.added[0].0.contains("users.nickname"), "{diff}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchemaSnapshot {
    /// `"{kind} {qualified name}"` → its normalised definition.
    objects: BTreeMap<String, String>,
}

impl SchemaSnapshot {
    /// Reads the snapshot, leaving out the history tables `schema.table` and
    /// `schema.table_history` (and everything attached to them). One round trip.
    pub(crate) fn read(client: &mut Client, schema: &str, table: &str) -> Result<Self, Error> {
        let history = |name: &str| {
            escape_literal(&format!(
                "{}.{}",
                postgres_protocol::escape::escape_identifier(schema),
                postgres_protocol::escape::escape_identifier(name)
            ))
        };
        let query = SNAPSHOT_SQL
            .replace("$history", &history(table))
            .replace("$actions", &history(&format!("{table}_history")));
        let messages = client
            .simple_query(&query)
            .map_err(Error::database("reading the schema from pg_catalog"))?;
        let objects = messages
            .iter()
            .filter_map(|message| match message {
                SimpleQueryMessage::Row(row) => Some((
                    format!("{} {}", row.get(0)?, row.get(1)?),
                    row.get(2).unwrap_or_default().to_owned(),
                )),
                _ => None,
            })
            .collect();
        Ok(SchemaSnapshot { objects })
    }

    /// Every object as (`"{kind} {qualified name}"`, definition), sorted.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// # let migrator = migrate_runtime::Migrator::new(MIGRATIONS);
    /// # migrator.run(&mut client)?;
    /// let snapshot = migrator.schema_snapshot(&mut client)?;
    /// for (object, definition) in snapshot.objects() {
    ///     println!("{object}: {definition}");
    /// }
    /// assert!(snapshot.objects().any(|(object, _)| object == "table public.users"));
    /// // The history tables are left out.
    /// assert!(!snapshot.objects().any(|(object, _)| object.contains("schema_migrations")));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn objects(&self) -> impl Iterator<Item = (&str, &str)> {
        self.objects.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether it has the table `schema.table` (as [`SchemaSnapshot::objects`] names it).
    pub(crate) fn has_table(&self, qualified: &str) -> bool {
        ["table", "partitioned table"]
            .iter()
            .any(|kind| self.objects.contains_key(&format!("{kind} {qualified}")))
    }

    /// How `after` differs from `self`.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// let migrator = migrate_runtime::Migrator::new(MIGRATIONS);
    /// let before = migrator.schema_snapshot(&mut client)?;
    /// migrator.run(&mut client)?;
    /// let after = migrator.schema_snapshot(&mut client)?;
    /// let diff = before.diff(&after);
    /// if !diff.is_empty() {
    ///     eprint!("{diff}");
    /// }
    /// assert!(diff.removed.is_empty());
    /// assert!(diff.added.iter().any(|(object, _)| object == "table public.users"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn diff(&self, after: &SchemaSnapshot) -> SchemaDiff {
        let mut diff = SchemaDiff::default();
        for (object, definition) in &self.objects {
            if let Some(table) = object.strip_prefix(COLUMN_ORDER) {
                // Only an order of the same columns is a difference of its own; a column
                // added or dropped already shows as that column.
                if let Some(now) = after.objects.get(object) {
                    let same_columns = |a: &str, b: &str| {
                        let mut a: Vec<&str> = a.split(", ").collect();
                        let mut b: Vec<&str> = b.split(", ").collect();
                        a.sort_unstable();
                        b.sort_unstable();
                        a == b
                    };
                    if now != definition && same_columns(definition, now) {
                        diff.reordered
                            .push((table.to_owned(), definition.clone(), now.clone()));
                    }
                }
                continue;
            }
            match after.objects.get(object) {
                None => diff.removed.push((object.clone(), definition.clone())),
                Some(now) if now != definition => {
                    diff.changed
                        .push((object.clone(), definition.clone(), now.clone()))
                }
                Some(_) => {}
            }
        }
        for (object, definition) in &after.objects {
            if !self.objects.contains_key(object) && !object.starts_with(COLUMN_ORDER) {
                diff.added.push((object.clone(), definition.clone()));
            }
        }
        diff
    }
}

/// The kind of the objects that hold a table's column order (compared on their own).
const COLUMN_ORDER: &str = "column order ";

/// Indexes marked invalid, as `schema.name` (best effort: an empty list if the query fails).
pub(crate) fn invalid_indexes(client: &mut Client) -> Vec<String> {
    let query = "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_index i \
                 JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE NOT i.indisvalid ORDER BY 1";
    client
        .simple_query(query)
        .map(|messages| {
            messages
                .iter()
                .filter_map(|message| match message {
                    SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The difference between two [`SchemaSnapshot`]s; `Display` prints it line by line (`-`
/// only before, `+` only after, `~` changed, with both definitions).
///
/// ```
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let mut client = database.client()?;
/// let migrator = migrate_runtime::Migrator::new(&[]);
/// let before = migrator.schema_snapshot(&mut client)?;
/// client.batch_execute("CREATE TABLE notes (id int, body text)")?;
/// let diff = before.diff(&migrator.schema_snapshot(&mut client)?);
/// for (object, _definition) in &diff.added {
///     println!("new: {object}");
/// }
/// assert!(diff.added.iter().any(|(object, _)| object == "table public.notes"));
/// assert!(diff.removed.is_empty() && diff.changed.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchemaDiff {
    /// Objects only in the first snapshot: (object, definition).
    pub removed: Vec<(String, String)>,
    /// Objects only in the second: (object, definition).
    pub added: Vec<(String, String)>,
    /// Objects in both with different definitions: (object, before, after).
    pub changed: Vec<(String, String, String)>,
    /// Tables with the same columns in another order: (table, columns before, columns after).
    /// It matters to `SELECT *`, `INSERT` without a column list and `COPY`; `pg_dump` shows it.
    pub reordered: Vec<(String, String, String)>,
}

impl SchemaDiff {
    /// Whether the two snapshots were equal.
    ///
    /// ```
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// let migrator = migrate_runtime::Migrator::new(&[]);
    /// let before = migrator.schema_snapshot(&mut client)?;
    /// client.batch_execute("CREATE TEMPORARY TABLE scratch (id int)")?; // not part of the schema
    /// let diff = before.diff(&migrator.schema_snapshot(&mut client)?);
    /// assert!(diff.is_empty(), "the schema changed:\n{diff}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty()
            && self.added.is_empty()
            && self.changed.is_empty()
            && self.reordered.is_empty()
    }

    /// Whether the only difference is the order of some tables' columns.
    ///
    /// ```
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// # client.batch_execute("CREATE TABLE t (a int, b int)")?;
    /// let migrator = migrate_runtime::Migrator::new(&[]);
    /// let before = migrator.schema_snapshot(&mut client)?;
    /// // A column dropped and added again lands at the end.
    /// client.batch_execute("ALTER TABLE t DROP COLUMN a; ALTER TABLE t ADD COLUMN a int")?;
    /// let diff = before.diff(&migrator.schema_snapshot(&mut client)?);
    /// if diff.only_column_order() {
    ///     eprintln!("same columns, another order:\n{diff}");
    /// }
    /// assert!(diff.only_column_order(), "{diff}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn only_column_order(&self) -> bool {
        self.removed.is_empty()
            && self.added.is_empty()
            && self.changed.is_empty()
            && !self.reordered.is_empty()
    }
}

/// A definition on one line, or indented under its object when it has several.
fn write_definition(f: &mut fmt::Formatter<'_>, definition: &str) -> fmt::Result {
    let definition = definition.trim_end();
    if definition.contains('\n') {
        for line in definition.lines() {
            write!(f, "\n      {line}")?;
        }
        Ok(())
    } else {
        write!(f, " {definition}")
    }
}

impl fmt::Display for SchemaDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (object, definition) in &self.removed {
            write!(f, "  - {object}:")?;
            write_definition(f, definition)?;
            writeln!(f)?;
        }
        for (object, definition) in &self.added {
            write!(f, "  + {object}:")?;
            write_definition(f, definition)?;
            writeln!(f)?;
        }
        for (object, before, after) in &self.changed {
            writeln!(f, "  ~ {object}")?;
            write!(f, "      before:")?;
            write_definition(f, before)?;
            write!(f, "\n      after: ")?;
            write_definition(f, after)?;
            writeln!(f)?;
        }
        for (table, before, after) in &self.reordered {
            writeln!(f, "  ~ column order of {table} (same columns)")?;
            writeln!(f, "      before: {before}")?;
            writeln!(f, "      after:  {after}")?;
        }
        Ok(())
    }
}

/// One row per object: kind, qualified name, definition. `$history` and `$actions` are the
/// history tables' names as literals (they may not exist yet).
const SNAPSHOT_SQL: &str = r#"
WITH ns AS (
    SELECT oid, nspname FROM pg_namespace
    WHERE nspname NOT IN ('pg_catalog', 'information_schema')
      AND nspname !~ '^pg_(toast|temp_|toast_temp_)'
),
history AS (
    SELECT to_regclass($history)::oid AS oid UNION ALL SELECT to_regclass($actions)::oid
),
skipped_relations AS (
    SELECT oid FROM history WHERE oid IS NOT NULL
    UNION SELECT d.objid FROM pg_depend d
        WHERE d.classid = 'pg_class'::regclass AND d.refobjid IN (SELECT oid FROM history)
    UNION SELECT x.indexrelid FROM pg_index x WHERE x.indrelid IN (SELECT oid FROM history)
    UNION SELECT d.objid FROM pg_depend d
        WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e'
),
relations AS (
    SELECT c.oid, c.relkind, c.relname, n.nspname FROM pg_class c JOIN ns n ON n.oid = c.relnamespace
    WHERE c.oid NOT IN (SELECT oid FROM skipped_relations)
)
SELECT 'schema', quote_ident(nspname), '' FROM ns
UNION ALL
SELECT CASE relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' WHEN 'f' THEN 'foreign table'
                    WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' ELSE 'sequence' END,
       format('%I.%I', nspname, relname),
       CASE WHEN relkind IN ('v', 'm') THEN pg_get_viewdef(oid)
            WHEN relkind = 'S' THEN (
                SELECT format('%s start %s increment %s min %s max %s cache %s%s',
                              format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin,
                              s.seqmax, s.seqcache, CASE WHEN s.seqcycle THEN ' cycle' ELSE '' END)
                FROM pg_sequence s WHERE s.seqrelid = relations.oid)
            ELSE coalesce(pg_get_partkeydef(oid), '') END
FROM relations WHERE relkind IN ('r', 'p', 'f', 'v', 'm', 'S')
UNION ALL
SELECT 'column', format('%I.%I.%I', r.nspname, r.relname, a.attname),
       concat_ws(' ', format_type(a.atttypid, a.atttypmod),
                 CASE WHEN a.attnotnull THEN 'not null' END,
                 CASE a.attidentity WHEN 'a' THEN 'generated always as identity'
                                    WHEN 'd' THEN 'generated by default as identity' END,
                 CASE WHEN a.attgenerated = 's' THEN 'generated always as' END,
                 'default ' || pg_get_expr(ad.adbin, ad.adrelid),
                 CASE WHEN a.attcollation <> t.typcollation THEN 'collate ' || quote_ident(co.collname) END)
FROM pg_attribute a
JOIN relations r ON r.oid = a.attrelid AND r.relkind IN ('r', 'p', 'f', 'v', 'm')
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
LEFT JOIN pg_collation co ON co.oid = a.attcollation
WHERE a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'column order', format('%I.%I', r.nspname, r.relname),
       string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
FROM pg_attribute a JOIN relations r ON r.oid = a.attrelid AND r.relkind IN ('r', 'p', 'f')
WHERE a.attnum > 0 AND NOT a.attisdropped
GROUP BY r.nspname, r.relname
UNION ALL
SELECT 'constraint', format('%I.%I.%I', r.nspname, r.relname, k.conname), pg_get_constraintdef(k.oid)
FROM pg_constraint k JOIN relations r ON r.oid = k.conrelid
UNION ALL
SELECT 'index', format('%I.%I', r.nspname, r.relname),
       pg_get_indexdef(x.indexrelid) || CASE WHEN x.indisvalid THEN '' ELSE ' -- INVALID' END
FROM pg_index x JOIN relations r ON r.oid = x.indexrelid
UNION ALL
SELECT 'trigger', format('%I.%I.%I', r.nspname, r.relname, g.tgname), pg_get_triggerdef(g.oid)
FROM pg_trigger g JOIN relations r ON r.oid = g.tgrelid
WHERE NOT g.tgisinternal
UNION ALL
SELECT CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' WHEN 'w' THEN 'window function'
                      ELSE 'function' END,
       format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
       CASE WHEN p.prokind = 'a' THEN pg_get_function_result(p.oid) ELSE pg_get_functiondef(p.oid) END
FROM pg_proc p JOIN ns n ON n.oid = p.pronamespace
WHERE NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
UNION ALL
SELECT CASE t.typtype WHEN 'e' THEN 'enum' WHEN 'd' THEN 'domain' WHEN 'r' THEN 'range' ELSE 'type' END,
       format('%I.%I', n.nspname, t.typname),
       CASE t.typtype
           WHEN 'e' THEN (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)
                          FROM pg_enum e WHERE e.enumtypid = t.oid)
           WHEN 'd' THEN concat_ws(' ', format_type(t.typbasetype, t.typtypmod),
                                   CASE WHEN t.typnotnull THEN 'not null' END,
                                   'default ' || t.typdefault,
                                   (SELECT string_agg(pg_get_constraintdef(k.oid), ' ' ORDER BY k.conname)
                                    FROM pg_constraint k WHERE k.contypid = t.oid))
           WHEN 'r' THEN (SELECT format_type(g.rngsubtype, NULL) FROM pg_range g WHERE g.rngtypid = t.oid)
           ELSE (SELECT string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)), ', '
                                   ORDER BY a.attnum)
                 FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped)
       END
FROM pg_type t JOIN ns n ON n.oid = t.typnamespace
WHERE (t.typtype IN ('e', 'd', 'r')
       OR (t.typtype = 'c' AND (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c'))
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
UNION ALL
SELECT 'extension', quote_ident(e.extname), format('in schema %I', n.nspname)
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname <> 'plpgsql'
UNION ALL
SELECT 'comment on', format('%s %s', o.type, o.identity), d.description
FROM pg_description d, LATERAL pg_identify_object(d.classoid, d.objoid, d.objsubid) o
WHERE (o.schema IN (SELECT nspname FROM ns) OR (o.type = 'schema' AND d.objoid IN (SELECT oid FROM ns)))
  AND NOT (d.classoid = 'pg_class'::regclass AND d.objoid IN (SELECT oid FROM skipped_relations))
"#;
