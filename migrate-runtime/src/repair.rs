//! Changing the history without running migrations: `repair` after a failure or a
//! legitimate edit, and `baseline` for a schema that already exists.

use std::collections::BTreeSet;

use postgres::{Client, SimpleQueryMessage};

use crate::history::{literal, optional_literal, AppliedMigration};
use crate::lock;
use crate::{Error, Migration, Migrator};

/// What [`Migrator::repair`] records about one migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repair {
    /// A `failed` or `running` migration was undone by hand: forget it, so it runs again.
    RolledBack,
    /// A `failed` or `running` migration was completed by hand: record it as applied.
    Applied,
    /// An applied migration's file was edited on purpose (a comment, a harmless fix): record
    /// the binary's checksum for it. Choosing this variant is the explicit confirmation; the
    /// command line asks for `--yes` as well.
    AcceptChecksum,
}

/// Another tool's history that [`Migrator::baseline_from`] can import.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtherTool {
    /// diesel's `__diesel_schema_migrations` (versions map as in the diesel layout).
    Diesel,
    /// sqlx's `_sqlx_migrations` (successful rows only).
    Sqlx,
    /// refinery's `refinery_schema_history`.
    Refinery,
}

impl OtherTool {
    fn table(self) -> &'static str {
        match self {
            OtherTool::Diesel => "__diesel_schema_migrations",
            OtherTool::Sqlx => "_sqlx_migrations",
            OtherTool::Refinery => "refinery_schema_history",
        }
    }

    fn versions_sql(self) -> &'static str {
        match self {
            OtherTool::Diesel => "SELECT version FROM __diesel_schema_migrations",
            OtherTool::Sqlx => "SELECT version FROM _sqlx_migrations WHERE success",
            OtherTool::Refinery => "SELECT version FROM refinery_schema_history",
        }
    }

    fn version(self, text: &str) -> Result<i64, String> {
        match self {
            OtherTool::Diesel => crate::source::diesel_version(text),
            _ => text
                .parse()
                .map_err(|_| format!("`{text}` is not a version")),
        }
    }
}

