//! Where to connect: `--database-url`, `DATABASE_URL`, `DB_*` or libpq's `PG*` variables, with
//! libpq's `sslmode` meanings (TLS behind the `tls` feature) and a wait for a server still starting.
//!
//! ```no_run
//! use migrate_runtime::config::ConnectionSettings;
//!
//! let settings = ConnectionSettings::from_env(None)?.expect("set DATABASE_URL");
//! log::info!("migrating {} (from {})", settings.describe(), settings.source());
//! let mut client = settings.connect_with_wait(std::time::Duration::from_secs(30))?;
//! # Ok::<(), migrate_runtime::config::ConfigError>(())
//! ```

use std::error::Error as _;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use postgres::config::{Host, SslMode as DriverSslMode};
use postgres::error::SqlState;
use postgres::{Client, Config, NoTls};

const FROM_FLAG: &str = "--database-url";
const FROM_DATABASE_URL: &str = "DATABASE_URL";
const FROM_DB_VARIABLES: &str = "DB_* variables";
const FROM_PG_VARIABLES: &str = "PG* variables";
const FROM_CONFIG: &str = "configuration";

/// Any of these set selects the `PG*` source (PGPASSWORD and PGSSLMODE alone do not: they are
/// commonly exported as defaults for other tools).
const PG_SELECTORS: [&str; 4] = ["PGHOST", "PGDATABASE", "PGUSER", "PGPORT"];

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// The shortest TCP connect timeout of an attempt in `connect_with_wait`: a live but slow server
/// must not be cut off just because little of the wait is left.
const MIN_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);

/// Where and how to connect to PostgreSQL, with where those settings came from.
///
/// ```no_run
/// use migrate_runtime::config::ConnectionSettings;
///
/// let settings = ConnectionSettings::from_env(Some("postgresql://app@db.internal/app?sslmode=verify-full"))?
///     .expect("an explicit URL always gives settings");
/// let mut client = settings.connect()?;
/// # Ok::<(), migrate_runtime::config::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct ConnectionSettings {
    config: Config,
    source: &'static str,
    ssl_mode: SslMode,
    root_cert: Option<PathBuf>,
}

/// Why connection settings could not be read, or the connection could not be made. Neither the
/// message nor the `Debug` output ever contains a password.
///
/// ```no_run
/// use migrate_runtime::config::{ConfigError, ConnectionSettings};
///
/// match ConnectionSettings::from_env(None) {
///     Ok(Some(settings)) => log::info!("using {}", settings.describe()),
///     Ok(None) => log::warn!("no database configured"),
///     Err(error @ ConfigError::InvalidVariable { .. }) => log::error!("{error}"),
///     Err(error) => log::error!("{error}"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A database URL or `key=value` connection string could not be read.
    #[error(
        "error: {from} is not a valid connection string: {reason}\n   = value: {redacted}\n   = help: write postgresql://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=MODE, or key=value pairs: host=HOST port=PORT dbname=DATABASE user=USER"
    )]
    InvalidConnectionString {
        /// Where it came from: `--database-url` or `DATABASE_URL`.
        from: &'static str,
        /// The value with any password replaced by `***`.
        redacted: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An environment variable has a value that cannot be used (never a password variable).
    #[error("error: {name}={value} is not valid: {reason}")]
    InvalidVariable {
        /// The variable, e.g. `DB_PORT`.
        name: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        reason: &'static str,
    },

    /// An `sslmode` that libpq does not know.
    #[error(
        "error: sslmode `{value}` (from {from}) is not valid\n   = help: use one of disable, allow, prefer, require, verify-ca, verify-full"
    )]
    InvalidSslMode {
        /// Where it came from.
        from: &'static str,
        /// The value given.
        value: String,
    },

    /// The settings require TLS but the crate was built without it.
    #[error(
        "error: sslmode={mode} needs TLS, but migrate-runtime was built without its `tls` feature\n   = help: enable it: migrate-runtime = {{ version = \"0.1\", features = [\"tls\"] }}; or connect without TLS with sslmode=prefer or sslmode=disable"
    )]
    TlsNotEnabled {
        /// The sslmode asked for.
        mode: &'static str,
    },

    /// The `sslrootcert` file could not be read.
    #[error(
        "error: cannot read the CA certificate file {} (sslrootcert): {error}\n   = help: point sslrootcert at a readable PEM file holding the certificate of the CA that signed the server's certificate",
        .path.display()
    )]
    RootCertificate {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        error: io::Error,
    },

    /// The TLS client could not be set up (a bad certificate file, an OpenSSL problem).
    #[error("error: cannot set up TLS: {reason}")]
    Tls {
        /// What went wrong.
        reason: String,
    },

    /// The server could not be reached, or refused the connection.
    #[error("error: cannot connect to {target} (settings from {from}): {}{hint}", error_text(.error))]
    Connect {
        /// [`ConnectionSettings::describe`] of the settings used.
        target: String,
        /// [`ConnectionSettings::source`] of the settings used.
        from: &'static str,
        /// The driver's error (`error.code()` gives the SQLSTATE of a server error).
        error: postgres::Error,
        /// What to do about it, as `\n   = help: ...`, or empty.
        hint: String,
    },

    /// [`ConnectionSettings::connect_with_wait`] gave up: the server did not become reachable.
    #[error(
        "error: gave up connecting to {target} (settings from {from}) after waiting {} ({attempts} attempts); last error: {}{hint}",
        human_duration(*.waited),
        error_text(.error)
    )]
    Timeout {
        /// [`ConnectionSettings::describe`] of the settings used.
        target: String,
        /// [`ConnectionSettings::source`] of the settings used.
        from: &'static str,
        /// How long it waited.
        waited: Duration,
        /// How many connections were tried.
        attempts: u32,
        /// The last attempt's error.
        error: postgres::Error,
        /// What to do about it, as `\n   = help: ...`, or empty.
        hint: String,
    },
}

/// libpq's sslmode values; the driver knows only disable, prefer and require.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Option<SslMode> {
        Some(match value {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn needs_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }

    /// What the driver is told: whether TLS is skipped, tried or insisted on. Certificate
    /// checks are the TLS connector's business.
    fn driver(self) -> DriverSslMode {
        match self {
            SslMode::Disable => DriverSslMode::Disable,
            // libpq's allow tries plain first; the driver cannot, and trying TLS first gives
            // the same outcome against any server that allow would accept.
            SslMode::Allow | SslMode::Prefer => DriverSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverSslMode::Require,
        }
    }
}

/// Settings read from one source, before libpq's defaults fill the gaps.
struct Draft {
    config: Config,
    ssl_mode: Option<SslMode>,
    root_cert: Option<String>,
}

impl Draft {
    fn empty() -> Draft {
        Draft {
            config: Config::new(),
            ssl_mode: None,
            root_cert: None,
        }
    }
}

