//! A migration set's template on the persistent server: built once under an advisory lock
//! however many processes ask at the same time, reused by every later process and run, and
//! the set's older templates (and their pooled clones) dropped when a new one is built.

use postgres::error::SqlState;
use std::sync::OnceLock;

use postgres::Client;
use postgres_protocol::escape::escape_identifier;

use super::host::Host;
use super::key::TemplateKey;
use super::recycle::Baseline;
use super::TestServerError;
use crate::Migrator;

/// Which `CREATE DATABASE ... STRATEGY` clones a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// Copies the files and checkpoints twice: cheap when `fsync` is off.
    FileCopy,
    /// Copies block by block through the write-ahead log: no checkpoint, so cheaper on a
    /// durable server (PostgreSQL 15's default).
    WalLog,
    /// PostgreSQL before 15 has only the file copy and no `STRATEGY` clause.
    Unsupported,
}

impl Strategy {
    /// The clause for `CREATE DATABASE`. `MIGRATE_TEST_CLONE_STRATEGY` (`file_copy`, `wal_log`)
    /// overrides the choice made from the server's settings (see the testing guide for the
    /// measurements behind it).
    fn choose(major: u32, fsync: bool) -> Strategy {
        if major < 15 {
            return Strategy::Unsupported;
        }
        match std::env::var("MIGRATE_TEST_CLONE_STRATEGY").ok().as_deref() {
            Some("file_copy") => Strategy::FileCopy,
            Some("wal_log") => Strategy::WalLog,
            _ if fsync => Strategy::WalLog,
            _ => Strategy::FileCopy,
        }
    }

    fn clause(self) -> &'static str {
        match self {
            Strategy::FileCopy => " STRATEGY FILE_COPY",
            Strategy::WalLog => " STRATEGY WAL_LOG",
            Strategy::Unsupported => "",
        }
    }
}

/// A finished template.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pub(crate) key: TemplateKey,
    pub(crate) strategy: Strategy,
    /// Whether this call migrated it (false: it was there, or another process built it).
    pub(crate) built_here: bool,
    /// What its finished clones must not have written to be recycled (recorded on it when
    /// it was built); `None`: they are never recycled.
    pub(crate) baseline: Option<Baseline>,
}

impl Template {
    /// `CREATE DATABASE name TEMPLATE ... STRATEGY ...`.
    pub(crate) fn clone_sql(&self, name: &str) -> String {
        format!(
            "CREATE DATABASE {} TEMPLATE {}{}",
            escape_identifier(name),
            escape_identifier(&self.key.template()),
            self.strategy.clause()
        )
    }
}

/// The server facts a template depends on: its major version and `fsync`. Asked once per
/// process (the test server does not change under it).
pub(crate) fn server_facts(admin: &mut Client) -> Result<(u32, bool), TestServerError> {
    static FACTS: OnceLock<(u32, bool)> = OnceLock::new();
    if let Some(facts) = FACTS.get() {
        return Ok(*facts);
    }
    let row = admin.query_one(
        "SELECT current_setting('server_version_num')::int / 10000, current_setting('fsync') = 'on'",
        &[],
    )?;
    let facts = (u32::try_from(row.get::<_, i32>(0)).unwrap_or(0), row.get(1));
    Ok(*FACTS.get_or_init(|| facts))
}

/// `migrator`'s template under `key`: there already, or built now (once, whoever else is
/// asking), on the caller's administrative connection.
pub(crate) fn ensure(
    host: &Host,
    admin: &mut Client,
    key: &TemplateKey,
    migrator: &Migrator<'_>,
) -> Result<Template, TestServerError> {
    let (major, fsync) = server_facts(admin)?;
    let mut template = Template {
        strategy: Strategy::choose(major, fsync),
        built_here: false,
        key: key.clone(),
        baseline: None,
    };
    let baseline = match lookup(admin, &template.key.template())? {
        Some(baseline) => baseline,
        None => {
            let lock = template.key.build_lock();
            admin.execute("SELECT pg_advisory_lock($1)", &[&lock])?;
            let built = build_if_missing(host, admin, &template.key, migrator);
            let unlocked = admin.execute("SELECT pg_advisory_unlock($1)", &[&lock]);
            let (built_here, baseline) = built?;
            unlocked?;
            template.built_here = built_here;
            baseline
        }
    };
    // Undoing a test's writes needs `pg_stat_force_next_flush` (PostgreSQL 15).
    template.baseline = baseline.filter(|_| major >= 15);
    Ok(template)
}

