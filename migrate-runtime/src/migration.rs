//! The `Migration` value: one versioned schema change, as embedded by `embed_migrations!` or
//! read from a directory at run time.

use std::borrow::Cow;
use std::time::Duration;

use crate::Checksum;

/// One migration: a version, a name, the SQL to apply it and, optionally, the SQL to revert it.
///
/// Migrations embedded by `migrate_macros::embed_migrations!` borrow everything from the
/// executable's static data, so holding and applying them allocates nothing; migrations read
/// from a directory at run time ([`crate::source::read_dir`]) own their text.
///
/// ```
/// static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
///
/// for migration in MIGRATIONS {
///     println!("{} {} ({})", migration.version(), migration.name(), migration.path());
/// }
/// assert_eq!(MIGRATIONS.len(), 11);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Migration {
    version: i64,
    name: Cow<'static, str>,
    up: Section,
    down: Option<Section>,
    checksum: Checksum,
    requires: Cow<'static, [i64]>,
    /// Lowercased environment names joined with `,`; empty when the migration runs everywhere.
    environments: Cow<'static, str>,
    /// Lint rule ids joined with `,` (`-- migrate:allow`); empty when none.
    allowed_lints: Cow<'static, str>,
    /// `-- migrate:lock-timeout`: this migration's own lock wait, instead of the run's.
    lock_timeout: Option<LockTimeout>,
    /// `-- migrate:phase`: when in a deploy it runs.
    phase: Phase,
    /// `-- migrate:out-of-order ok`: it may be applied below the highest applied version.
    out_of_order: bool,
    /// `-- migrate:replaces`: `version=checksum` of each migration this squash replaces,
    /// joined with `,`; empty when it is not a squash.
    replaces: Cow<'static, str>,
    /// `-- migrate:requires set:version`: `set=version` of each migration of another set this
    /// one needs, joined with `,`.
    requires_sets: Cow<'static, str>,
}

/// When in a deploy a migration runs, from its `-- migrate:phase` directive.
///
/// A rolling deploy runs the old and the new version of a service side by side for a while.
/// Pre-deploy migrations (the default) run before the new version starts and must leave a
/// schema the old version still works with (add a column); post-deploy migrations
/// (`-- migrate:phase post-deploy`) run once the old version is gone (drop the column it still
/// read). [`crate::Migrator::run`] applies pre-deploy migrations; with
/// `Migrator::phase(Phase::PostDeploy)` (`migrate up --phase post-deploy`) it applies the rest.
///
/// ```
/// use migrate_runtime::Phase;
///
/// assert_eq!(Phase::default(), Phase::PreDeploy);
/// assert_eq!(Phase::PostDeploy.as_str(), "post-deploy");
/// assert_eq!(Phase::parse("Post-Deploy"), Some(Phase::PostDeploy));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Phase {
    /// Runs before the new version of the service starts (the default).
    #[default]
    PreDeploy,
    /// Runs after the new version is fully rolled out and the old one is gone.
    PostDeploy,
}

impl Phase {
    /// The spelling used in the directive, tables and JSON: `pre-deploy` or `post-deploy`.
    ///
    /// ```
    /// assert_eq!(migrate_runtime::Phase::PreDeploy.as_str(), "pre-deploy");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::PreDeploy => "pre-deploy",
            Phase::PostDeploy => "post-deploy",
        }
    }

    /// Reads a directive's value (case-insensitively); `None` for anything else.
    ///
    /// ```
    /// use migrate_runtime::Phase;
    /// assert_eq!(Phase::parse("pre-deploy"), Some(Phase::PreDeploy));
    /// assert_eq!(Phase::parse("later"), None);
    /// ```
    pub fn parse(text: &str) -> Option<Phase> {
        [Phase::PreDeploy, Phase::PostDeploy]
            .into_iter()
            .find(|phase| phase.as_str().eq_ignore_ascii_case(text))
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A migration's own lock wait, from its `-- migrate:lock-timeout` directive; it replaces the
/// run's lock timeout (see [`crate::Migrator::lock_timeout`]) for that migration.
///
/// ```
/// use std::time::Duration;
/// use migrate_runtime::LockTimeout;
///
/// // `-- migrate:lock-timeout 30s` on a migration that may wait longer for its table:
/// let wait = LockTimeout::After(Duration::from_secs(30));
/// assert_ne!(wait, LockTimeout::Off);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockTimeout {
    /// `-- migrate:lock-timeout off`: wait for locks as long as it takes (a backfill that must
    /// not give up, on a table the application can do without for a while).
    Off,
    /// `-- migrate:lock-timeout 30s`: give up waiting for a lock after this long (then the
    /// run retries the migration's transaction, as with the run's own timeout).
    After(Duration),
}