impl ConnectionSettings {
    /// Resolution order: `explicit_url` (the CLI's --database-url), then DATABASE_URL, then the
    /// DB_HOST/DB_PORT/DB_NAME/DB_USER/DB_PASSWORD variables (chosen when DB_HOST or DB_NAME is set),
    /// then libpq's PGHOST/PGPORT/PGDATABASE/PGUSER/PGPASSWORD/PGSSLMODE (chosen when any of
    /// PGHOST/PGDATABASE/PGUSER/PGPORT is set). Ok(None) when nothing is configured.
    ///
    /// Whatever the chosen source leaves out falls back to the `PG*` variables, as in libpq
    /// (`DATABASE_URL=postgresql://app@db/app` with `PGPASSWORD` set uses that password), then
    /// to `localhost` and port 5432. Empty variables count as unset. URLs and `key=value`
    /// strings take libpq's `sslmode` (disable, allow, prefer, require, verify-ca,
    /// verify-full) and `sslrootcert`; `PGSSLROOTCERT` is read too.
    ///
    /// ```
    /// use migrate_runtime::config::ConnectionSettings;
    ///
    /// let env = |name: &str| match name {
    ///     "DB_HOST" => Some("db.internal".to_owned()),
    ///     "DB_NAME" => Some("invoices".to_owned()),
    ///     "DB_PASSWORD" => Some("s3cret".to_owned()),
    ///     _ => None,
    /// };
    /// let settings = ConnectionSettings::resolve(None, env)?.expect("DB_HOST is set");
    /// assert_eq!(settings.source(), "DB_* variables");
    /// assert_eq!(settings.describe(), "postgresql://db.internal:5432/invoices");
    /// # Ok::<(), migrate_runtime::config::ConfigError>(())
    /// ```
    pub fn resolve(
        explicit_url: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<ConnectionSettings>, ConfigError> {
        let env = |name: &str| env(name).filter(|value| !value.is_empty());
        let (mut draft, source) = if let Some(url) = explicit_url {
            (parse_connection_string(url, FROM_FLAG)?, FROM_FLAG)
        } else if let Some(url) = env("DATABASE_URL") {
            (
                parse_connection_string(&url, FROM_DATABASE_URL)?,
                FROM_DATABASE_URL,
            )
        } else if env("DB_HOST").is_some() || env("DB_NAME").is_some() {
            (db_variables(&env)?, FROM_DB_VARIABLES)
        } else if PG_SELECTORS.iter().any(|name| env(name).is_some()) {
            // Everything comes from the libpq defaults below.
            (Draft::empty(), FROM_PG_VARIABLES)
        } else {
            return Ok(None);
        };
        fill_from_libpq_env(&mut draft, &env)?;
        Ok(Some(ConnectionSettings::from_draft(draft, source)))
    }

    /// [`resolve`](Self::resolve) with the process environment.
    ///
    /// ```no_run
    /// use migrate_runtime::config::ConnectionSettings;
    ///
    /// match ConnectionSettings::from_env(None)? {
    ///     Some(settings) => log::info!("database: {}", settings.describe()),
    ///     None => log::warn!("set DATABASE_URL, DB_HOST/DB_NAME or PGHOST/PGDATABASE"),
    /// }
    /// # Ok::<(), migrate_runtime::config::ConfigError>(())
    /// ```
    pub fn from_env(explicit_url: Option<&str>) -> Result<Option<ConnectionSettings>, ConfigError> {
        Self::resolve(explicit_url, |name| std::env::var(name).ok())
    }

    /// Wrap an existing config (e.g. a throwaway test server's); TLS off.
    ///
    /// ```no_run
    /// use migrate_runtime::config::ConnectionSettings;
    ///
    /// let mut config = postgres::Config::new();
    /// config.host("localhost").user("postgres").dbname("app");
    /// let settings = ConnectionSettings::from_config(config);
    /// assert_eq!(settings.source(), "configuration");
    /// ```
    pub fn from_config(mut config: Config) -> ConnectionSettings {
        config.ssl_mode(DriverSslMode::Disable);
        ConnectionSettings {
            config,
            source: FROM_CONFIG,
            ssl_mode: SslMode::Disable,
            root_cert: None,
        }
    }

    fn from_draft(draft: Draft, source: &'static str) -> ConnectionSettings {
        let Draft {
            mut config,
            ssl_mode,
            root_cert,
        } = draft;
        let ssl_mode = ssl_mode.unwrap_or(SslMode::Prefer);
        // PostgreSQL never speaks TLS on a Unix socket, and libpq ignores sslmode there;
        // the driver would instead fail a `require` against the socket.
        let driver_mode = if only_unix_sockets(&config) {
            DriverSslMode::Disable
        } else {
            ssl_mode.driver()
        };
        config.ssl_mode(driver_mode);
        ConnectionSettings {
            config,
            source,
            ssl_mode,
            root_cert: root_cert.map(PathBuf::from),
        }
    }

    /// Which source was used: "--database-url", "DATABASE_URL", "DB_* variables", "PG* variables", "configuration".
    ///
    /// ```
    /// let settings = migrate_runtime::config::ConnectionSettings::resolve(Some("host=db"), |_| None)?.unwrap();
    /// assert_eq!(settings.source(), "--database-url");
    /// # Ok::<(), migrate_runtime::config::ConfigError>(())
    /// ```
    pub fn source(&self) -> &'static str {
        self.source
    }

    /// A one-line description safe to print and log: `postgresql://user@host:port/dbname` (Unix socket hosts
    /// shown as the path), plus ` sslmode=...` when not the default. NEVER the password.
    ///
    /// ```
    /// let url = "postgresql://app:s3cret@db.internal:6432/app?sslmode=verify-full";
    /// let settings = migrate_runtime::config::ConnectionSettings::resolve(Some(url), |_| None)?.unwrap();
    /// assert_eq!(settings.describe(), "postgresql://app@db.internal:6432/app sslmode=verify-full");
    /// # Ok::<(), migrate_runtime::config::ConfigError>(())
    /// ```
    pub fn describe(&self) -> String {
        let mut text = String::from("postgresql://");
        if let Some(user) = self.config.get_user() {
            text.push_str(user);
            text.push('@');
        }
        text.push_str(&self.hosts_text());
        if let Some(dbname) = self.config.get_dbname() {
            text.push('/');
            text.push_str(dbname);
        }
        if self.ssl_mode != SslMode::Prefer {
            text.push_str(" sslmode=");
            text.push_str(self.ssl_mode.as_str());
        }
        if let Some(root_cert) = &self.root_cert {
            text.push_str(&format!(" sslrootcert={}", root_cert.display()));
        }
        text
    }

