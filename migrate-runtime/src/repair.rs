//! Changing the history without running migrations: `repair` after a failure or a
//! legitimate edit, and `baseline` for a schema that already exists.

use std::collections::BTreeSet;

use postgres::{Client, SimpleQueryMessage};

use crate::history::foreign::{Recognised, Shape};
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
            OtherTool::Dbmate | OtherTool::Rails => "SELECT version FROM schema_migrations",
            OtherTool::GolangMigrate => "SELECT version, dirty FROM schema_migrations",
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

    /// Whether a table of `found`'s shape can be read as this tool's: dbmate's and Rails'
    /// tables are the same (a text `version` per applied migration).
    fn reads(self, found: Recognised) -> bool {
        let text_versions = |tool| matches!(tool, OtherTool::Dbmate | OtherTool::Rails);
        match found {
            Recognised::Tool(found) => {
                found == self || (text_versions(found) && text_versions(self))
            }
            Recognised::Ours | Recognised::Unknown => false,
        }
    }
}

impl Migrator<'_> {
    /// Records how a stopped migration was resolved by hand, or accepts an edited file's new
    /// checksum. Takes the migration lock; writes one `repair` row to the action log with who
    /// (`applied_by`, default the database user) and `reason`.
    ///
    /// ```
    /// use migrate_runtime::{MigrationStatus, Migrator, Repair};
    ///
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// # Migrator::new(&MIGRATIONS[..9]).run(&mut client)?;
    /// # client.batch_execute("ALTER TABLE contracts RENAME COLUMN status TO state")?;
    /// let migrator = Migrator::new(MIGRATIONS);
    /// // Migration 10 (no transaction) fails on its second index: a column was renamed.
    /// assert!(migrator.run(&mut client).is_err());
    /// assert_eq!(migrator.applied(&mut client)?[9].status, MigrationStatus::Failed);
    /// // Fixed by hand; what the migration did so far is dropped too.
    /// client.batch_execute("ALTER TABLE contracts RENAME COLUMN state TO status;
    ///                       DROP INDEX invoices_status_due_on_idx")?;
    /// migrator.repair(
    ///     &mut client,
    ///     10,
    ///     Repair::RolledBack,
    ///     "dropped the invalid index by hand",
    /// )?;
    /// // It runs again.
    /// assert_eq!(migrator.run(&mut client)?.applied[0].version, 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
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
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// let migrator = migrate_runtime::Migrator::new(MIGRATIONS);
    /// let recorded = migrator.baseline(&mut client, 4, "schema restored from the old system's dump")?;
    /// assert_eq!(recorded, [1, 2, 3, 4]);
    /// // The next run starts at 5.
    /// assert_eq!(migrator.plan(&mut client)?.pending[0].version(), 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
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
    /// versions that tool applied, each of which must be in this binary (golang-migrate keeps
    /// only its latest version: every migration up to it is recorded, and a `dirty` history
    /// is refused). Returns them. dbmate's, Rails' and golang-migrate's `schema_migrations`
    /// is this runtime's default history table name: give ours another
    /// ([`Migrator::history_table`]) to import one.
    ///
    /// ```
    /// use migrate_runtime::{Migrator, OtherTool};
    ///
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// // The database was migrated by sqlx so far, up to version 2.
    /// client.batch_execute(
    ///     "CREATE TABLE _sqlx_migrations (version bigint PRIMARY KEY, description text NOT NULL,
    ///          installed_on timestamptz NOT NULL DEFAULT now(), success boolean NOT NULL,
    ///          checksum bytea NOT NULL, execution_time bigint NOT NULL);
    ///      INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
    ///      VALUES (1, 'create users', true, '', 5), (2, 'create roles', true, '', 3)",
    /// )?;
    /// let imported = Migrator::new(MIGRATIONS).baseline_from(&mut client, OtherTool::Sqlx)?;
    /// assert_eq!(imported, [1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn baseline_from(&self, client: &mut Client, tool: OtherTool) -> Result<Vec<i64>, Error> {
        let (mut run, applied) = Run::start(client, &self.settings, self.observer)?;
        if !applied.is_empty() {
            return Err(Error::HistoryNotEmpty {
                table: self.settings.tables.display(),
                rows: applied.len(),
            });
        }
        if tool.table() == "schema_migrations" {
            // Our own default name: make sure it is the other tool's table that is read.
            let shape = Shape::of(&mut run.client, tool.table(), None)
                .map_err(Error::database(format!("reading {}", tool.table())))?
                .ok_or(Error::NoOtherHistory { tool })?;
            if !tool.reads(shape.recognise()) {
                return Err(Error::UnreadableOtherHistory {
                    tool,
                    why: format!(
                        "it does not have {}'s columns (it has: {})",
                        tool.name(),
                        shape.describe().join(", ")
                    ),
                });
            }
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
                let version = tool
                    .version(text)
                    .map_err(|why| Error::UnreadableOtherHistory { tool, why })?;
                if tool == OtherTool::GolangMigrate && row.get(1) == Some("t") {
                    return Err(Error::OtherHistoryDirty { version });
                }
                versions.push(version);
            }
        }
        if tool == OtherTool::GolangMigrate {
            // golang-migrate keeps only the latest version: everything up to it was applied.
            if let Some(&latest) = versions.iter().max() {
                if !self.migrations.iter().any(|m| m.version() == latest) {
                    return Err(Error::MissingFromBinary(vec![(
                        latest,
                        "applied by golang-migrate".to_owned(),
                    )]));
                }
                versions = self
                    .migrations
                    .iter()
                    .map(Migration::version)
                    .filter(|version| *version <= latest)
                    .collect();
            }
        }
        versions.sort_unstable();
        let missing: Vec<(i64, String)> = versions
            .iter()
            .filter(|v| !self.migrations.iter().any(|m| m.version() == **v))
            .map(|v| (*v, format!("applied by {}", tool.name())))
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
