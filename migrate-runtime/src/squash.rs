//! `Migrator::squash`: one baseline migration equivalent to a history's first migrations,
//! built by replaying them on a throwaway server and dumping what they left.

use std::collections::BTreeMap;
use std::path::Path;

use crate::testing::{TestServer, TestServerError};
use crate::{Error, Migration, Migrator};

/// What [`Migrator::squash`] wrote: the squash file's name and text, and what it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Squash {
    /// The squash's version: the highest one it replaces.
    pub version: i64,
    /// Its file name, e.g. `011_squashed.sql` (the version as the replaced file spelled it).
    pub file_name: String,
    /// The file's text: the `-- migrate:replaces` lines, then the schema and data.
    pub text: String,
    /// The replaced migrations' versions, in order.
    pub replaced: Vec<i64>,
    /// The replaced migrations' files (UP and separate DOWN files), to delete.
    pub files: Vec<String>,
    /// Rows the replayed migrations left in each table, carried as `INSERT`s.
    pub carried_rows: Vec<(String, usize)>,
    /// What the squash does not carry (privileges, as the `GRANT`/`REVOKE` statements).
    pub not_carried: Vec<String>,
}

/// `SET` lines of pg_dump that would bound or change the migration's own session settings.
const DROPPED_SETTINGS: [&str; 4] = [
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "transaction_timeout",
];

impl Migrator<'_> {
    /// Builds the squash of this migrator's migrations up to and including `through`: they
    /// are applied to a new database on `server`, which `pg_dump` (from the server's own
    /// binary directory) then dumps, schema and rows, without the history tables, owners or
    /// privileges. The text starts with one `-- migrate:replaces <version> <checksum>` line
    /// per replaced migration. Nothing is written: the caller (`migrate squash`) writes
    /// [`Squash::text`] and deletes [`Squash::files`].
    ///
    /// ```
    /// use migrate_runtime::testing::TestServer;
    /// use migrate_runtime::Migrator;
    ///
    /// static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/valid/phases/new");
    ///
    /// let squash = Migrator::new(MIGRATIONS).squash(TestServer::shared(), 3)?;
    /// assert_eq!(squash.file_name, "003_squashed.sql");
    /// assert_eq!(squash.replaced, [1, 2, 3]);
    /// assert!(squash.text.starts_with("-- migrate:replaces 001 sha256:"));
    /// assert!(squash.text.contains("CREATE TABLE public.users"));
    /// # Ok::<(), migrate_runtime::Error>(())
    /// ```
    pub fn squash(&self, server: &TestServer, through: i64) -> Result<Squash, Error> {
        let last = self
            .migrations
            .iter()
            .find(|m| m.version() == through)
            .ok_or_else(|| Error::CannotSquash {
                version: through,
                reason: "no migration has that version; name the highest version the squash replaces, as `migrate status` lists it".to_owned(),
            })?;
        let replaced: Vec<&Migration> = self
            .migrations
            .iter()
            .filter(|m| m.version() <= through)
            .collect();
        // A migration of some environments only is in some databases and not others: one
        // squash cannot stand for it everywhere.
        if let Some(m) = replaced.iter().find(|m| m.environments().next().is_some()) {
            return Err(Error::CannotSquash {
                version: through,
                reason: format!(
                    "`{}` applies only in some environments (`-- migrate:env`), so no one squash stands for it in every database; squash through a version below {}",
                    m.path(),
                    m.version()
                ),
            });
        }
        let database = server.create_database().map_err(Error::from)?;
        let mut client = database.client().map_err(Error::from)?;
        self.clone()
            .quiet()
            .target(through)
            .phase(crate::Phase::PostDeploy)
            .run(&mut client)?;
        let (schema, table) = self.settings.tables.names();
        let history = format!("{schema}.{table}");
        let actions = format!("{schema}.{table}_history");
        let dump = |args: &[&str]| -> Result<String, Error> {
            let mut all = vec![
                "--no-owner",
                "--no-tablespaces",
                "--exclude-table",
                &history,
                "--exclude-table",
                &actions,
            ];
            all.extend_from_slice(args);
            server
                .pg_dump(database.name(), &all)
                .map_err(Error::from)?
                .ok_or_else(|| {
                    Error::from(TestServerError::Command {
                        program: "pg_dump".to_owned(),
                        output: format!(
                            "not found in {}, beside the server binaries; install the PostgreSQL client programs of the same version (e.g. `apt-get install postgresql-client`), or set PG_BIN to a directory holding both",
                            server.bin_dir().display()
                        ),
                    })
                })
        };
        let body = dump(&["--no-privileges", "--inserts"])?;
        let privileges: Vec<String> = dump(&["--schema-only"])?
            .lines()
            .filter(|line| line.starts_with("GRANT ") || line.starts_with("REVOKE "))
            .map(str::to_owned)
            .collect();
        let (sql, carried_rows) = clean(&body);
        let prefix = version_prefix(last, through)?;
        let mut text = String::new();
        for migration in &replaced {
            text.push_str(&format!(
                "-- migrate:replaces {} {}\n",
                version_prefix(migration, through)?,
                migration.checksum()
            ));
        }
        let first = replaced.first().map_or(through, |m| m.version());
        text.push_str(&format!(
            "-- Squash of migrations {first}..={through}, written by `migrate squash --through {through}` from a replay\n\
             -- on a throwaway server dumped with pg_dump. A database that applied all of them records it\n\
             -- without running it; a fresh database runs it instead of them.\n"
        ));
        for (table, rows) in &carried_rows {
            text.push_str(&format!("-- carried: {rows} row(s) of {table}\n"));
        }
        for statement in &privileges {
            text.push_str(&format!("-- not carried (privileges): {statement}\n"));
        }
        let down = combined_down(&replaced);
        if let Err(why) = &down {
            text.push_str(&format!("-- no DOWN: {why}\n"));
        }
        text.push('\n');
        if let Ok(down) = &down {
            // With a DOWN the sections need their markers; without one the file stays as
            // `migrate squash` always wrote it.
            text.push_str("-- migrate:up\n");
            text.push_str(sql.trim_start());
            text.push_str("\n-- migrate:down\n");
            text.push_str(down);
        } else {
            text.push_str(sql.trim_start());
        }
        let mut files = Vec::new();
        for migration in &replaced {
            files.push(migration.path().to_owned());
            if let Some(down) = migration
                .down()
                .filter(|down| down.path() != migration.path())
            {
                files.push(down.path().to_owned());
            }
        }
        Ok(Squash {
            version: through,
            file_name: format!("{prefix}_squashed.sql"),
            text,
            replaced: replaced.iter().map(|m| m.version()).collect(),
            files,
            carried_rows,
            not_carried: privileges,
        })
    }
}