    /// `host:port` for each host, comma-separated, as a URL would list them.
    fn hosts_text(&self) -> String {
        let hosts = self.config.get_hosts();
        let addrs = self.config.get_hostaddrs();
        let ports = self.config.get_ports();
        (0..hosts.len().max(addrs.len()))
            .map(|i| {
                let host = match (hosts.get(i), addrs.get(i)) {
                    (Some(Host::Tcp(name)), _) if name.contains(':') => format!("[{name}]"),
                    (Some(Host::Tcp(name)), _) => name.clone(),
                    #[cfg(unix)]
                    (Some(Host::Unix(path)), _) => path.display().to_string(),
                    (None, Some(addr)) if addr.is_ipv6() => format!("[{addr}]"),
                    (None, Some(addr)) => addr.to_string(),
                    (None, None) => String::new(),
                };
                let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
                format!("{host}:{port}")
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The driver config (password included; for connecting only).
    ///
    /// ```no_run
    /// # let settings: migrate_runtime::config::ConnectionSettings = unimplemented!();
    /// let dbname = settings.config().get_dbname();
    /// ```
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Connect once, honouring sslmode.
    ///
    /// ```no_run
    /// # let settings: migrate_runtime::config::ConnectionSettings = unimplemented!();
    /// let mut client = settings.connect()?;
    /// client.batch_execute("SELECT 1")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect(&self) -> Result<Client, ConfigError> {
        let tls = self.tls()?;
        tls.connect(&self.config)
            .map_err(|error| self.connect_error(error))
    }

    /// Keep retrying while the server is not reachable yet (connection refused, no such socket, server
    /// starting up: SQLSTATE 57P03 "the database system is starting up") until `wait` has elapsed, with a
    /// short backoff (e.g. 100 ms doubling to 1 s). Authentication or other server errors are not retried.
    /// The final error says how long it waited and the last reason.
    ///
    /// ```no_run
    /// # let settings: migrate_runtime::config::ConnectionSettings = unimplemented!();
    /// // A container started next to the database: give it half a minute to come up.
    /// let mut client = settings.connect_with_wait(std::time::Duration::from_secs(30))?;
    /// # Ok::<(), migrate_runtime::config::ConfigError>(())
    /// ```
    pub fn connect_with_wait(&self, wait: Duration) -> Result<Client, ConfigError> {
        let tls = self.tls()?;
        let deadline = Instant::now() + wait;
        let mut backoff = FIRST_BACKOFF;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let error = match tls.connect(&self.attempt_config(deadline)) {
                Ok(client) => return Ok(client),
                Err(error) => error,
            };
            let now = Instant::now();
            if !is_transient(&error) || wait.is_zero() {
                return Err(self.connect_error(error));
            }
            if now >= deadline {
                return Err(ConfigError::Timeout {
                    target: self.describe(),
                    from: self.source,
                    waited: wait,
                    attempts,
                    hint: self.hint(&error),
                    error,
                });
            }
            log::debug!(
                "{} is not reachable yet ({}); retrying",
                self.describe(),
                error_text(&error)
            );
            std::thread::sleep(backoff.min(deadline - now));
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// The config for one attempt: a host that drops packets must not hold an attempt for the
    /// operating system's TCP timeout (minutes), far beyond the wait.
    fn attempt_config(&self, deadline: Instant) -> Config {
        let remaining = deadline
            .saturating_duration_since(Instant::now())
            .max(MIN_ATTEMPT_TIMEOUT);
        let mut config = self.config.clone();
        match config.get_connect_timeout() {
            Some(timeout) if *timeout <= remaining => {}
            _ => {
                config.connect_timeout(remaining);
            }
        }
        config
    }

    fn tls(&self) -> Result<Tls, ConfigError> {
        if self.config.get_ssl_mode() == DriverSslMode::Disable {
            return Ok(Tls::Off);
        }
        Tls::for_mode(self.ssl_mode, self.root_cert.as_deref())
    }

    fn connect_error(&self, error: postgres::Error) -> ConfigError {
        ConfigError::Connect {
            target: self.describe(),
            from: self.source,
            hint: self.hint(&error),
            error,
        }
    }

    /// What the user can do about a failed connection, as a `= help:` line.
    fn hint(&self, error: &postgres::Error) -> String {
        let help = match error.code() {
            // 28000 is also pg_hba.conf's refusal, where the password is not the problem.
            Some(code)
                if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                    && error_text(error).contains("pg_hba.conf") =>
            {
                if error_text(error).contains("no encryption") {
                    "the server admits this user, database and host only over TLS: use sslmode=require (or verify-full)".to_owned()
                } else {
                    "the server's pg_hba.conf has no entry admitting this user, database and host with this encryption: change one of them, or ask the server's administrator".to_owned()
                }
            }
            Some(code)
                if *code == SqlState::INVALID_PASSWORD
                    || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
            {
                format!(
                    "check the user name and password (from {})",
                    self.source
                )
            }
            Some(code) if *code == SqlState::INVALID_CATALOG_NAME => {
                "create the database (createdb NAME) or fix the database name".to_owned()
            }
            Some(_) => return String::new(),
            None => match self.tls_hint(error) {
                Some(help) => help,
                // The driver's own words when the server asks for a password and has none.
                None if error_text(error).contains("password missing") => format!(
                    "the server asks for a password and none was given (settings from {}): add it (postgresql://USER:PASSWORD@HOST/DATABASE), or set PGPASSWORD",
                    self.source
                ),
                None if is_transient(error) => {
                    "is the server running, and listening on that host and port?".to_owned()
                }
                None => return String::new(),
            },
        };
        format!("\n   = help: {help}")
    }

    fn tls_hint(&self, error: &postgres::Error) -> Option<String> {
        // The driver's error kinds are private; its TLS failures are recognised by their text.
        let text = error_text(error);
        if !text.contains("TLS") {
            return None;
        }
        // OpenSSL's reasons when the chain is trusted but the certificate is for other names.
        if text.contains("hostname mismatch") || text.contains("IP address mismatch") {
            return Some(format!(
                "the server's certificate does not name the host connected to ({}), which verify-full requires: connect with a host name the certificate lists (with hostaddr=IP to skip name resolution), or use sslmode=verify-ca to check the certificate without the host name",
                self.hosts_text()
            ));
        }
        Some(if text.contains("server does not support TLS") {
            "the server does not accept TLS connections: turn on ssl in the server, or use sslmode=prefer (TLS when offered) or sslmode=disable"
        } else if self.ssl_mode.needs_tls() {
            "the server's certificate was not accepted: set sslrootcert=PATH to the certificate of the CA that signed it, check the host name against the certificate (verify-full), or use sslmode=require to encrypt without verifying"
        } else {
            "the TLS handshake failed: use sslmode=disable to connect without TLS"
        }.to_owned())
    }
}

impl fmt::Debug for ConnectionSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionSettings")
            .field("target", &self.describe())
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Errors that mean "not reachable yet": no listener, no socket file, a dropped or reset
/// connection, a timeout, a name that does not resolve yet (containers starting together),
/// or a server still starting up or recovering.
fn is_transient(error: &postgres::Error) -> bool {
    if let Some(code) = error.code() {
        return *code == SqlState::CANNOT_CONNECT_NOW;
    }
    if error.is_closed() {
        return true;
    }
    match error
        .source()
        .and_then(|source| source.downcast_ref::<io::Error>())
    {
        Some(io) => !matches!(
            io.kind(),
            io::ErrorKind::PermissionDenied
                | io::ErrorKind::InvalidInput
                | io::ErrorKind::InvalidData
                | io::ErrorKind::Unsupported
        ),
        None => false,
    }
}

/// The driver's message with its causes: its own `Display` stops at "error connecting to
/// server" and leaves out the reason.
fn error_text(error: &postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{db} (SQLSTATE {})", db.code().code());
    }
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        // OpenSSL's errors repeat their cause in their own message.
        let next = error.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = error.source();
    }
    text
}

fn human_duration(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{} ms", duration.as_millis())
    } else if duration.subsec_millis() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

fn only_unix_sockets(config: &Config) -> bool {
    #[cfg(unix)]
    {
        !config.get_hosts().is_empty()
            && config.get_hostaddrs().is_empty()
            && config
                .get_hosts()
                .iter()
                .all(|host| matches!(host, Host::Unix(_)))
    }
    #[cfg(not(unix))]
    {
        let _ = config;
        false
    }
}

/// How to connect: plainly, or with a native-tls connector set up for the sslmode.
enum Tls {
    Off,
    #[cfg(feature = "tls")]
    Native(postgres_native_tls::MakeTlsConnector),
}

impl Tls {
    fn connect(&self, config: &Config) -> Result<Client, postgres::Error> {
        match self {
            Tls::Off => config.connect(NoTls),
            #[cfg(feature = "tls")]
            Tls::Native(connector) => config.connect(connector.clone()),
        }
    }