impl Migration {
    /// Used by the code `embed_migrations!` generates; not a stable API.
    #[doc(hidden)]
    pub const fn __embedded(parts: EmbeddedMigration) -> Migration {
        Migration {
            version: parts.version,
            name: Cow::Borrowed(parts.name),
            up: Section::__embedded(parts.up),
            down: match parts.down {
                Some(down) => Some(Section::__embedded(down)),
                None => None,
            },
            checksum: parts.checksum,
            requires: Cow::Borrowed(parts.requires),
            environments: Cow::Borrowed(parts.environments),
            allowed_lints: Cow::Borrowed(parts.allowed_lints),
            lock_timeout: parts.lock_timeout,
            phase: parts.phase,
            out_of_order: parts.out_of_order,
            replaces: Cow::Borrowed(parts.replaces),
            requires_sets: Cow::Borrowed(parts.requires_sets),
        }
    }

    // One argument per field, in field order: a struct would only repeat the same list.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn owned(
        version: i64,
        name: String,
        up: Section,
        down: Option<Section>,
        checksum: Checksum,
        requires: Vec<i64>,
        environments: Vec<String>,
        allowed_lints: Vec<String>,
        lock_timeout: Option<LockTimeout>,
        phase: Phase,
        out_of_order: bool,
        replaces: Vec<(i64, String)>,
        requires_sets: Vec<(String, i64)>,
    ) -> Migration {
        Migration {
            version,
            name: Cow::Owned(name),
            checksum,
            up,
            down,
            requires: Cow::Owned(requires),
            environments: Cow::Owned(environments.join(",")),
            allowed_lints: Cow::Owned(allowed_lints.join(",")),
            lock_timeout,
            phase,
            out_of_order,
            replaces: Cow::Owned(
                replaces
                    .iter()
                    .map(|(version, checksum)| format!("{version}={checksum}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            requires_sets: Cow::Owned(
                requires_sets
                    .iter()
                    .map(|(set, version)| format!("{set}={version}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        }
    }

    /// The version: the file name's number, read as an integer (see the [file format guide](crate::guide::file_format) for how
    /// diesel's dashed timestamps map to integers).
    ///
    /// ```
    /// static MIGRATIONS: &[migrate_runtime::Migration] =
    ///     migrate_macros::embed_migrations!("../migrations");
    ///
    /// let newest = MIGRATIONS.last().map(|m| m.version());
    /// assert_eq!(newest, Some(11)); // 011_create_lancio_org.sql
    /// ```
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The name part of the file name, e.g. `create_users` for `001_create_users.sql`.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// let migration = &MIGRATIONS[0]; // 001_create_users.sql
    /// assert_eq!(migration.name(), "create_users");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file holding the UP section, relative to the crate root (or to the directory given
    /// at run time), with `/` separators.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// let migration = &MIGRATIONS[0];
    /// println!("applying {}", migration.path());
    /// assert_eq!(migration.path(), "../migrations/001_create_users.sql");
    /// ```
    pub fn path(&self) -> &str {
        self.up.path()
    }

    /// The SQL that applies the migration.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// let migration = &MIGRATIONS[0];
    /// println!("{}", migration.up().sql());
    /// assert!(migration.up().sql().starts_with("CREATE TABLE users"));
    /// ```
    pub fn up(&self) -> &Section {
        &self.up
    }

    /// The SQL that reverts the migration; `None` when it is irreversible (no DOWN section, or
    /// an empty one).
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// for migration in MIGRATIONS {
    ///     if migration.down().is_none() {
    ///         eprintln!("{} cannot be reverted", migration.path());
    ///     }
    /// }
    /// let down = MIGRATIONS[0].down().expect("001_create_users.sql has a DOWN section");
    /// assert!(down.sql().contains("DROP TABLE"));
    /// ```
    pub fn down(&self) -> Option<&Section> {
        self.down.as_ref()
    }

    /// The checksum recorded when the migration is applied (see [`Checksum`]).
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// let migration = &MIGRATIONS[0];
    /// println!("{} {}", migration.version(), migration.checksum());
    /// // Different UP sections, different checksums.
    /// assert_ne!(migration.checksum(), MIGRATIONS[1].checksum());
    /// ```
    pub fn checksum(&self) -> Checksum {
        self.checksum
    }

    /// Versions named by `-- migrate:requires`: each exists and is lower than this one.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// let migration = &MIGRATIONS[3]; // 004_create_invoices.sql: `-- migrate:requires 001, 003`
    /// for version in migration.requires() {
    ///     println!("{} needs {version}", migration.version());
    /// }
    /// assert_eq!(migration.requires(), [1, 3]);
    /// ```
    pub fn requires(&self) -> &[i64] {
        &self.requires
    }

    /// Environments named by `-- migrate:env`, lowercased; empty when the migration applies in
    /// every environment.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// let migration = &MIGRATIONS[10]; // 011_create_lancio_org.sql: `-- migrate:env production`
    /// let production_only = migration.environments().eq(["production"]);
    /// assert!(production_only);
    /// assert_eq!(MIGRATIONS[0].environments().count(), 0); // applies everywhere
    /// ```
    pub fn environments(&self) -> impl Iterator<Item = &str> {
        self.environments.split(',').filter(|name| !name.is_empty())
    }

    /// The lint rules this migration allows (`-- migrate:allow`; see [`crate::source::lint`]).
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// let drops_on_purpose = MIGRATIONS[0].allowed_lints().any(|rule| rule == "destructive");
    /// assert!(!drops_on_purpose); // 001_create_users.sql has no `-- migrate:allow destructive`
    /// ```
    pub fn allowed_lints(&self) -> impl Iterator<Item = &str> {
        self.allowed_lints
            .split(',')
            .filter(|name| !name.is_empty())
    }

    /// Its own lock wait (`-- migrate:lock-timeout`), when it has one.
    ///
    /// ```
    /// use migrate_runtime::LockTimeout;
    /// use std::time::Duration;
    ///
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/valid/lock_timeouts");
    /// // 003_backfill.sql says `-- migrate:lock-timeout off`.
    /// let migration = &MIGRATIONS[2];
    /// if migration.lock_timeout() == Some(LockTimeout::Off) {
    ///     println!("{} waits for its locks as long as it takes", migration.path());
    /// }
    /// assert_eq!(migration.lock_timeout(), Some(LockTimeout::Off));
    /// // 002_may_wait_longer.sql says `-- migrate:lock-timeout 30s`; the first says nothing.
    /// assert_eq!(MIGRATIONS[1].lock_timeout(), Some(LockTimeout::After(Duration::from_secs(30))));
    /// assert_eq!(MIGRATIONS[0].lock_timeout(), None);
    /// ```
    pub fn lock_timeout(&self) -> Option<LockTimeout> {
        self.lock_timeout
    }

    /// When in a deploy it runs (`-- migrate:phase`; [`Phase::PreDeploy`] by default).
    ///
    /// ```no_run
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = &[];
    /// use migrate_runtime::Phase;
    /// let later = MIGRATIONS.iter().filter(|m| m.phase() == Phase::PostDeploy).count();
    /// println!("{later} migration(s) wait for `migrate up --phase post-deploy`");
    /// ```
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether it may be applied below the highest applied version
    /// (`-- migrate:out-of-order ok`), as if [`crate::Migrator::allow_out_of_order`] were on
    /// for it alone.
    ///
    /// ```
    /// fn show(migration: &migrate_runtime::Migration) {
    ///     if migration.allows_out_of_order() {
    ///         println!("{} may land below newer migrations", migration.path());
    ///     }
    /// }
    /// ```
    pub fn allows_out_of_order(&self) -> bool {
        self.out_of_order
    }

    /// The migrations this squash replaces (`-- migrate:replaces`), each as its version and
    /// the checksum it was applied with; empty when it is not a squash (see the squash guide).
    ///
    /// ```
    /// fn show(migration: &migrate_runtime::Migration) {
    ///     for (version, checksum) in migration.replaces() {
    ///         println!("{} stands for {version} ({checksum})", migration.version());
    ///     }
    /// }
    /// ```
    pub fn replaces(&self) -> impl Iterator<Item = (i64, &str)> {
        self.replaces.split(',').filter_map(|entry| {
            let (version, checksum) = entry.split_once('=')?;
            Some((version.parse().ok()?, checksum))
        })
    }

    /// Migrations of other sets this one needs (`-- migrate:requires queue:3`), as set name
    /// and version; see [`crate::MigrationSet`].
    ///
    /// ```
    /// # static APP: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/valid/sets/app");
    /// let migration = &APP[1]; // `-- migrate:requires queue:2`
    /// for (set, version) in migration.requires_sets() {
    ///     println!("{} needs {set}:{version}", migration.version());
    /// }
    /// assert_eq!(migration.requires_sets().collect::<Vec<_>>(), [("queue", 2)]);
    /// ```
    pub fn requires_sets(&self) -> impl Iterator<Item = (&str, i64)> {
        self.requires_sets.split(',').filter_map(|entry| {
            let (set, version) = entry.split_once('=')?;
            Some((set, version.parse().ok()?))
        })
    }

    /// Whether the migration applies in `environment` (compared case-insensitively).
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// let migration = &MIGRATIONS[10]; // 011_create_lancio_org.sql: `-- migrate:env production`
    /// if !migration.applies_in("staging") {
    ///     println!("skipping {} in staging", migration.path());
    /// }
    /// assert!(!migration.applies_in("staging"));
    /// assert!(migration.applies_in("Production"));
    /// ```
    pub fn applies_in(&self, environment: &str) -> bool {
        self.environments.is_empty()
            || self
                .environments()
                .any(|name| name.eq_ignore_ascii_case(environment))
    }
}

/// Which way a migration runs.
#[cfg(feature = "runtime")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Its UP section: the migration becomes applied.
    Up,
    /// Its DOWN section: the migration is reverted and forgotten.
    Down,
}

#[cfg(feature = "runtime")]
impl Migration {
    /// The section that runs in `direction` (`None`: going down, it has no DOWN).
    pub(crate) fn section(&self, direction: Direction) -> Option<&Section> {
        match direction {
            Direction::Up => Some(self.up()),
            Direction::Down => self.down(),
        }
    }
}

/// The parts of an embedded migration, named so that the code `embed_migrations!` generates
/// is checked field by field by the compiler. Not a stable API.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct EmbeddedMigration {
    pub version: i64,
    pub name: &'static str,
    pub up: EmbeddedSection,
    pub down: Option<EmbeddedSection>,
    pub checksum: Checksum,
    pub requires: &'static [i64],
    /// Lowercased environment names joined with `,`.
    pub environments: &'static str,
    /// Lint rule ids joined with `,`.
    pub allowed_lints: &'static str,
    /// `-- migrate:lock-timeout`.
    pub lock_timeout: Option<LockTimeout>,
    /// `-- migrate:phase`.
    pub phase: Phase,
    /// `-- migrate:out-of-order ok`.
    pub out_of_order: bool,
    /// `-- migrate:replaces`: `version=checksum` joined with `,`.
    pub replaces: &'static str,
    /// `-- migrate:requires set:version`: `set=version` joined with `,`.
    pub requires_sets: &'static str,
}

/// The parts of an embedded section (see [`EmbeddedMigration`]). Not a stable API.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct EmbeddedSection {
    pub path: &'static str,
    pub line: u32,
    pub transactional: bool,
    pub sql: &'static str,
    /// Why it runs outside a transaction, when that was inferred (imported layouts).
    pub inferred: Option<&'static str>,
}

/// The UP or DOWN part of a migration: the SQL to run, where it came from and how to run it.
///
/// ```
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// let migration = &MIGRATIONS[9]; // 010_add_concurrent_indexes.sql: `-- migrate:no-transaction`
/// let up = migration.up();
/// println!("{}:{} ({} transaction)", up.path(), up.line(),
///     if up.is_transactional() { "in a" } else { "outside any" });
/// assert!(!up.is_transactional());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    path: Cow<'static, str>,
    line: u32,
    transactional: bool,
    sql: Cow<'static, str>,
    inferred: Option<Cow<'static, str>>,
}

impl Section {
    /// Used by the code `embed_migrations!` generates; not a stable API.
    #[doc(hidden)]
    pub const fn __embedded(parts: EmbeddedSection) -> Section {
        Section {
            path: Cow::Borrowed(parts.path),
            line: parts.line,
            transactional: parts.transactional,
            sql: Cow::Borrowed(parts.sql),
            inferred: match parts.inferred {
                Some(why) => Some(Cow::Borrowed(why)),
                None => None,
            },
        }
    }

    pub(crate) fn owned(
        path: String,
        line: u32,
        transactional: bool,
        sql: String,
        inferred: Option<String>,
    ) -> Section {
        Section {
            path: Cow::Owned(path),
            line,
            transactional,
            sql: Cow::Owned(sql),
            inferred: inferred.map(Cow::Owned),
        }
    }

    /// The SQL sent to the server. A `BEGIN; ... COMMIT;` wrapper around the whole section has
    /// been removed, since the runner provides the transaction.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// let section = MIGRATIONS[0].up();
    /// assert!(!section.sql().trim().is_empty());
    /// assert!(section.sql().contains("CREATE TABLE users"));
    /// ```
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The file the section comes from, relative to the crate root.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// let section = MIGRATIONS[0].up();
    /// assert!(section.path().ends_with("001_create_users.sql"));
    /// ```
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The 1-based line of the file on which the first character of [`Section::sql`] stands.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// // 001_create_users.sql: `-- migrate:up` on line 4, the SQL starts on line 5.
    /// let section = MIGRATIONS[0].up();
    /// assert_eq!(section.line(), 5);
    /// ```
    pub fn line(&self) -> u32 {
        self.line
    }

    /// `false` for `-- migrate:no-transaction` (and the other tools' equivalents): the
    /// statements run one by one, each outside any transaction.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// let section = MIGRATIONS[9].up(); // 010_add_concurrent_indexes.sql: `-- migrate:no-transaction`
    /// let mode = if section.is_transactional() { "transaction" } else { "statement by statement" };
    /// assert_eq!(mode, "statement by statement");
    /// assert!(MIGRATIONS[0].up().is_transactional());
    /// ```
    pub fn is_transactional(&self) -> bool {
        self.transactional
    }

    /// Why the section runs outside a transaction when nobody said so: in the layouts taken
    /// from other tools (up/down pairs, diesel directories), a section holding a statement
    /// PostgreSQL refuses in a transaction block, or managing its own transactions, runs as
    /// its tool ran it. `None` when it was said (or it runs in a transaction).
    ///
    /// ```
    /// // A golang-migrate style up/down pair: `2_index-accounts.up.sql` runs
    /// // `CREATE INDEX CONCURRENTLY`, which PostgreSQL refuses in a transaction block.
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/valid/updown");
    /// let section = MIGRATIONS[1].up();
    /// if let Some(why) = section.inferred_no_transaction() {
    ///     println!("{}: inferred: no transaction ({why})", section.path());
    /// }
    /// assert!(!section.is_transactional());
    /// # assert!(section.path().ends_with("2_index-accounts.up.sql"));
    /// ```
    pub fn inferred_no_transaction(&self) -> Option<&str> {
        self.inferred.as_deref()
    }

    /// Maps a position in [`Section::sql`] (a 1-based character count, as in PostgreSQL's
    /// error `position` field) to a 1-based line and column in the file.
    ///
    /// ```
    /// use migrate_runtime::Section;
    /// # let section = Section::__embedded(migrate_runtime::EmbeddedSection {
    /// #     path: "m/001_a.sql", line: 3, transactional: true, sql: "SELECT 1;\nSELEC 2;", inferred: None,
    /// # });
    /// // A server error at character 11 of that SQL is at line 4, column 1 of the file.
    /// assert_eq!(section.file_position(11), (4, 1));
    /// ```
    pub fn file_position(&self, character: usize) -> (u32, u32) {
        let (mut line, mut column) = (self.line, 1);
        for c in self.sql.chars().take(character.saturating_sub(1)) {
            if c == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        (line, column)
    }
}