/// The DOWN of a squash: the replaced migrations' DOWN sections, newest first, so that rolling
/// the squash back undoes what each of them did in the order `down` would have, in one
/// transaction. `Err` says why there is none: a replaced migration without a DOWN, or with one
/// that must run outside a transaction (it cannot share the squash's).
fn combined_down(replaced: &[&Migration]) -> Result<String, String> {
    let mut down = String::new();
    for migration in replaced.iter().rev() {
        let Some(section) = migration.down() else {
            return Err(format!(
                "`{}` has none, so rolling the squash back cannot be written",
                migration.path()
            ));
        };
        if !section.is_transactional() {
            return Err(format!(
                "`{}` rolls back outside a transaction, which the squash's one DOWN section cannot",
                migration.path()
            ));
        }
        down.push_str(&format!("-- from {}\n", migration.path()));
        down.push_str(section.sql().trim());
        down.push_str("\n\n");
    }
    Ok(down)
}

/// The version as the migration's file name spells it (`003` for `003_add_x.sql`).
fn version_prefix(migration: &Migration, through: i64) -> Result<String, Error> {
    let file = Path::new(migration.path())
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default();
    match file.split_once('_') {
        Some((prefix, rest))
            if prefix.bytes().all(|b| b.is_ascii_digit())
                && rest.ends_with(".sql")
                && !rest.ends_with(".up.sql") =>
        {
            Ok(prefix.to_owned())
        }
        _ => Err(Error::CannotSquash {
            version: through,
            reason: format!(
                "`{}` is not a single-file migration (`<version>_<name>.sql`): squash writes and replaces that layout only",
                migration.path()
            ),
        }),
    }
}

/// pg_dump's text as a migration: no psql meta-commands, session settings made local to the
/// migration's transaction (timeouts left to the runner), and the rows it inserts per table.
fn clean(dump: &str) -> (String, Vec<(String, usize)>) {
    let mut sql = String::new();
    let mut rows: BTreeMap<String, usize> = BTreeMap::new();
    for line in dump.lines() {
        if line.starts_with('\\') {
            continue;
        }
        if let Some(setting) = line.strip_prefix("SET ") {
            let name = setting.split_whitespace().next().unwrap_or_default();
            if !DROPPED_SETTINGS.contains(&name) {
                sql.push_str("SET LOCAL ");
                sql.push_str(setting);
                sql.push('\n');
            }
            continue;
        }
        if line.starts_with("SELECT pg_catalog.set_config(") {
            sql.push_str(&line.replace(", false);", ", true);"));
            sql.push('\n');
            continue;
        }
        if let Some(rest) = line.strip_prefix("INSERT INTO ") {
            let table = rest.split([' ', '(']).next().unwrap_or_default();
            *rows.entry(table.to_owned()).or_default() += 1;
        }
        sql.push_str(line);
        sql.push('\n');
    }
    (sql, rows.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dump_becomes_a_migration_whose_settings_stay_in_its_transaction() {
        let dump = "\\restrict abc\nSET statement_timeout = 0;\nSET client_encoding = 'UTF8';\nSELECT pg_catalog.set_config('search_path', '', false);\nCREATE TABLE public.t (id int);\nINSERT INTO public.t VALUES (1);\nINSERT INTO public.t VALUES (2);\n\\unrestrict abc\n";
        let (sql, rows) = clean(dump);
        assert_eq!(
            sql,
            "SET LOCAL client_encoding = 'UTF8';\nSELECT pg_catalog.set_config('search_path', '', true);\nCREATE TABLE public.t (id int);\nINSERT INTO public.t VALUES (1);\nINSERT INTO public.t VALUES (2);\n"
        );
        assert_eq!(rows, [("public.t".to_owned(), 2)]);
    }
}
