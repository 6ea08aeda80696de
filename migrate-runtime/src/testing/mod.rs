//! A throwaway PostgreSQL server for tests and demos: a fresh cluster in a temporary
//! directory, on a private socket and port, removed when dropped (or, if the process is
//! killed, by a watchdog when the process is gone).
//!
//! ```
//! use migrate_runtime::testing::TestServer;
//! use migrate_runtime::Migrator;
//!
//! static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
//!
//! let server = TestServer::shared();
//! // A database already migrated: the set is applied once, to a template, then cloned.
//! let database = server.migrated_database(&Migrator::new(MIGRATIONS))?;
//! let mut client = database.client()?;
//! let users: i64 = client.query_one("SELECT count(*) FROM users", &[])?.get(0);
//! assert_eq!(users, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use postgres::{Client, NoTls};
use postgres_protocol::escape::escape_identifier;

use crate::Migrator;

mod attribute;
mod cluster;
mod host;
mod janitor;
mod key;
mod machine;
mod pool;
mod recycle;
mod template;

#[doc(hidden)]
pub use attribute::__private;
pub use machine::stop_shared_server;
pub use pool::{migrated_database, HandOut};

/// Why a throwaway server could not be started or used.
///
/// ```
/// use migrate_runtime::testing::{TestServer, TestServerError};
///
/// // 003_fill_c.sql inserts into a table that does not exist.
/// static FAILING: &[migrate_runtime::Migration] =
///     migrate_macros::embed_migrations!("../tests/fixtures/valid/fails_at_run");
///
/// let server = TestServer::shared();
/// match server.migrated_database(&migrate_runtime::Migrator::new(FAILING)) {
///     Err(TestServerError::Migrate(error)) => eprintln!("{}", error.render()),
///     other => panic!("expected the template's migration to fail, got {other:?}"),
/// }
/// // Without PostgreSQL, the error says how to install it.
/// assert!(TestServerError::NotInstalled.to_string().contains("apt-get install postgresql"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestServerError {
    /// No PostgreSQL server binaries were found.
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found in $PG_BIN, on $PATH or in /usr/lib/postgresql/*/bin\n  help: install the server: `apt-get install postgresql` (Debian, Ubuntu), `dnf install postgresql-server` (Fedora), `brew install postgresql` (macOS); or set PG_BIN to the directory holding initdb"
    )]
    NotInstalled,
    /// A server program failed.
    #[error("`{program}` failed: {output}")]
    Command {
        /// The program that failed.
        program: String,
        /// What it printed.
        output: String,
    },
    /// A file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The server refused a query.
    #[error("throwaway server: {}", database_error(.0))]
    Database(#[from] postgres::Error),
    /// Migrating a template database failed.
    #[error("migrating the template database: {0}")]
    Migrate(#[from] crate::Error),
    /// `MIGRATE_TEST_DATABASE_URL` is unusable, or connecting with it failed.
    #[error("test database server (MIGRATE_TEST_DATABASE_URL): {0}")]
    Config(#[from] crate::config::ConfigError),
}

/// The driver's error with the server's message (its `Display` alone may say only "db error").
fn database_error(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        ),
        None => error.to_string(),
    }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> TestServerError {
    let context = context.into();
    move |source| TestServerError::Io { context, source }
}

/// A running throwaway PostgreSQL server.
///
/// ```
/// use migrate_runtime::testing::TestServer;
///
/// // Shared by every test of the process; each test takes its own database.
/// let server = TestServer::shared();
/// let first = server.create_database()?;
/// let second = server.create_database()?;
/// assert_ne!(first.name(), second.name());
/// first.client()?.batch_execute("CREATE TABLE only_here (id int)")?;
/// let tables: i64 = second.client()?
///     .query_one("SELECT count(*) FROM pg_tables WHERE tablename = 'only_here'", &[])?
///     .get(0);
/// assert_eq!(tables, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TestServer {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    run_as: Option<(u32, u32)>,
    durable: bool,
    templates: Mutex<BTreeSet<String>>,
    next_database: AtomicUsize,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// Starts a new server tuned for tests (no fsync: fast, not crash-safe). It is stopped
    /// and its directory removed when the value is dropped.
    ///
    /// ```
    /// let server = migrate_runtime::testing::TestServer::start()?;
    /// let mut client = server.connect("postgres")?;
    /// let fsync: String = client.query_one("SHOW fsync", &[])?.get(0);
    /// assert_eq!(fsync, "off");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start() -> Result<TestServer, TestServerError> {
        Self::start_with(false)
    }

    /// Starts a new server with PostgreSQL's durable defaults (fsync on), for measurements
    /// that must reflect production commit costs.
    ///
    /// ```
    /// let server = migrate_runtime::testing::TestServer::start_durable()?;
    /// let fsync: String = server.connect("postgres")?.query_one("SHOW fsync", &[])?.get(0);
    /// assert_eq!(fsync, "on");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start_durable() -> Result<TestServer, TestServerError> {
        Self::start_with(true)
    }

    /// One server per process, started on first use and shared by every test in it. Panics
    /// with the reason (e.g. how to install PostgreSQL) when it cannot start.
    ///
    /// ```
    /// use migrate_runtime::testing::TestServer;
    ///
    /// let database = TestServer::shared().create_database()?;
    /// assert!(database.client().is_ok());
    /// // The same server every time.
    /// assert!(std::ptr::eq(TestServer::shared(), TestServer::shared()));
    /// # Ok::<(), migrate_runtime::testing::TestServerError>(())
    /// ```
    pub fn shared() -> &'static TestServer {
        static SHARED: OnceLock<TestServer> = OnceLock::new();
        SHARED.get_or_init(|| match off_async(TestServer::start) {
            Ok(server) => server,
            Err(error) => panic!("cannot start the throwaway PostgreSQL server: {error}"),
        })
    }

    fn start_with(durable: bool) -> Result<TestServer, TestServerError> {
        let bin = find_binaries().ok_or(TestServerError::NotInstalled)?;
        let dir = tempfile::Builder::new()
            .prefix("migrate-pg-")
            .tempdir()
            .map_err(io("creating the server directory"))?
            .keep();
        let run_as = unprivileged_user_if_root();
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(io("handing the server directory to an unprivileged user"))?;
        }
        let mut server = TestServer {
            dir,
            bin,
            port: 0,
            run_as,
            durable,
            templates: Mutex::new(BTreeSet::new()),
            next_database: AtomicUsize::new(1),
        };
        server.initdb()?;
        server.spawn_watchdog()?;
        // A free port can be taken by someone else between choosing and binding it.
        let mut last_error = None;
        for _ in 0..3 {
            server.port = free_port()?;
            match server.pg_ctl_start(durable) {
                Ok(()) => return Ok(server),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.expect("three attempts were made"))
    }

    fn command(&self, program: &str) -> Command {
        cluster::command(&self.bin, program, &self.dir, self.run_as)
    }

    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) -> Result<(), TestServerError> {
        let mut command = self.command(program);
        command.args(args);
        cluster::run(command, program, Some(&self.dir.join("server.log")))
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn initdb(&self) -> Result<(), TestServerError> {
        let mut initdb = self.command("initdb");
        initdb
            .arg("-D")
            .arg(self.data())
            .args(cluster::INITDB_FLAGS);
        cluster::run(initdb, "initdb", Some(&self.dir.join("server.log")))
    }

    fn pg_ctl_start(&self, durable: bool) -> Result<(), TestServerError> {
        let mut options = format!(
            "-k {} -p {} -c listen_addresses=127.0.0.1 -c max_connections=200 -c max_locks_per_transaction=1024",
            self.dir.display(),
            self.port
        );
        if !durable {
            options.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let data = self.data();
        let log = self.dir.join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-o".as_ref(),
                options.as_ref(),
                "-w".as_ref(),
                "start".as_ref(),
            ],
        )
    }

    /// A shell that waits for this process to end (however it ends: a killed test run never
    /// drops anything) and then stops the server and removes its directory.
    fn spawn_watchdog(&self) -> Result<(), TestServerError> {
        let script = format!(
            "while [ -d /proc/{pid} ] && [ -d '{dir}' ]; do sleep 1; done; \
             '{pg_ctl}' -D '{dir}/data' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            dir = self.dir.display(),
            pg_ctl = self.bin.join("pg_ctl").display(),
        );
        let mut watchdog = Command::new("sh");
        watchdog
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            watchdog.uid(uid).gid(gid);
        }
        watchdog
            .spawn()
            .map_err(io("starting the server's watchdog"))?;
        Ok(())
    }

    /// Stops the server quickly (`pg_ctl stop -m fast`: open sessions are ended), keeping its
    /// data directory and port, so that [`restart`](Self::restart) brings it back as it was.
    /// Useful to test clients that must survive a database that goes away.
    ///
    /// ```
    /// let server = migrate_runtime::testing::TestServer::start()?;
    /// server.stop()?;
    /// assert!(server.connect("postgres").is_err());
    /// server.restart()?;
    /// assert!(server.connect("postgres").is_ok());
    /// # Ok::<(), migrate_runtime::testing::TestServerError>(())
    /// ```
    pub fn stop(&self) -> Result<(), TestServerError> {
        self.pg_ctl_stop("fast")
    }

    /// Stops the server as a crash would (`pg_ctl stop -m immediate`: no shutdown checkpoint,
    /// sessions cut off); [`restart`](Self::restart) then runs PostgreSQL's crash recovery.
    /// With [`start_durable`](Self::start_durable), what was committed and flushed survives.
    ///
    /// ```
    /// let server = migrate_runtime::testing::TestServer::start_durable()?;
    /// server.connect("postgres")?.batch_execute("CREATE TABLE committed (id int)")?;
    /// server.crash()?;
    /// server.restart()?;
    /// // Committed before the crash: still there after recovery.
    /// server.connect("postgres")?.batch_execute("SELECT * FROM committed")?;
    /// # Ok::<(), migrate_runtime::testing::TestServerError>(())
    /// ```
    pub fn crash(&self) -> Result<(), TestServerError> {
        self.pg_ctl_stop("immediate")
    }

    fn pg_ctl_stop(&self, mode: &str) -> Result<(), TestServerError> {
        let data = self.data();
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                mode.as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        )
    }

    /// Starts a server stopped by [`stop`](Self::stop) again, with the same settings and on
    /// the same port; returns once it accepts connections.
    ///
    /// ```
    /// let server = migrate_runtime::testing::TestServer::start()?;
    /// server.connect("postgres")?.batch_execute("ALTER SYSTEM SET log_min_messages = 'info'")?;
    /// server.stop()?;
    /// server.restart()?; // picks up the ALTER SYSTEM setting
    /// let level: String = server.connect("postgres")?.query_one("SHOW log_min_messages", &[])?.get(0);
    /// assert_eq!(level, "info");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn restart(&self) -> Result<(), TestServerError> {
        self.pg_ctl_start(self.durable)
    }

    /// The TCP port the server listens on (on 127.0.0.1).
    ///
    /// ```
    /// let server = migrate_runtime::testing::TestServer::shared();
    /// println!("{}", server.port());
    /// let mut tcp = std::net::TcpStream::connect(("127.0.0.1", server.port()))?;
    /// # let _ = &mut tcp;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connection settings for `database` over the server's private Unix socket.
    ///
    /// ```
    /// let mut config = migrate_runtime::testing::TestServer::shared().config("postgres");
    /// assert_eq!(config.get_dbname(), Some("postgres"));
    /// let mut client = config.application_name("my-test").connect(postgres::NoTls)?;
    /// let name: String = client.query_one("SHOW application_name", &[])?.get(0);
    /// assert_eq!(name, "my-test");
    /// # Ok::<(), postgres::Error>(())
    /// ```
    pub fn config(&self, database: &str) -> postgres::Config {
        let mut config = postgres::Config::new();
        config
            .host_path(&self.dir)
            .port(self.port)
            .user("postgres")
            .dbname(database)
            .application_name("migrate-runtime-tests");
        config
    }

    /// A `postgresql://` URL for `database` over TCP on 127.0.0.1 (no password: the server
    /// trusts local connections).
    ///
    /// ```
    /// let url = migrate_runtime::testing::TestServer::shared().url("postgres");
    /// assert!(url.starts_with("postgresql://postgres@127.0.0.1:"));
    /// // What an application under test reads from DATABASE_URL:
    /// let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
    /// client.batch_execute("SELECT 1")?;
    /// # Ok::<(), postgres::Error>(())
    /// ```
    pub fn url(&self, database: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// `pg_dump` of `database` with `args`, from the server's own binary directory (so its
    /// version matches the server's); `Ok(None)` when that directory has no `pg_dump`.
    pub(crate) fn pg_dump(
        &self,
        database: &str,
        args: &[&str],
    ) -> Result<Option<String>, TestServerError> {
        // Beside the server binaries, or beside the file they link to (a packaged server's
        // binaries are often linked into a directory of their own).
        let linked = std::fs::canonicalize(self.bin.join("postgres"))
            .ok()
            .and_then(|postgres| postgres.parent().map(|dir| dir.join("pg_dump")));
        let Some(pg_dump) = std::iter::once(self.bin.join("pg_dump"))
            .chain(linked)
            .find(|path| path.is_file())
        else {
            return Ok(None);
        };
        let port = self.port.to_string();
        let output = self
            .command(&pg_dump.display().to_string())
            .args(["--host", &self.dir.display().to_string(), "--port", &port])
            .args(["--username", "postgres", "--dbname", database])
            .args(args)
            .output()
            .map_err(io("running pg_dump"))?;
        if !output.status.success() {
            return Err(TestServerError::Command {
                program: "pg_dump".to_owned(),
                output: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(Some(String::from_utf8_lossy(&output.stdout).into_owned()))
    }

    /// The directory holding the server's binaries.
    pub(crate) fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// Connects to `database`.
    ///
    /// ```
    /// let mut client = migrate_runtime::testing::TestServer::shared().connect("postgres")?;
    /// let database: String = client.query_one("SELECT current_database()", &[])?.get(0);
    /// assert_eq!(database, "postgres");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect(&self, database: &str) -> Result<Client, TestServerError> {
        Ok(self.config(database).connect(NoTls)?)
    }

    /// A new, empty database.
    ///
    /// ```
    /// let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// let tables: i64 = database.client()?
    ///     .query_one("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", &[])?
    ///     .get(0);
    /// assert_eq!(tables, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_database(&self) -> Result<TestDatabase<'_>, TestServerError> {
        self.new_database(None)
    }

    /// A new database with `migrator`'s migrations applied. The first call for a given set
    /// and settings migrates a template database; later calls clone it with
    /// `CREATE DATABASE ... TEMPLATE`, so a suite of many tests migrates once.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// let server = migrate_runtime::testing::TestServer::shared();
    /// let migrator = migrate_runtime::Migrator::new(MIGRATIONS);
    /// let database = server.migrated_database(&migrator)?;
    /// assert_eq!(migrator.status(&mut database.client()?)?.pending(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn migrated_database(
        &self,
        migrator: &Migrator<'_>,
    ) -> Result<TestDatabase<'_>, TestServerError> {
        off_async(|| self.migrate_template_and_clone(migrator))
    }

    fn migrate_template_and_clone(
        &self,
        migrator: &Migrator<'_>,
    ) -> Result<TestDatabase<'_>, TestServerError> {
        // What changes the migrated result, as the persistent templates are keyed (the server
        // is this process's own, so its version needs no place in the key).
        let key = key::TemplateKey::new("per-process", migrator, 0);
        let template = format!("template_{}", key.content);
        {
            let mut templates = self.templates.lock().unwrap_or_else(|e| e.into_inner());
            if !templates.contains(&template) {
                let mut admin = self.connect("postgres")?;
                admin
                    .batch_execute(&format!("CREATE DATABASE {}", escape_identifier(&template)))?;
                let mut client = self.connect(&template)?;
                migrator.run(&mut client)?;
                client.close()?;
                templates.insert(template.clone());
            }
        }
        self.new_database(Some(&template))
    }

    fn new_database(&self, template: Option<&str>) -> Result<TestDatabase<'_>, TestServerError> {
        let name = format!(
            "test_{}",
            self.next_database.fetch_add(1, Ordering::Relaxed)
        );
        let mut sql = format!("CREATE DATABASE {}", escape_identifier(&name));
        if let Some(template) = template {
            sql.push_str(&format!(" TEMPLATE {}", escape_identifier(template)));
        }
        off_async(|| -> Result<(), TestServerError> {
            Ok(self.connect("postgres")?.batch_execute(&sql)?)
        })?;
        Ok(TestDatabase {
            owner: Owner::Server(self),
            name,
            failed: Arc::default(),
            hand_out: None,
        })
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.pg_ctl_stop("immediate");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A database on a [`TestServer`] or, from [`migrated_database`] and the
/// `#[migrate_macros::test]` attribute, on the persistent test server; dropped (with its
/// connections) when the value is. A database from the persistent server is kept instead
/// when its test fails (see [`migrated_database`]).
///
/// ```
/// let server = migrate_runtime::testing::TestServer::shared();
/// let database = server.create_database()?;
/// let name = database.name().to_owned();
/// drop(database);
/// let left: i64 = server.connect("postgres")?
///     .query_one("SELECT count(*) FROM pg_database WHERE datname = $1", &[&name])?
///     .get(0);
/// assert_eq!(left, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct TestDatabase<'s> {
    owner: Owner<'s>,
    name: String,
    /// Set by the test attribute when the test returned an error: kept like a panic.
    failed: Arc<AtomicBool>,
    /// How it was made, for one from the persistent server (its template's pool may take it
    /// back when its test passes).
    hand_out: Option<HandOut>,
}

/// Where a test database lives.
#[derive(Debug, Clone, Copy)]
enum Owner<'s> {
    /// A throwaway server of this process: everything goes with it, nothing is kept.
    Server(&'s TestServer),
    /// The persistent server (`MIGRATE_TEST_DATABASE_URL` or the machine's shared one).
    Host(&'static host::Host),
}

impl TestDatabase<'_> {
    /// The database's name.
    ///
    /// ```
    /// let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// println!("{}", database.name());
    /// let current: String = database.client()?.query_one("SELECT current_database()", &[])?.get(0);
    /// assert_eq!(current, database.name());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new connection to it.
    ///
    /// ```
    /// let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// let mut client = database.client()?;
    /// client.batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")?;
    /// let rows: i64 = client.query_one("SELECT count(*) FROM t", &[])?.get(0);
    /// assert_eq!(rows, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn client(&self) -> Result<Client, TestServerError> {
        match self.owner {
            Owner::Server(server) => server.connect(&self.name),
            Owner::Host(host) => host.connect(&self.name),
        }
    }

    /// Its connection settings (Unix socket).
    ///
    /// ```
    /// let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// let config = database.config();
    /// assert_eq!(config.get_dbname(), Some(database.name()));
    /// let mut client = config.connect(postgres::NoTls)?;
    /// # let _ = &mut client;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn config(&self) -> postgres::Config {
        match self.owner {
            Owner::Server(server) => server.config(&self.name),
            Owner::Host(host) => host.config(&self.name),
        }
    }

    /// Its URL (TCP on 127.0.0.1).
    ///
    /// ```
    /// let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// let url = database.url();
    /// assert!(url.ends_with(&format!("/{}", database.name())));
    /// // e.g. for `migrate --database-url` or a `ConnectionSettings`:
    /// let settings = migrate_runtime::config::ConnectionSettings::resolve(Some(&url), |_| None)?
    ///     .expect("a URL was given");
    /// settings.connect()?.batch_execute("SELECT 1")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn url(&self) -> String {
        match self.owner {
            Owner::Server(server) => server.url(&self.name),
            Owner::Host(host) => host.url(&self.name),
        }
    }

    /// Its URL without any password: safe to print, as a failed test's output does.
    ///
    /// ```
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// eprintln!("look inside: psql {}", database.url_without_password());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn url_without_password(&self) -> String {
        match self.owner {
            Owner::Server(server) => server.url(&self.name),
            Owner::Host(host) => host.shown_url(&self.name),
        }
    }

    /// How it was made (template, warm pool or not, time taken), for a database from the
    /// persistent server ([`migrated_database`]); `None` for one from a [`TestServer`].
    ///
    /// ```
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// if let Some(hand_out) = database.hand_out() {
    ///     println!("ready in {:?}", hand_out.elapsed);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn hand_out(&self) -> Option<&HandOut> {
        self.hand_out.as_ref()
    }

    /// A handle the test attribute sets when the test returns an error, so that the database
    /// is kept as when the test panics.
    fn failure_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.failed)
    }
}

impl Drop for TestDatabase<'_> {
    fn drop(&mut self) {
        if let Owner::Host(host) = self.owner {
            let failed = std::thread::panicking() || self.failed.load(Ordering::Relaxed);
            if failed && attribute::keep_failed() {
                attribute::announce_kept(&self.url_without_password());
                return;
            }
            host.touch();
            if let Err(error) = off_async(|| {
                let template = self.hand_out.as_ref().map(|made| made.template.as_str());
                janitor::discard(host, &self.name, template)
            }) {
                log::debug!("dropping test database {}: {error}", self.name);
            }
            return;
        }
        let sql = format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            escape_identifier(&self.name)
        );
        let dropped = off_async(|| match self.owner {
            Owner::Server(server) => server
                .connect("postgres")
                .map(|mut admin| admin.batch_execute(&sql)),
            Owner::Host(host) => host.admin().map(|mut admin| admin.batch_execute(&sql)),
        });
        if let Err(error) = dropped {
            log::debug!("dropping test database {}: {error}", self.name);
        }
    }
}

/// Runs `work` (which opens blocking `postgres` clients) on a thread of its own. The blocking
/// client starts a tokio runtime of its own, and creating or dropping one on a thread that is
/// inside a runtime panics: here the caller may be a `#[tokio::test]` (any flavour), whose
/// databases are created and dropped from async code.
fn off_async<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| match scope.spawn(work).join() {
        Ok(done) => done,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// `initdb`, `pg_ctl` and `postgres` side by side: `$PG_BIN`, then `$PATH`, then the newest
/// `/usr/lib/postgresql/*/bin`.
fn find_binaries() -> Option<PathBuf> {
    find_binaries_in(
        std::env::var_os("PG_BIN"),
        std::env::var_os("PATH"),
        Path::new("/usr/lib/postgresql"),
    )
}

fn find_binaries_in(
    pg_bin: Option<OsString>,
    path: Option<OsString>,
    packaged_root: &Path,
) -> Option<PathBuf> {
    let has_all = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|p| dir.join(p).is_file())
    };
    let from_env = pg_bin.map(PathBuf::from);
    let on_path = path
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut packaged: Vec<(u32, PathBuf)> = std::fs::read_dir(packaged_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    packaged.sort();
    from_env
        .into_iter()
        .chain(on_path)
        .chain(packaged.into_iter().rev().map(|(_, dir)| dir))
        .find(|dir| has_all(dir))
}

/// When running as root, the uid/gid of `nobody` (the server refuses to run as root).
fn unprivileged_user_if_root() -> Option<(u32, u32)> {
    if cluster::effective_uid()? != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let nobody = passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&"nobody"))
            .then(|| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))?
    });
    Some(nobody.unwrap_or((65534, 65534)))
}

fn free_port() -> Result<u16, TestServerError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(io("finding a free port"))?
        .port())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binaries_are_explained() {
        let empty = tempfile::tempdir().unwrap();
        let found = find_binaries_in(
            Some(empty.path().into()),
            Some(empty.path().into()),
            empty.path(),
        );
        assert_eq!(found, None);
        let message = TestServerError::NotInstalled.to_string();
        assert!(message.contains("apt-get install postgresql"), "{message}");
        assert!(message.contains("PG_BIN"), "{message}");
    }

    #[test]
    fn the_newest_packaged_version_wins_and_pg_bin_comes_first() {
        let root = tempfile::tempdir().unwrap();
        for version in ["9", "15", "13"] {
            let bin = root.path().join(version).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            for program in ["initdb", "pg_ctl", "postgres"] {
                std::fs::write(bin.join(program), "").unwrap();
            }
        }
        let found = find_binaries_in(None, None, root.path());
        assert_eq!(found, Some(root.path().join("15/bin")));
        let pinned = root.path().join("9/bin");
        let found = find_binaries_in(Some(pinned.clone().into()), None, root.path());
        assert_eq!(found, Some(pinned));
    }
}
