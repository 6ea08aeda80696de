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

mod connect;
mod conninfo;
mod env;
mod error;
mod liveness;
mod redact;
#[cfg(test)]
mod test_support;
mod tls;
mod url;

use std::error::Error as _;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use postgres::config::SslMode as DriverSslMode;
use postgres::Config;

use conninfo::strip_conninfo_params;
use env::{db_variables, fill_from_libpq_env, Env, PG_SELECTORS};
use liveness::{is_liveness_param, Given, Liveness};
use tls::{only_unix_sockets, parse_ssl_mode, SslMode};
use url::{strip_url_params, url_scheme_len};

pub use error::ConfigError;
pub use redact::redact;
pub(crate) use tls::Tls;

const FROM_FLAG: &str = "--database-url";
const FROM_DATABASE_URL: &str = "DATABASE_URL";
const FROM_DB_VARIABLES: &str = "DB_* variables";
const FROM_PG_VARIABLES: &str = "PG* variables";
const FROM_CONFIG: &str = "configuration";

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
    liveness: Liveness,
}

/// Settings read from one source, before libpq's defaults fill the gaps.
struct Draft {
    config: Config,
    ssl_mode: Option<SslMode>,
    root_cert: Option<String>,
    liveness: Given,
}

impl Draft {
    fn empty() -> Draft {
        Draft {
            config: Config::new(),
            ssl_mode: None,
            root_cert: None,
            liveness: Given::default(),
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
    /// to `localhost` and port 5432. URLs and `key=value` strings take libpq's `sslmode`
    /// (disable, allow, prefer, require, verify-ca, verify-full) and `sslrootcert`;
    /// `PGSSLROOTCERT` is read too, and `PGOPTIONS` (or `options` in the string, e.g.
    /// `-c statement_timeout=5s`) is sent to the server as libpq sends it.
    ///
    /// A variable that is read is used or refused, never skipped: one that is set but empty
    /// ([`ConfigError::EmptyVariable`]) or, through [`resolve_os`](Self::resolve_os), not valid
    /// UTF-8 ([`ConfigError::VariableNotUtf8`]) is an error naming it.
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
        Self::resolve_os(explicit_url, |name| env(name).map(OsString::from))
    }

    /// [`resolve`](Self::resolve) over an environment whose values may not be UTF-8, as
    /// [`std::env::var_os`] gives them: such a value is an error naming the variable.
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use std::ffi::OsString;
    /// use std::os::unix::ffi::OsStringExt;
    ///
    /// use migrate_runtime::config::{ConfigError, ConnectionSettings};
    ///
    /// let env = |name: &str| {
    ///     (name == "DATABASE_URL").then(|| OsString::from_vec(b"postgresql://h/caf\xe9".to_vec()))
    /// };
    /// let error = ConnectionSettings::resolve_os(None, env).unwrap_err();
    /// assert!(matches!(error, ConfigError::VariableNotUtf8 { name: "DATABASE_URL", .. }));
    /// # }
    /// ```
    pub fn resolve_os(
        explicit_url: Option<&str>,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Option<ConnectionSettings>, ConfigError> {
        let env = Env(&env);
        let (mut draft, source) = if let Some(url) = explicit_url {
            (parse_connection_string(url, FROM_FLAG)?, FROM_FLAG)
        } else if let Some(url) = env.get("DATABASE_URL")? {
            (
                parse_connection_string(&url, FROM_DATABASE_URL)?,
                FROM_DATABASE_URL,
            )
        } else if env.is_set("DB_HOST") || env.is_set("DB_NAME") {
            (db_variables(env)?, FROM_DB_VARIABLES)
        } else if PG_SELECTORS.iter().any(|name| env.is_set(name)) {
            // Everything comes from the libpq defaults below.
            (Draft::empty(), FROM_PG_VARIABLES)
        } else {
            return Ok(None);
        };
        fill_from_libpq_env(&mut draft, env)?;
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
        Self::resolve_os(explicit_url, |name| std::env::var_os(name))
    }

    /// The settings of one URL (`postgresql://...`) or `key=value` connection string, as
    /// libpq reads it: what it leaves out comes from the `PG*` variables.
    ///
    /// ```
    /// use migrate_runtime::config::ConnectionSettings;
    ///
    /// let settings = ConnectionSettings::from_url("postgresql://app:s3cret@db.internal/invoices")?;
    /// assert_eq!(settings.describe(), "postgresql://app@db.internal:5432/invoices");
    /// # Ok::<(), migrate_runtime::config::ConfigError>(())
    /// ```
    pub fn from_url(url: &str) -> Result<ConnectionSettings, ConfigError> {
        Ok(Self::from_env(Some(url))?.expect("an explicit connection string always resolves"))
    }

    /// Wrap an existing config (e.g. a throwaway test server's); TLS off. Keepalive, user
    /// timeout and connect timeout settings it leaves at the driver's defaults get ours (see
    /// [`dead_peer_bound`](Self::dead_peer_bound)).
    ///
    /// ```
    /// use migrate_runtime::config::ConnectionSettings;
    ///
    /// let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// let config: postgres::Config = database.config();
    /// let settings = ConnectionSettings::from_config(config);
    /// assert_eq!(settings.source(), "configuration");
    /// settings.connect()?.batch_execute("SELECT 1")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_config(mut config: Config) -> ConnectionSettings {
        config.ssl_mode(DriverSslMode::Disable);
        let liveness = Given::from_driver(&config).resolve();
        liveness.apply(&mut config);
        ConnectionSettings {
            config,
            source: FROM_CONFIG,
            ssl_mode: SslMode::Disable,
            root_cert: None,
            liveness,
        }
    }

    fn from_draft(draft: Draft, source: &'static str) -> ConnectionSettings {
        let Draft {
            mut config,
            ssl_mode,
            root_cert,
            liveness,
        } = draft;
        let liveness = liveness.resolve();
        liveness.apply(&mut config);
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
            liveness,
        }
    }