    #[cfg(not(feature = "tls"))]
    fn for_mode(mode: SslMode, _root_cert: Option<&std::path::Path>) -> Result<Tls, ConfigError> {
        if mode.needs_tls() {
            return Err(ConfigError::TlsNotEnabled {
                mode: mode.as_str(),
            });
        }
        // The driver's `prefer` with a client that cannot do TLS connects in plain text.
        Ok(Tls::Off)
    }

    /// libpq's checks: `allow`/`prefer`/`require` encrypt without checking the certificate,
    /// except that `require` with a CA file verifies the chain as libpq does; `verify-ca`
    /// checks the chain, `verify-full` the chain and the host name.
    #[cfg(feature = "tls")]
    fn for_mode(mode: SslMode, root_cert: Option<&std::path::Path>) -> Result<Tls, ConfigError> {
        let verify_chain = match mode {
            SslMode::VerifyCa | SslMode::VerifyFull => true,
            SslMode::Require => root_cert.is_some(),
            SslMode::Disable | SslMode::Allow | SslMode::Prefer => false,
        };
        let mut builder = native_tls::TlsConnector::builder();
        builder
            .danger_accept_invalid_certs(!verify_chain)
            .danger_accept_invalid_hostnames(mode != SslMode::VerifyFull);
        // libpq 16's `sslrootcert=system` means the system's trusted CAs, as does no file.
        let system = std::path::Path::new("system");
        if let Some(path) = root_cert.filter(|path| verify_chain && *path != system) {
            builder.disable_built_in_roots(true);
            for certificate in read_root_certificates(path)? {
                builder.add_root_certificate(certificate);
            }
        }
        let connector = builder.build().map_err(|error| ConfigError::Tls {
            reason: error.to_string(),
        })?;
        Ok(Tls::Native(postgres_native_tls::MakeTlsConnector::new(
            connector,
        )))
    }
}

#[cfg(feature = "tls")]
fn read_root_certificates(
    path: &std::path::Path,
) -> Result<Vec<native_tls::Certificate>, ConfigError> {
    let pem = std::fs::read(path).map_err(|error| ConfigError::RootCertificate {
        path: path.to_owned(),
        error,
    })?;
    let no_certificate = |detail: String| ConfigError::Tls {
        reason: format!(
            "{} (sslrootcert) holds no usable PEM certificate{detail}",
            path.display()
        ),
    };
    let certificates = native_tls::Certificate::stack_from_pem(&pem)
        .map_err(|error| no_certificate(format!(": {error}")))?;
    if certificates.is_empty() {
        return Err(no_certificate(String::new()));
    }
    Ok(certificates)
}

// ---------------------------------------------------------------------------------------------
// Reading the sources

/// `DB_HOST`, `DB_PORT` (default 5432), `DB_NAME`, `DB_USER`, `DB_PASSWORD`.
fn db_variables(env: &dyn Fn(&str) -> Option<String>) -> Result<Draft, ConfigError> {
    let mut draft = Draft::empty();
    let config = &mut draft.config;
    if let Some(host) = env("DB_HOST") {
        config.host(&host);
    }
    match env("DB_PORT") {
        Some(port) => config.port(parse_port("DB_PORT", &port, &port)?),
        None => config.port(5432),
    };
    if let Some(dbname) = env("DB_NAME") {
        config.dbname(&dbname);
    }
    if let Some(user) = env("DB_USER") {
        config.user(&user);
    }
    if let Some(password) = env("DB_PASSWORD") {
        config.password(password);
    }
    Ok(draft)
}

/// libpq's environment defaults for whatever the source left out, then `localhost`.
fn fill_from_libpq_env(
    draft: &mut Draft,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    let config = &mut draft.config;
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        for host in env("PGHOST").iter().flat_map(|hosts| list(hosts)) {
            config.host(host);
        }
        if let Some(addrs) = env("PGHOSTADDR") {
            for addr in list(&addrs) {
                config.hostaddr(addr.parse().map_err(|_| ConfigError::InvalidVariable {
                    name: "PGHOSTADDR",
                    value: addrs.clone(),
                    reason: "expected IP addresses separated by commas",
                })?);
            }
        }
        if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
            config.host("localhost");
        }
    }
    if config.get_ports().is_empty() {
        if let Some(ports) = env("PGPORT") {
            for port in list(&ports) {
                config.port(parse_port("PGPORT", &ports, port)?);
            }
        }
    }
    if config.get_user().is_none() {
        if let Some(user) = env("PGUSER") {
            config.user(&user);
        }
    }
    if config.get_dbname().is_none() {
        if let Some(dbname) = env("PGDATABASE") {
            config.dbname(&dbname);
        }
    }
    if config.get_password().is_none() {
        if let Some(password) = env("PGPASSWORD") {
            config.password(password);
        }
    }
    if draft.ssl_mode.is_none() {
        if let Some(value) = env("PGSSLMODE") {
            draft.ssl_mode = Some(parse_ssl_mode(value, "PGSSLMODE")?);
        }
    }
    if draft.root_cert.is_none() {
        draft.root_cert = env("PGSSLROOTCERT");
    }
    Ok(())
}

