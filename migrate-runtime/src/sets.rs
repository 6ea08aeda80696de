//! Several migration sets applied together (an application's own, and those its library
//! crates ship), each with a history table of its own, in an order that honours the
//! requirements between sets (`-- migrate:requires queue:3`).

use std::collections::BTreeSet;

use postgres::Client;

use crate::{Error, Migration, Migrator, Readiness, Report, Status};

/// One named set of migrations, e.g. a library crate's `embed_migrations!`. Its history is
/// kept in `public.{name}_schema_migrations`, so versions of different sets never collide.
///
/// ```
/// use migrate_runtime::MigrationSet;
/// # static APP: &[migrate_runtime::Migration] = &[];
/// # static QUEUE: &[migrate_runtime::Migration] = &[];
/// let sets = [MigrationSet::new("app", APP), MigrationSet::new("queue", QUEUE)];
/// ```
#[derive(Clone, Copy, Debug)]
pub struct MigrationSet<'m> {
    name: &'m str,
    migrations: &'m [Migration],
}

impl<'m> MigrationSet<'m> {
    /// The set `name` (lowercase letters, digits and `_`, as `-- migrate:requires name:3`
    /// writes it) of `migrations`.
    ///
    /// ```
    /// # static QUEUE: &[migrate_runtime::Migration] = &[];
    /// let queue = migrate_runtime::MigrationSet::new("queue", QUEUE);
    /// assert_eq!(queue.name(), "queue");
    /// ```
    pub const fn new(name: &'m str, migrations: &'m [Migration]) -> Self {
        MigrationSet { name, migrations }
    }

    /// Its name.
    ///
    /// ```
    /// # static QUEUE: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/crates/queue/migrations");
    /// # let set = migrate_runtime::MigrationSet::new("queue", QUEUE);
    /// println!("{}_schema_migrations", set.name());
    /// ```
    pub fn name(&self) -> &'m str {
        self.name
    }

    /// Its migrations.
    ///
    /// ```
    /// # static QUEUE: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/crates/queue/migrations");
    /// # let set = migrate_runtime::MigrationSet::new("queue", QUEUE);
    /// println!("{} has {} migrations", set.name(), set.migrations().len());
    /// ```
    pub fn migrations(&self) -> &'m [Migration] {
        self.migrations
    }

    /// The history table of the set: `{name}_schema_migrations`.
    pub(crate) fn history_table(&self) -> String {
        format!("{}_schema_migrations", self.name)
    }
}

/// Several [`MigrationSet`]s applied together; see [`Migrator::sets`].
///
/// ```
/// # static APP: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/valid/sets/app");
/// # static QUEUE: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/crates/queue/migrations");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let mut client = database.client()?;
/// use migrate_runtime::{MigrationSet, Migrator};
/// let sets = Migrator::sets([MigrationSet::new("app", APP), MigrationSet::new("queue", QUEUE)]);
/// for (set, status) in sets.status(&mut client)? {
///     println!("{set}: {} pending", status.pending());
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Sets<'m> {
    sets: Vec<(&'m str, Migrator<'m>)>,
}

impl<'m> Migrator<'m> {
    /// Several migration sets, each with its own history table
    /// (`public.{name}_schema_migrations`), applied together by [`Sets::run`].
    ///
    /// ```
    /// use migrate_runtime::testing::TestServer;
    /// use migrate_runtime::{Migration, MigrationSet, Migrator};
    ///
    /// static APP: &[Migration] = migrate_macros::embed_migrations!("../tests/fixtures/valid/sets/app");
    /// static QUEUE: &[Migration] = migrate_macros::embed_migrations!("../tests/fixtures/crates/queue/migrations");
    ///
    /// let database = TestServer::shared().create_database()?;
    /// let mut client = database.client()?;
    /// let sets = Migrator::sets([MigrationSet::new("app", APP), MigrationSet::new("queue", QUEUE)]);
    /// let reports = sets.run(&mut client)?;
    /// assert_eq!(reports.len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sets(sets: impl IntoIterator<Item = MigrationSet<'m>>) -> Sets<'m> {
        Sets {
            sets: sets
                .into_iter()
                .map(|set| {
                    (
                        set.name,
                        Migrator::new(set.migrations).history_table("public", &set.history_table()),
                    )
                })
                .collect(),
        }
    }
}

impl<'m> Sets<'m> {
    /// Sets whose migrators the caller configured (the command line's options).
    #[cfg(feature = "cli")]
    pub(crate) fn from_migrators(sets: Vec<(&'m str, Migrator<'m>)>) -> Self {
        Sets { sets }
    }

