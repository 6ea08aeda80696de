//! Changing the history without running migrations: `repair` after a failure or a
//! legitimate edit, and `baseline` for a schema that already exists.

use std::collections::BTreeSet;

use postgres::{Client, SimpleQueryMessage};

use crate::history::{AppliedMigration, RepairChange};
use crate::plan;
use crate::run::Run;
use crate::terms::{MigrationStatus, OtherTool, Repair};
use crate::{Error, Migration, Migrator};

impl OtherTool {
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
        let (mut run, applied) = Run::start(client, &self.settings, self.observer)?;
        let row = applied.iter().find(|row| row.version == version);
        let migration = self.migrations.iter().find(|m| m.version() == version);
        let checksum = migration.map(|m| m.checksum().to_string());
        if let (Repair::AcceptChecksum, Some(row), Some(migration)) = (repair, row, migration) {
            if row.name != migration.name() && !migration.checksum().matches(&row.checksum) {
                // Not an edit: another migration under the same version. Accepting its
                // checksum would record it as applied without running it.
                return Err(plan::version_conflict(row, migration));
            }
        }
        let unfinished = row.is_some_and(|row| row.status != MigrationStatus::Applied);
        let change = match (repair, row, checksum.as_deref()) {
            (Repair::RolledBack, Some(_), _) if unfinished => RepairChange::Forget,
            (Repair::Applied, Some(_), Some(checksum)) if unfinished => {
                RepairChange::MarkApplied(checksum)
            }
            (Repair::AcceptChecksum, Some(row), Some(checksum))
                if row.status == MigrationStatus::Applied && row.checksum != checksum =>
            {
                RepairChange::AcceptChecksum(checksum)
            }
            _ => return Err(nothing_to_repair(version, repair, row, migration)),
        };
        let name = row.map_or_else(String::new, |row| row.name.clone());
        let note = format!("{}: {reason}", describe(repair));
        let sql =
            self.settings
                .recorder()
                .repair(version, &name, change, checksum.as_deref(), &note);
        run.client
            .simple_query(&sql)
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
            return Err(Error::UnknownVersion { version });
        }
        let (mut run, applied) = Run::start(client, &self.settings, self.observer)?;
        plan::check_settled(self.migrations, &applied)?;
        let recorded: BTreeSet<i64> = applied.iter().map(|row| row.version).collect();
        let chosen: Vec<&Migration> = self
            .migrations
            .iter()
            .filter(|m| m.version() <= version && !recorded.contains(&m.version()))
            .filter(|m| self.settings.in_environment(m))
            .collect();
        self.record_baseline(
            &mut run,
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
        let (mut run, applied) = Run::start(client, &self.settings, self.observer)?;
        if !applied.is_empty() {
            return Err(Error::HistoryNotEmpty {
                table: self.settings.tables.display(),
                rows: applied.len(),
            });
        }
        let messages = run
            .client
            .simple_query(tool.versions_sql())
            .map_err(|error| {
                if error.code().is_some_and(|code| code.code() == "42P01") {
                    Error::NoOtherHistory { tool }
                } else {
                    Error::database(format!("reading {}", tool.table()))(error)
                }
            })?;
        let mut versions = Vec::new();
        for message in &messages {
            if let SimpleQueryMessage::Row(row) = message {
                let text = row.get(0).unwrap_or_default();
                versions.push(
                    tool.version(text)
                        .map_err(|why| Error::UnreadableOtherHistory { tool, why })?,
                );
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
            &mut run,
            &chosen,
            &format!("imported from {}", tool.table()),
        )?;
        Ok(versions)
    }

    fn record_baseline(
        &self,
        run: &mut Run<'_, '_>,
        chosen: &[&Migration],
        note: &str,
    ) -> Result<(), Error> {
        if chosen.is_empty() {
            return Ok(());
        }
        let sql = run.recorder().baseline(chosen, note);
        run.client
            .simple_query(&sql)
            .map_err(Error::database("recording the baseline"))?;
        Ok(())
    }
}

fn require_reason(reason: &str) -> Result<(), Error> {
    if reason.trim().is_empty() {
        return Err(Error::ReasonRequired);
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
    Error::NothingToRepair {
        version,
        repair,
        status: row.map(|row| row.status),
        in_binary: migration.is_some(),
    }
}