impl Migrator<'_> {
    /// Records how a stopped migration was resolved by hand, or accepts an edited file's new
    /// checksum. Takes the migration lock; writes one `repair` row to the action log with who
    /// (`applied_by`, default the database user) and `reason`.
    ///
    /// ```no_run
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = &[];
    /// # let mut client: postgres::Client = unimplemented!();
    /// use migrate_runtime::{Migrator, Repair};
    ///
    /// Migrator::new(MIGRATIONS).repair(
    ///     &mut client,
    ///     10,
    ///     Repair::RolledBack,
    ///     "dropped the invalid index by hand",
    /// )?;
    /// # Ok::<(), migrate_runtime::Error>(())
    /// ```
    pub fn repair(
        &self,
        client: &mut Client,
        version: i64,
        repair: Repair,
        reason: &str,
    ) -> Result<(), Error> {
        require_reason(reason)?;
        let (mut locked, applied) =
            lock::acquire(client, &self.tables, self.lock_scope, self.lock_wait)?;
        let row = applied.iter().find(|row| row.version == version);
        let migration = self.migrations.iter().find(|m| m.version() == version);
        let table = self.tables.migrations();
        let change = match (repair, row, migration) {
            (Repair::RolledBack, Some(row), _) if row.status != "applied" => {
                format!("DELETE FROM {table} WHERE version = {version};\n")
            }
            (Repair::Applied, Some(row), Some(migration)) if row.status != "applied" => format!(
                "UPDATE {table} SET status = 'applied', error_message = NULL, checksum = {} WHERE version = {version};\n",
                literal(&migration.checksum().to_string())
            ),
            (Repair::AcceptChecksum, Some(row), Some(migration))
                if row.status == "applied" && row.checksum != migration.checksum().to_string() =>
            {
                format!(
                    "UPDATE {table} SET checksum = {} WHERE version = {version};\n",
                    literal(&migration.checksum().to_string())
                )
            }
            _ => return Err(nothing_to_repair(version, repair, row, migration)),
        };
        let name = row.map_or_else(String::new, |row| row.name.clone());
        let checksum = migration.map(|m| m.checksum().to_string());
        let note = format!("{}: {reason}", describe(repair));
        let action = self.action_sql(version, &name, "repair", checksum.as_deref(), &note);
        locked
            .simple_query(&format!("BEGIN;\n{change}{action}COMMIT;"))
            .map_err(Error::database(format!("repairing migration {version}")))?;
        Ok(())
    }

    /// Records every migration up to and including `version` as applied without running it:
    /// for a database whose schema was built by hand or by another tool. Migrations already
    /// recorded are left alone, and environment-specific ones follow
    /// [`Migrator::environment`]. Returns the versions recorded.
    ///
    /// ```no_run
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = &[];
    /// # let mut client: postgres::Client = unimplemented!();
    /// let recorded = migrate_runtime::Migrator::new(MIGRATIONS)
    ///     .baseline(&mut client, 4, "schema restored from the old system's dump")?;
    /// # Ok::<(), migrate_runtime::Error>(())
    /// ```
    pub fn baseline(
        &self,
        client: &mut Client,
        version: i64,
        reason: &str,
    ) -> Result<Vec<i64>, Error> {
        require_reason(reason)?;
        if !self.migrations.iter().any(|m| m.version() == version) {
            return Err(Error::InvalidSetting(format!(
                "baseline {version}: no migration in this binary has that version"
            )));
        }
        let (mut locked, applied) =
            lock::acquire(client, &self.tables, self.lock_scope, self.lock_wait)?;
        self.check_settled(&applied)?;
        let recorded: BTreeSet<i64> = applied.iter().map(|row| row.version).collect();
        let chosen: Vec<&Migration> = self
            .migrations
            .iter()
            .filter(|m| m.version() <= version && !recorded.contains(&m.version()))
            .filter(|m| self.in_environment(m))
            .collect();
        self.record_baseline(
            &mut locked,
            &chosen,
            &format!("baseline up to {version}: {reason}"),
        )?;
        Ok(chosen.iter().map(|m| m.version()).collect())
    }

    /// Imports another tool's history into an empty history table: records exactly the
    /// versions that tool applied, each of which must be in this binary. Returns them.
    ///
    /// ```no_run
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = &[];
    /// # let mut client: postgres::Client = unimplemented!();
    /// use migrate_runtime::{Migrator, OtherTool};
    ///
    /// let imported = Migrator::new(MIGRATIONS).baseline_from(&mut client, OtherTool::Diesel)?;
    /// # Ok::<(), migrate_runtime::Error>(())
    /// ```
    pub fn baseline_from(&self, client: &mut Client, tool: OtherTool) -> Result<Vec<i64>, Error> {
        let (mut locked, applied) =
            lock::acquire(client, &self.tables, self.lock_scope, self.lock_wait)?;
        if !applied.is_empty() {
            return Err(Error::InvalidSetting(format!(
                "{} already has {} row(s); importing another tool's history needs it empty",
                self.tables.display(),
                applied.len()
            )));
        }
        let messages = locked.simple_query(tool.versions_sql()).map_err(|error| {
            if error.code().is_some_and(|code| code.code() == "42P01") {
                Error::InvalidSetting(format!(
                    "this database has no `{}` table to import",
                    tool.table()
                ))
            } else {
                Error::database(format!("reading {}", tool.table()))(error)
            }
        })?;
        let mut versions = Vec::new();
        for message in &messages {
            if let SimpleQueryMessage::Row(row) = message {
                let text = row.get(0).unwrap_or_default();
                versions
                    .push(tool.version(text).map_err(|why| {
                        Error::InvalidSetting(format!("{}: {why}", tool.table()))
                    })?);
            }
        }
        versions.sort_unstable();
        let missing: Vec<(i64, String)> = versions
            .iter()
            .filter(|v| !self.migrations.iter().any(|m| m.version() == **v))
            .map(|v| (*v, format!("applied by {:?}", tool).to_lowercase()))
            .collect();
        if !missing.is_empty() {
            return Err(Error::MissingFromBinary(missing));
        }
        let chosen: Vec<&Migration> = self
            .migrations
            .iter()
            .filter(|m| versions.binary_search(&m.version()).is_ok())
            .collect();
        self.record_baseline(
            &mut locked,
            &chosen,
            &format!("imported from {}", tool.table()),
        )?;
        Ok(versions)
    }

    fn record_baseline(
        &self,
        client: &mut Client,
        chosen: &[&Migration],
        note: &str,
    ) -> Result<(), Error> {
        if chosen.is_empty() {
            return Ok(());
        }
        let table = self.tables.migrations();
        let applied_by = self.applied_by_sql();
        let mut batch = String::from("BEGIN;\n");
        for migration in chosen {
            let checksum = migration.checksum().to_string();
            batch.push_str(&format!(
                "INSERT INTO {table} (version, name, checksum, applied_by) VALUES ({}, {}, {}, {applied_by});\n",
                migration.version(),
                literal(migration.name()),
                literal(&checksum),
            ));
            batch.push_str(&self.action_sql(
                migration.version(),
                migration.name(),
                "baseline",
                Some(&checksum),
                note,
            ));
        }
        batch.push_str("COMMIT;");
        client
            .simple_query(&batch)
            .map_err(Error::database("recording the baseline"))?;
        Ok(())
    }

    /// An action-log row for an action that ran no SQL of the migration.
    fn action_sql(
        &self,
        version: i64,
        name: &str,
        action: &str,
        checksum: Option<&str>,
        note: &str,
    ) -> String {
        format!(
            "INSERT INTO {} (version, name, action, checksum, started_at, status, executed_by, environment, note) \
             VALUES ({version}, {}, {}, {}, clock_timestamp(), 'success', {}, {}, {});\n",
            self.tables.actions(),
            literal(name),
            literal(action),
            optional_literal(checksum),
            self.applied_by_sql(),
            optional_literal(self.environment_name()),
            literal(note),
        )
    }
}