fn list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

fn parse_port(name: &'static str, value: &str, item: &str) -> Result<u16, ConfigError> {
    match item.trim().parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(ConfigError::InvalidVariable {
            name,
            value: value.to_owned(),
            reason: "expected a port number from 1 to 65535",
        }),
    }
}

fn parse_ssl_mode(value: String, from: &'static str) -> Result<SslMode, ConfigError> {
    SslMode::parse(&value).ok_or(ConfigError::InvalidSslMode { from, value })
}

/// A URL or `key=value` string, with libpq's TLS parameters taken out before the driver
/// (which rejects verify-ca, verify-full and sslrootcert) reads the rest.
fn parse_connection_string(input: &str, from: &'static str) -> Result<Draft, ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidConnectionString {
        from,
        redacted: redact(input),
        reason,
    };
    if input.trim().is_empty() {
        return Err(invalid("it is empty".to_owned()));
    }
    let stripped = strip_tls_params(input).map_err(invalid)?;
    let config: Config = stripped.rest.parse().map_err(|error: postgres::Error| {
        invalid(match error.source() {
            Some(cause) => cause.to_string(),
            None => error.to_string(),
        })
    })?;
    let ssl_mode = stripped
        .sslmode
        .map(|value| parse_ssl_mode(value, from))
        .transpose()?;
    Ok(Draft {
        config,
        ssl_mode,
        root_cert: stripped.sslrootcert,
    })
}

/// A connection string without its TLS parameters, and their values (the last one wins, as
/// in libpq).
#[derive(Debug, PartialEq)]
struct Stripped {
    rest: String,
    sslmode: Option<String>,
    sslrootcert: Option<String>,
}

impl Stripped {
    fn is_tls_param(key: &str) -> bool {
        matches!(key, "sslmode" | "sslrootcert")
    }

    fn set(&mut self, key: &str, value: String) {
        if key == "sslmode" {
            self.sslmode = Some(value);
        } else {
            self.sslrootcert = Some(value);
        }
    }
}

fn strip_tls_params(input: &str) -> Result<Stripped, String> {
    match url_scheme_len(input) {
        Some(scheme) => strip_url_params(input, scheme),
        None => strip_conninfo_params(input),
    }
}

fn url_scheme_len(input: &str) -> Option<usize> {
    ["postgresql://", "postgres://"]
        .iter()
        .find(|scheme| input.starts_with(**scheme))
        .map(|scheme| scheme.len())
}

fn strip_url_params(input: &str, scheme: usize) -> Result<Stripped, String> {
    // The query starts at the first `?` after the credentials, which (as the driver reads
    // them) end at the first `@`.
    let after_credentials = input[scheme..]
        .find('@')
        .map_or(scheme, |at| scheme + at + 1);
    let mut stripped = Stripped {
        rest: input.to_owned(),
        sslmode: None,
        sslrootcert: None,
    };
    let Some(question) = input[after_credentials..].find('?') else {
        return Ok(stripped);
    };
    let query_start = after_credentials + question;
    let mut kept = Vec::new();
    for pair in input[query_start + 1..].split('&') {
        if let Some((key, value)) = pair.split_once('=') {
            let key = percent_decode(key)?;
            if Stripped::is_tls_param(&key) {
                stripped.set(&key, percent_decode(value)?);
                continue;
            }
        }
        if !pair.is_empty() {
            kept.push(pair);
        }
    }
    stripped.rest = input[..query_start].to_owned();
    if !kept.is_empty() {
        stripped.rest.push('?');
        stripped.rest.push_str(&kept.join("&"));
    }
    Ok(stripped)
}

fn strip_conninfo_params(input: &str) -> Result<Stripped, String> {
    let mut stripped = Stripped {
        rest: String::new(),
        sslmode: None,
        sslrootcert: None,
    };
    let mut kept = Vec::new();
    for param in conninfo_params(input)? {
        if Stripped::is_tls_param(param.key) {
            stripped.set(param.key, param.value);
        } else {
            kept.push(&input[param.span]);
        }
    }
    stripped.rest = kept.join(" ");
    Ok(stripped)
}

/// One `key = value` of a libpq `key=value` connection string, with the byte range it spans.
struct Param<'a> {
    key: &'a str,
    value: String,
    span: std::ops::Range<usize>,
}

/// Reads `key=value` pairs as libpq does: spaces around `=` allowed, values single-quoted or
/// bare, `\` escaping the next character. Errors never quote the input (it may hold a password).
fn conninfo_params(input: &str) -> Result<Vec<Param<'_>>, String> {
    let bytes = input.as_bytes();
    let skip_spaces = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        i
    };
    let mut params = Vec::new();
    let mut i = skip_spaces(0);
    while i < bytes.len() {
        let start = i;
        while bytes
            .get(i)
            .is_some_and(|b| !b.is_ascii_whitespace() && *b != b'=')
        {
            i += 1;
        }
        let key = &input[start..i];
        i = skip_spaces(i);
        if key.is_empty() || bytes.get(i) != Some(&b'=') {
            return Err(format!(
                "expected key=value pairs separated by spaces (at byte {start})"
            ));
        }
        let (value, end) = conninfo_value(bytes, skip_spaces(i + 1))?;
        params.push(Param {
            key,
            value,
            span: start..end,
        });
        i = skip_spaces(end);
    }
    Ok(params)
}

/// The value starting at byte `i`, and the byte after it.
fn conninfo_value(bytes: &[u8], mut i: usize) -> Result<(String, usize), String> {
    let quoted = bytes.get(i) == Some(&b'\'');
    if quoted {
        i += 1;
    }
    let mut value = Vec::new();
    loop {
        match bytes.get(i) {
            None if quoted => return Err("a quoted value is not closed with `'`".to_owned()),
            None => break,
            Some(b'\'') if quoted => {
                i += 1;
                break;
            }
            Some(b) if !quoted && b.is_ascii_whitespace() => break,
            Some(b'\\') => {
                if let Some(next) = bytes.get(i + 1) {
                    value.push(*next);
                }
                i += 2;
            }
            Some(b) => {
                value.push(*b);
                i += 1;
            }
        }
    }
    // Only ASCII backslashes and quotes were removed from valid UTF-8, so it stays valid.
    Ok((
        String::from_utf8_lossy(&value).into_owned(),
        i.min(bytes.len()),
    ))
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(decoded)
        .map_err(|_| "a URL parameter is not UTF-8 after percent-decoding".to_owned())
}