    /// The same settings for another database on the same server (test databases).
    #[cfg(feature = "testing")]
    pub(crate) fn with_dbname(&self, dbname: &str) -> ConnectionSettings {
        let mut settings = self.clone();
        settings.config.dbname(dbname);
        settings
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

    /// The driver config (password included; for connecting only).
    ///
    /// ```
    /// let url = "postgresql://app:secret@db.internal:6432/orders";
    /// let settings = migrate_runtime::config::ConnectionSettings::resolve(Some(url), |_| None)?
    ///     .expect("a URL was given");
    /// let dbname = settings.config().get_dbname();
    /// assert_eq!(dbname, Some("orders"));
    /// assert_eq!(settings.config().get_ports(), [6432]);
    /// # Ok::<(), migrate_runtime::config::ConfigError>(())
    /// ```
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How long after the network stops delivering (no reset, no close) a connection made
    /// with these settings errors out on the client, and the server ends its session and so
    /// releases the migration lock: 70 s with the defaults (`keepalives_idle=30`,
    /// `keepalives_interval=10`, `keepalives_count=3`, `tcp_user_timeout=60000`). `None` with
    /// `keepalives=0`. The server's half needs PostgreSQL 14 or later
    /// (`client_connection_check_interval`) for a backend that is running a statement or
    /// waiting for a lock; an idle one notices on any version.
    ///
    /// ```
    /// use std::time::Duration;
    /// use migrate_runtime::config::ConnectionSettings;
    ///
    /// let settings = ConnectionSettings::resolve(Some("postgresql://app@db/app"), |_| None)?.unwrap();
    /// assert_eq!(settings.dead_peer_bound(), Some(Duration::from_secs(70)));
    /// let url = "postgresql://app@db/app?keepalives_idle=5&keepalives_interval=2&tcp_user_timeout=11000";
    /// let settings = ConnectionSettings::resolve(Some(url), |_| None)?.unwrap();
    /// assert_eq!(settings.dead_peer_bound(), Some(Duration::from_secs(13)));
    /// # Ok::<(), migrate_runtime::config::ConfigError>(())
    /// ```
    pub fn dead_peer_bound(&self) -> Option<Duration> {
        self.liveness.dead_peer_bound()
    }
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
    let mut liveness = Given::default();
    for (key, value) in &stripped.liveness {
        liveness.set(key, value).map_err(&invalid)?;
    }
    Ok(Draft {
        config,
        ssl_mode,
        root_cert: stripped.sslrootcert,
        liveness,
    })
}

/// A connection string without the parameters read here rather than by the driver (TLS, and
/// liveness: [`liveness`]), and their values (the last one wins, as in libpq).
#[derive(Debug, Default, PartialEq)]
struct Stripped {
    rest: String,
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    liveness: Vec<(String, String)>,
}

impl Stripped {
    fn is_read_here(key: &str) -> bool {
        matches!(key, "sslmode" | "sslrootcert") || is_liveness_param(key)
    }

    fn set(&mut self, key: &str, value: String) {
        match key {
            "sslmode" => self.sslmode = Some(value),
            "sslrootcert" => self.sslrootcert = Some(value),
            _ => self.liveness.push((key.to_owned(), value)),
        }
    }
}

fn strip_tls_params(input: &str) -> Result<Stripped, String> {
    match url_scheme_len(input) {
        Some(scheme) => strip_url_params(input, scheme),
        None => strip_conninfo_params(input),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::{
        assert_error_secret_free, env_of, resolve, resolve_err, tcp_hosts, SECRET,
    };

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
    }

    #[test]
    fn an_empty_database_url_is_an_error_not_the_next_source() {
        let error = resolve_err(None, &[("DATABASE_URL", ""), ("PGHOST", "pghost")]);
        assert!(
            matches!(
                error,
                ConfigError::EmptyVariable {
                    name: "DATABASE_URL"
                }
            ),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "error: DATABASE_URL is set but empty\n   = help: give it a value, or unset it (`unset DATABASE_URL`) to use the next source"
        );
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
}