/// The template `database`, if it exists, with the baseline its comment records (`None`
/// inside: a template built by a version that recorded none).
fn lookup(admin: &mut Client, database: &str) -> Result<Option<Option<Baseline>>, TestServerError> {
    Ok(admin
        .query_opt(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
            &[&database],
        )?
        .map(|row| {
            row.get::<_, Option<String>>(0)
                .as_deref()
                .and_then(Baseline::parse)
        }))
}

/// Under the set's build lock: builds the template unless a process that held the lock
/// before us did; then drops the set's stale templates. Whether it built, and the baseline.
fn build_if_missing(
    host: &Host,
    admin: &mut Client,
    key: &TemplateKey,
    migrator: &Migrator<'_>,
) -> Result<(bool, Option<Baseline>), TestServerError> {
    if let Some(baseline) = lookup(admin, &key.template())? {
        return Ok((false, baseline));
    }
    let building = key.building();
    // A builder that died left its half-migrated database: nobody else builds it under the lock.
    // One statement per call: CREATE and DROP DATABASE refuse a (multi-statement) transaction.
    admin.batch_execute(&format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        escape_identifier(&building)
    ))?;
    admin.batch_execute(&format!("CREATE DATABASE {}", escape_identifier(&building)))?;
    let migrated = host
        .connect(&building)
        .and_then(|mut client| {
            migrator.run(&mut client)?;
            Ok(client.close()?)
        })
        // One more session after the last DDL writes the relation cache's init file, which
        // every clone then inherits instead of each test's first connection building it. It
        // also measures what a finished clone must not have written to be recycled.
        .and_then(|()| {
            let mut client = host.connect(&building)?;
            let baseline = Baseline::measure(&mut client)?;
            client.close()?;
            admin.batch_execute(&baseline.comment_sql(&building))?;
            Ok(baseline)
        });
    let baseline = match migrated {
        Ok(baseline) => baseline,
        Err(error) => {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                escape_identifier(&building)
            ));
            return Err(error);
        }
    };
    // Only a complete template ever carries the final name; no one may connect to it (a
    // session in a template blocks every clone).
    admin.batch_execute(&format!(
        "ALTER DATABASE {} RENAME TO {}",
        escape_identifier(&building),
        escape_identifier(&key.template()),
    ))?;
    admin.batch_execute(&format!(
        "ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false",
        escape_identifier(&key.template()),
    ))?;
    drop_stale(admin, key);
    Ok((true, Some(baseline)))
}

/// Drops the set's templates of other contents, then their pooled and half-built clones (a
/// template first: once it is gone no filler can clone it again). One in use (a clone being
/// made from it, a session in it) is left for the next build, as the lock timeout decides.
fn drop_stale(admin: &mut Client, key: &TemplateKey) {
    let [templates, building, pool] = key.same_set_pattern();
    for patterns in [vec![templates], vec![building, pool]] {
        let stale = admin.query(
            "SELECT datname FROM pg_database WHERE datname LIKE ANY($1) ORDER BY datname",
            &[&patterns],
        );
        let stale: Vec<String> = match stale {
            Ok(rows) => rows.iter().map(|row| row.get(0)).collect(),
            Err(error) => {
                log::warn!("listing stale test templates: {error}");
                return;
            }
        };
        for name in stale.into_iter().filter(|name| !key.is_current(name)) {
            drop_one(admin, &name);
        }
    }
}

fn drop_one(admin: &mut Client, name: &str) {
    let identifier = escape_identifier(name);
    let dropped = admin
        .batch_execute("SET lock_timeout = '2s'")
        .and_then(|()| {
            admin.batch_execute(&format!(
                "ALTER DATABASE {identifier} WITH IS_TEMPLATE false"
            ))
        })
        .and_then(|()| admin.batch_execute(&format!("DROP DATABASE IF EXISTS {identifier}")));
    match dropped {
        Ok(()) => log::info!("dropped the stale test database {name}"),
        Err(error) if error.code() == Some(&SqlState::OBJECT_IN_USE) => {
            log::info!("kept the stale test database {name}: in use")
        }
        Err(error) if error.code() == Some(&SqlState::UNDEFINED_DATABASE) => {}
        Err(error) => log::warn!("dropping the stale test database {name}: {error}"),
    }
    let _ = admin.batch_execute("RESET lock_timeout");
}