// ---------------------------------------------------------------------------------------------
// Redaction

/// A database URL with its password replaced by `***` (for messages that echo user input). Also handles
/// `password=` key/value connection strings.
///
/// It errs on the side of hiding too much: a malformed URL may lose more than its password.
///
/// ```
/// use migrate_runtime::config::redact;
///
/// assert_eq!(redact("postgresql://app:s3cret@db/app"), "postgresql://app:***@db/app");
/// assert_eq!(redact("host=db password='s3 cret' dbname=app"), "host=db password=*** dbname=app");
/// ```
pub fn redact(url_or_conninfo: &str) -> String {
    match url_or_conninfo.find("://") {
        Some(scheme_end) => redact_url(url_or_conninfo, scheme_end + 3),
        None => redact_conninfo(url_or_conninfo),
    }
}

fn redact_url(url: &str, authority: usize) -> String {
    // The last `@` (not the first, as the driver reads it): a password with a raw `@` must not
    // leak its tail.
    let (credentials, rest) = match url[authority..].rfind('@') {
        Some(at) => (&url[authority..authority + at], &url[authority + at..]),
        None => ("", &url[authority..]),
    };
    let credentials = match credentials.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => credentials.to_owned(),
    };
    let rest = match rest.split_once('?') {
        Some((path, query)) => format!("{path}?{}", redact_query(query)),
        None => rest.to_owned(),
    };
    format!("{}{credentials}{rest}", &url[..authority])
}

fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if is_password_key(key) => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn is_password_key(key: &str) -> bool {
    percent_decode(key).is_ok_and(|key| key.eq_ignore_ascii_case("password"))
}