fn require_reason(reason: &str) -> Result<(), Error> {
    if reason.trim().is_empty() {
        return Err(Error::InvalidSetting(
            "say why: the reason is recorded in the action log".to_owned(),
        ));
    }
    Ok(())
}

fn describe(repair: Repair) -> &'static str {
    match repair {
        Repair::RolledBack => "marked rolled back",
        Repair::Applied => "marked applied",
        Repair::AcceptChecksum => "accepted the edited file's checksum",
    }
}

fn nothing_to_repair(
    version: i64,
    repair: Repair,
    row: Option<&AppliedMigration>,
    migration: Option<&Migration>,
) -> Error {
    let state = match row {
        None => "has no row in the history".to_owned(),
        Some(row) => format!("is `{}`", row.status),
    };
    let why = match (repair, migration) {
        (Repair::Applied | Repair::AcceptChecksum, None) => {
            format!("migration {version} is not in this binary")
        }
        (Repair::AcceptChecksum, Some(_)) if row.is_some_and(|r| r.status == "applied") => {
            format!("migration {version}'s recorded checksum already matches this binary")
        }
        (Repair::AcceptChecksum, _) => format!(
            "migration {version} {state}; only an applied migration's checksum can be accepted"
        ),
        _ => format!(
            "migration {version} {state}; only a `failed` or `running` migration can be marked {}",
            describe(repair).trim_start_matches("marked ")
        ),
    };
    Error::InvalidSetting(format!("nothing to repair: {why}"))
}