    /// The same sets, with `configure` applied to each set's [`Migrator`] (an environment,
    /// lock waits, a phase...).
    ///
    /// ```
    /// # static APP: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/valid/sets/app");
    /// # static QUEUE: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/crates/queue/migrations");
    /// # let sets = migrate_runtime::Migrator::sets([migrate_runtime::MigrationSet::new("app", APP), migrate_runtime::MigrationSet::new("queue", QUEUE)]);
    /// let sets = sets.each(|migrator| migrator.environment("production"));
    /// ```
    pub fn each(mut self, configure: impl Fn(Migrator<'m>) -> Migrator<'m>) -> Self {
        self.sets = self
            .sets
            .into_iter()
            .map(|(name, migrator)| (name, configure(migrator)))
            .collect();
        self
    }

    /// Applies what is pending in every set. Sets are taken in the order given, each as far
    /// as its next migration whose `-- migrate:requires set:version` is not applied yet, and
    /// round again until nothing more can run. A requirement on a set or version that is not
    /// there is refused before anything runs; one that can never be met (two sets waiting
    /// for each other) stops the run with [`Error::UnmetSetRequirement`] once nothing else
    /// can run (every migration applied by then is complete and recorded). Returns each
    /// set's report, in the order given.
    ///
    /// ```
    /// # static APP: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/valid/sets/app");
    /// # static QUEUE: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/crates/queue/migrations");
    /// # let sets = migrate_runtime::Migrator::sets([migrate_runtime::MigrationSet::new("app", APP), migrate_runtime::MigrationSet::new("queue", QUEUE)]);
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// for (set, report) in sets.run(&mut client)? {
    ///     println!("{set}: {} applied", report.applied.len());
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run(&self, client: &mut Client) -> Result<Vec<(String, Report)>, Error> {
        self.check_requirements()?;
        let mut reports: Vec<(String, Report)> = self
            .sets
            .iter()
            .map(|(name, _)| ((*name).to_owned(), Report::default()))
            .collect();
        loop {
            let mut progressed = false;
            // The first set held up by another's migration, in this round.
            let mut held = None;
            for (index, (name, migrator)) in self.sets.iter().enumerate() {
                let pending = migrator.validate(client)?.pending;
                let mut runnable = None;
                for migration in &pending {
                    if let Some(unmet) = self.unmet(client, migration)? {
                        if runnable.is_none() {
                            // The set's next migration itself waits for another set.
                            held.get_or_insert((
                                *name,
                                migration.version(),
                                migration.path(),
                                unmet,
                            ));
                        }
                        break;
                    }
                    runnable = Some(migration.version());
                }
                if let Some(version) = runnable {
                    let report = migrator.clone().target(version).run(client)?;
                    progressed |= !report.applied.is_empty();
                    reports[index].1.applied.extend(report.applied);
                }
            }
            if progressed {
                continue;
            }
            // Nothing more can run: this round's view is the final one, no need to read again.
            if let Some((name, version, path, (set, required))) = held {
                return Err(Error::UnmetSetRequirement {
                    set: name.to_owned(),
                    version,
                    path: path.to_owned(),
                    requires_set: set,
                    requires_version: required,
                    known: true,
                });
            }
            break;
        }
        Ok(reports)
    }

    /// Each set's [`Status`], in the order given.
    ///
    /// ```
    /// # static APP: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/valid/sets/app");
    /// # static QUEUE: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/crates/queue/migrations");
    /// # let sets = migrate_runtime::Migrator::sets([migrate_runtime::MigrationSet::new("app", APP), migrate_runtime::MigrationSet::new("queue", QUEUE)]);
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// for (set, status) in sets.status(&mut client)? {
    ///     for entry in status.entries {
    ///         println!("{set}:{} {}", entry.version, entry.state.as_str());
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn status(&self, client: &mut Client) -> Result<Vec<(String, Status)>, Error> {
        self.sets
            .iter()
            .map(|(name, migrator)| Ok(((*name).to_owned(), migrator.status(client)?)))
            .collect()
    }

    /// Each set's [`Readiness`], in the order given: the database is ready for the binary
    /// when every one is.
    ///
    /// ```
    /// # static APP: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/valid/sets/app");
    /// # static QUEUE: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/crates/queue/migrations");
    /// # let sets = migrate_runtime::Migrator::sets([migrate_runtime::MigrationSet::new("app", APP), migrate_runtime::MigrationSet::new("queue", QUEUE)]);
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// let ready = sets.check(&mut client)?.iter().all(|(_, readiness)| readiness.is_ready());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check(&self, client: &mut Client) -> Result<Vec<(String, Readiness<'m>)>, Error> {
        self.sets
            .iter()
            .map(|(name, migrator)| Ok(((*name).to_owned(), migrator.check(client)?)))
            .collect()
    }

    /// Every `-- migrate:requires set:version` names a set given here and one of its versions.
    fn check_requirements(&self) -> Result<(), Error> {
        for (name, migrator) in &self.sets {
            for migration in migrator.migrations {
                for (set, version) in migration.requires_sets() {
                    let known = self.sets.iter().any(|(other, m)| {
                        *other == set && m.migrations.iter().any(|m| m.version() == version)
                    });
                    if !known {
                        return Err(Error::UnmetSetRequirement {
                            set: (*name).to_owned(),
                            version: migration.version(),
                            path: migration.path().to_owned(),
                            requires_set: set.to_owned(),
                            requires_version: version,
                            known: false,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The first requirement of `migration` on another set that is not applied yet.
    fn unmet(
        &self,
        client: &mut Client,
        migration: &Migration,
    ) -> Result<Option<(String, i64)>, Error> {
        for (set, version) in migration.requires_sets() {
            let (_, other) = self
                .sets
                .iter()
                .find(|(name, _)| *name == set)
                .expect("check_requirements found every set");
            let applied: BTreeSet<i64> = other
                .applied(client)?
                .iter()
                .filter(|row| row.status == crate::MigrationStatus::Applied)
                .map(|row| row.version)
                .collect();
            if !applied.contains(&version) {
                return Ok(Some((set.to_owned(), version)));
            }
        }
        Ok(None)
    }
}