/// Masks the values of `password` keys, reading leniently (a malformed string is still
/// masked), and any word that is not `key=value` (it may be a pasted password).
fn redact_conninfo(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            out.push(char::from(bytes[i]));
            i += 1;
            continue;
        }
        let start = i;
        while bytes
            .get(i)
            .is_some_and(|b| !b.is_ascii_whitespace() && *b != b'=')
        {
            i += 1;
        }
        let key = &text[start..i];
        let mut after_key = i;
        while bytes.get(after_key).is_some_and(u8::is_ascii_whitespace) {
            after_key += 1;
        }
        if bytes.get(after_key) != Some(&b'=') {
            out.push_str("***");
            continue;
        }
        let value_start = (after_key + 1..bytes.len())
            .find(|&j| !bytes[j].is_ascii_whitespace())
            .unwrap_or(bytes.len());
        let end = conninfo_value(bytes, value_start).map_or(bytes.len(), |(_, end)| end);
        out.push_str(key);
        if key.eq_ignore_ascii_case("password") {
            out.push_str("=***");
        } else {
            out.push_str(&text[i..end]);
        }
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SECRET: &str = "Zx9-very-secret-pw";

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn resolve(explicit: Option<&str>, pairs: &[(&str, &str)]) -> ConnectionSettings {
        ConnectionSettings::resolve(explicit, env_of(pairs))
            .unwrap()
            .expect("settings")
    }

    fn resolve_err(explicit: Option<&str>, pairs: &[(&str, &str)]) -> ConfigError {
        match ConnectionSettings::resolve(explicit, env_of(pairs)) {
            Ok(settings) => panic!("expected an error, got {settings:?}"),
            Err(error) => error,
        }
    }

    fn assert_secret_free(texts: &[String]) {
        for text in texts {
            assert!(!text.contains(SECRET), "password leaked: {text}");
            assert!(!text.contains("very-secret"), "password leaked: {text}");
        }
    }

    fn assert_error_secret_free(error: &ConfigError) {
        assert_secret_free(&[error.to_string(), format!("{error:?}")]);
    }

    fn tcp_hosts(settings: &ConnectionSettings) -> Vec<String> {
        settings
            .config()
            .get_hosts()
            .iter()
            .map(|host| match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            })
            .collect()
    }

    #[test]
    fn nothing_configured_is_none() {
        let settings = ConnectionSettings::resolve(None, env_of(&[])).unwrap();
        assert!(settings.is_none());
        // PGPASSWORD and PGSSLMODE alone do not choose a database.
        let settings = ConnectionSettings::resolve(
            None,
            env_of(&[
                ("PGPASSWORD", SECRET),
                ("PGSSLMODE", "require"),
                ("DB_USER", "x"),
            ]),
        )
        .unwrap();
        assert!(settings.is_none());
        // Empty variables are unset.
        let settings =
            ConnectionSettings::resolve(None, env_of(&[("DATABASE_URL", ""), ("DB_HOST", "")]))
                .unwrap();
        assert!(settings.is_none());
    }

    #[test]
    fn precedence_flag_then_database_url_then_db_then_pg() {
        let all = [
            ("DATABASE_URL", "postgresql://env@envhost/envdb"),
            ("DB_HOST", "dbhost"),
            ("DB_NAME", "dbname"),
            ("PGHOST", "pghost"),
            ("PGDATABASE", "pgdb"),
        ];
        let flag = resolve(Some("postgresql://flag@flaghost/flagdb"), &all);
        assert_eq!(flag.source(), "--database-url");
        assert_eq!(flag.describe(), "postgresql://flag@flaghost:5432/flagdb");

        let url = resolve(None, &all);
        assert_eq!(url.source(), "DATABASE_URL");
        assert_eq!(url.describe(), "postgresql://env@envhost:5432/envdb");

        let db = resolve(None, &all[1..]);
        assert_eq!(db.source(), "DB_* variables");
        assert_eq!(tcp_hosts(&db), ["dbhost"]);
        assert_eq!(db.config().get_dbname(), Some("dbname"));

        let pg = resolve(None, &all[3..]);
        assert_eq!(pg.source(), "PG* variables");
        assert_eq!(pg.describe(), "postgresql://pghost:5432/pgdb");
    }

    #[test]
    fn db_name_alone_or_db_host_alone_selects_db_variables() {
        assert_eq!(
            resolve(None, &[("DB_NAME", "app"), ("PGHOST", "x")]).source(),
            "DB_* variables"
        );
        assert_eq!(
            resolve(None, &[("DB_HOST", "h")]).source(),
            "DB_* variables"
        );
    }

    #[test]
    fn db_variables_build_every_field() {
        let settings = resolve(
            None,
            &[
                ("DB_HOST", "db.internal"),
                ("DB_PORT", "6543"),
                ("DB_NAME", "invoke_db"),
                ("DB_USER", "app"),
                ("DB_PASSWORD", SECRET),
            ],
        );
        let config = settings.config();
        assert_eq!(tcp_hosts(&settings), ["db.internal"]);
        assert_eq!(config.get_ports(), [6543]);
        assert_eq!(config.get_dbname(), Some("invoke_db"));
        assert_eq!(config.get_user(), Some("app"));
        assert_eq!(config.get_password(), Some(SECRET.as_bytes()));
        assert_eq!(
            settings.describe(),
            "postgresql://app@db.internal:6543/invoke_db"
        );
    }

    #[test]
    fn db_variables_default_to_port_5432_and_localhost() {
        let settings = resolve(None, &[("DB_NAME", "app")]);
        assert_eq!(settings.config().get_ports(), [5432]);
        assert_eq!(tcp_hosts(&settings), ["localhost"]);
        assert_eq!(settings.describe(), "postgresql://localhost:5432/app");
    }

    #[test]
    fn pg_variables_build_every_field() {
        let settings = resolve(
            None,
            &[
                ("PGHOST", "a.example,b.example"),
                ("PGPORT", "5433,5434"),
                ("PGDATABASE", "app"),
                ("PGUSER", "me"),
                ("PGPASSWORD", SECRET),
                ("PGSSLMODE", "verify-full"),
                ("PGSSLROOTCERT", "/etc/ca.pem"),
            ],
        );
        let config = settings.config();
        assert_eq!(tcp_hosts(&settings), ["a.example", "b.example"]);
        assert_eq!(config.get_ports(), [5433, 5434]);
        assert_eq!(config.get_password(), Some(SECRET.as_bytes()));
        assert_eq!(config.get_ssl_mode(), DriverSslMode::Require);
        assert_eq!(
            settings.describe(),
            "postgresql://me@a.example:5433,b.example:5434/app sslmode=verify-full sslrootcert=/etc/ca.pem"
        );
    }

    #[test]
    fn pg_unix_socket_host_is_shown_as_a_path_and_never_uses_tls() {
        let settings = resolve(
            None,
            &[
                ("PGHOST", "/var/run/postgresql"),
                ("PGUSER", "postgres"),
                ("PGSSLMODE", "require"),
            ],
        );
        assert_eq!(
            settings.describe(),
            "postgresql://postgres@/var/run/postgresql:5432 sslmode=require"
        );
        assert_eq!(settings.config().get_ssl_mode(), DriverSslMode::Disable);
    }

    #[test]
    fn pg_variables_fill_what_a_url_leaves_out() {
        let settings = resolve(
            None,
            &[
                ("DATABASE_URL", "postgresql://app@db/app"),
                ("PGPASSWORD", SECRET),
                ("PGHOST", "ignored"),
                ("PGSSLMODE", "require"),
            ],
        );
        assert_eq!(tcp_hosts(&settings), ["db"]);
        assert_eq!(settings.config().get_password(), Some(SECRET.as_bytes()));
        assert_eq!(settings.ssl_mode, SslMode::Require);
        // The URL's own sslmode wins over PGSSLMODE.
        let settings = resolve(
            Some("postgresql:///app?sslmode=disable"),
            &[
                ("PGSSLMODE", "require"),
                ("PGHOST", "pghost"),
                ("PGPORT", "7000"),
            ],
        );
        assert_eq!(settings.ssl_mode, SslMode::Disable);
        assert_eq!(
            settings.describe(),
            "postgresql://pghost:7000/app sslmode=disable"
        );
    }

    #[test]
    fn url_tls_params_are_stripped_and_understood() {
        let stripped = strip_tls_params(
            "postgresql://u:p@h:5/db?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(
            stripped,
            Stripped {
                rest: "postgresql://u:p@h:5/db?application_name=x&connect_timeout=3".to_owned(),
                sslmode: Some("verify-full".to_owned()),
                sslrootcert: Some("/etc/ca.pem".to_owned()),
            }
        );
        let only_tls = strip_tls_params("postgres://h/db?sslmode=verify-ca").unwrap();
        assert_eq!(only_tls.rest, "postgres://h/db");
        let none = strip_tls_params("postgres://h/db").unwrap();
        assert_eq!(none.rest, "postgres://h/db");
        assert_eq!(none.sslmode, None);

        let settings = resolve(
            Some("postgresql://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem"),
            &[],
        );
        assert_eq!(settings.ssl_mode, SslMode::VerifyFull);
        assert_eq!(settings.root_cert, Some(PathBuf::from("/ca.pem")));
        assert_eq!(settings.config().get_ssl_mode(), DriverSslMode::Require);
    }

    #[test]
    fn conninfo_tls_params_are_stripped_and_understood() {
        let stripped = strip_tls_params(
            "host=h  sslmode = 'verify-full' sslrootcert='/my certs/ca.pem' password='a b\\'c' dbname=db",
        )
        .unwrap();
        assert_eq!(stripped.rest, "host=h password='a b\\'c' dbname=db");
        assert_eq!(stripped.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(stripped.sslrootcert.as_deref(), Some("/my certs/ca.pem"));

        let settings = resolve(
            Some("host=h dbname=db user=u password='a b' sslmode=verify-ca"),
            &[],
        );
        assert_eq!(settings.ssl_mode, SslMode::VerifyCa);
        assert_eq!(settings.config().get_password(), Some(&b"a b"[..]));
        assert_eq!(
            settings.describe(),
            "postgresql://u@h:5432/db sslmode=verify-ca"
        );
    }

    #[test]
    fn every_libpq_sslmode_maps_to_the_driver() {
        for (mode, driver) in [
            ("disable", DriverSslMode::Disable),
            ("allow", DriverSslMode::Prefer),
            ("prefer", DriverSslMode::Prefer),
            ("require", DriverSslMode::Require),
            ("verify-ca", DriverSslMode::Require),
            ("verify-full", DriverSslMode::Require),
        ] {
            let settings = resolve(Some(&format!("postgresql://h/db?sslmode={mode}")), &[]);
            assert_eq!(settings.config().get_ssl_mode(), driver, "{mode}");
            assert_eq!(settings.ssl_mode.as_str(), mode);
            assert_eq!(settings.describe().contains("sslmode"), mode != "prefer");
        }
    }

    #[test]
    fn a_bad_sslmode_lists_the_valid_ones() {
        let error = resolve_err(Some("postgresql://h/db?sslmode=verify"), &[]);
        assert!(
            matches!(error, ConfigError::InvalidSslMode { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("verify-full"), "{message}");
        assert!(message.contains("--database-url"), "{message}");
        let error = resolve_err(None, &[("PGHOST", "h"), ("PGSSLMODE", "on")]);
        assert!(error.to_string().contains("PGSSLMODE"), "{error}");
    }

    #[test]
    fn bad_ports_are_explained_and_keep_the_password_secret() {
        let url = format!("postgresql://u:{SECRET}@h:notaport/db");
        let conninfo = format!("host=h port=notaport password={SECRET}");
        let cases = [
            resolve_err(Some(&url), &[]),
            resolve_err(None, &[("DATABASE_URL", &conninfo)]),
            resolve_err(
                None,
                &[
                    ("DB_HOST", "h"),
                    ("DB_PORT", "notaport"),
                    ("DB_PASSWORD", SECRET),
                ],
            ),
            resolve_err(
                None,
                &[("PGHOST", "h"), ("PGPORT", "0"), ("PGPASSWORD", SECRET)],
            ),
        ];
        for error in &cases {
            assert_error_secret_free(error);
            assert!(error.to_string().contains("port"), "{error}");
        }
        assert!(
            cases[0].to_string().contains("--database-url"),
            "{}",
            cases[0]
        );
        assert!(cases[0].to_string().contains("u:***@h"), "{}", cases[0]);
        assert!(
            cases[2].to_string().contains("DB_PORT=notaport"),
            "{}",
            cases[2]
        );
    }

    #[test]
    fn malformed_strings_are_errors_without_the_password() {
        for input in [
            format!("postgresql:/u:{SECRET}@h/db"),
            format!("host=h password='{SECRET}"),
            format!("host=h {SECRET}"),
            format!("postgresql://u:{SECRET}@h/db?bogus_option=1"),
            "   ".to_owned(),
        ] {
            let error = resolve_err(Some(&input), &[]);
            assert!(
                matches!(error, ConfigError::InvalidConnectionString { .. }),
                "{error:?}"
            );
            assert_error_secret_free(&error);
        }
    }

    #[test]
    fn describe_and_redact_never_show_the_password() {
        let url = format!("postgresql://u:{SECRET}@h/db?password={SECRET}&sslmode=require");
        let conninfo = format!("host=h password = '{SECRET}' user=u");
        let sources: Vec<ConnectionSettings> = vec![
            resolve(Some(&url), &[]),
            resolve(None, &[("DATABASE_URL", &conninfo)]),
            resolve(None, &[("DB_HOST", "h"), ("DB_PASSWORD", SECRET)]),
            resolve(None, &[("PGHOST", "h"), ("PGPASSWORD", SECRET)]),
            ConnectionSettings::from_config({
                let mut config = Config::new();
                config.host("h").password(SECRET);
                config
            }),
        ];
        for settings in &sources {
            assert_eq!(settings.config().get_password(), Some(SECRET.as_bytes()));
            assert_secret_free(&[settings.describe(), format!("{settings:?}")]);
        }
        assert_secret_free(&[redact(&url), redact(&conninfo)]);
        assert_eq!(
            redact(&url),
            "postgresql://u:***@h/db?password=***&sslmode=require"
        );
        assert_eq!(redact(&conninfo), "host=h password=*** user=u");
    }

    #[test]
    fn redact_handles_odd_input() {
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("host=h PASSWORD=x"), "host=h PASSWORD=***");
        assert_eq!(redact("password='unterminated"), "password=***");
        assert_eq!(redact("password=a\\ b host=h"), "password=*** host=h");
        assert_eq!(redact("x:y@h"), "***");
        assert_eq!(redact("postgresql:/u:p@h/db"), "***");
        assert_eq!(redact(""), "");
    }

    #[test]
    fn connection_errors_are_recognised_as_transient_or_not() {
        let config = |port: u16| {
            let mut config = Config::new();
            config.host("127.0.0.1").port(port).user("nobody");
            ConnectionSettings::from_config(config)
        };
        // Nothing listens on a port we just released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let settings = config(port);
        let error = settings.connect().err().expect("the connection fails");
        let ConfigError::Connect { error: driver, .. } = &error else {
            panic!("{error:?}");
        };
        assert!(is_transient(driver), "{error}");
        let message = error.to_string();
        assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
        assert!(message.contains("is the server running"), "{message}");
        assert!(message.contains("configuration"), "{message}");
    }

    #[test]
    fn waiting_reports_how_long_and_why() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let settings = resolve(Some(&format!("postgresql://u@127.0.0.1:{port}/db")), &[]);
        let started = Instant::now();
        let error = settings
            .connect_with_wait(Duration::from_millis(400))
            .err()
            .expect("the connection fails");
        assert!(started.elapsed() >= Duration::from_millis(400));
        let ConfigError::Timeout { attempts, .. } = &error else {
            panic!("{error:?}");
        };
        assert!(*attempts >= 2, "{error}");
        let message = error.to_string();
        assert!(message.contains("after waiting 400 ms"), "{message}");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_millis(250)), "250 ms");
        assert_eq!(human_duration(Duration::from_secs(30)), "30 s");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5 s");
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn tls_modes_need_the_tls_feature() {
        for mode in ["require", "verify-ca", "verify-full"] {
            let settings = resolve(
                Some(&format!("postgresql://127.0.0.1:1/db?sslmode={mode}")),
                &[],
            );
            let error = settings.connect().err().expect("the connection fails");
            assert!(
                matches!(error, ConfigError::TlsNotEnabled { .. }),
                "{error:?}"
            );
            let message = error.to_string();
            assert!(message.contains("`tls` feature"), "{message}");
            assert!(message.contains(mode), "{message}");
        }
        for mode in ["disable", "allow", "prefer"] {
            let settings = resolve(
                Some(&format!("postgresql://127.0.0.1:1/db?sslmode={mode}")),
                &[],
            );
            assert!(matches!(settings.tls(), Ok(Tls::Off)), "{mode}");
        }
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_connectors_build_for_every_mode() {
        for mode in [
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ] {
            let settings = resolve(Some(&format!("postgresql://h/db?sslmode={mode}")), &[]);
            let tls = settings.tls().unwrap();
            assert_eq!(matches!(tls, Tls::Off), mode == "disable", "{mode}");
        }
    }

    #[cfg(feature = "tls")]
    #[test]
    fn a_missing_or_empty_root_certificate_is_explained() {
        let dir = std::env::temp_dir().join(format!("migrate-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let url = format!(
            "postgresql://h/db?sslmode=verify-ca&sslrootcert={}",
            missing.display()
        );
        let error = resolve(Some(&url), &[]).tls().err().expect("an error");
        assert!(
            matches!(error, ConfigError::RootCertificate { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("missing.pem"), "{error}");

        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let url = format!(
            "postgresql://h/db?sslmode=verify-full&sslrootcert={}",
            empty.display()
        );
        let error = resolve(Some(&url), &[]).tls().err().expect("an error");
        assert!(matches!(error, ConfigError::Tls { .. }), "{error:?}");
        assert!(error.to_string().contains("empty.pem"), "{error}");
        // Without verification the file is not needed (libpq reads it only to verify).
        let url = format!(
            "postgresql://h/db?sslmode=prefer&sslrootcert={}",
            missing.display()
        );
        assert!(resolve(Some(&url), &[]).tls().is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
