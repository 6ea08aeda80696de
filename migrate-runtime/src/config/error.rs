//! `ConfigError`, and the wording its messages share: a driver error with its causes, a duration.

use std::error::Error as _;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

#[cfg(doc)]
use super::ConnectionSettings;

/// Why connection settings could not be read, or the connection could not be made. Neither the
/// message nor the `Debug` output ever contains a password.
///
/// ```
/// use migrate_runtime::config::{ConfigError, ConnectionSettings};
///
/// // What `from_env` reads, given here as a test would.
/// let env = |name: &str| match name {
///     "DB_HOST" => Some("db.internal".to_owned()),
///     "DB_NAME" => Some("app".to_owned()),
///     "DB_PORT" => Some("54x32".to_owned()),
///     _ => None,
/// };
/// let result = ConnectionSettings::resolve(None, env);
/// match &result {
///     Ok(Some(settings)) => log::info!("using {}", settings.describe()),
///     Ok(None) => log::warn!("no database configured"),
///     Err(error @ ConfigError::InvalidVariable { .. }) => log::error!("{error}"),
///     Err(error) => log::error!("{error}"),
/// }
/// assert!(matches!(result, Err(ConfigError::InvalidVariable { name: "DB_PORT", .. })));
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

    /// A variable the settings read is set but empty. It is not skipped: an empty
    /// `DATABASE_URL` is a deployment mistake, not a wish for the next source.
    #[error(
        "error: {name} is set but empty\n   = help: give it a value, or unset it (`unset {name}`) to use the next source"
    )]
    EmptyVariable {
        /// The variable, e.g. `DATABASE_URL`.
        name: &'static str,
    },

    /// A variable the settings read holds bytes that are not UTF-8 (the value is not shown:
    /// it may hold a password).
    #[error(
        "error: {name} is not valid UTF-8 (at byte {valid_up_to})\n   = help: set it to UTF-8 text; in a URL, write other bytes percent-encoded (%XX)"
    )]
    VariableNotUtf8 {
        /// The variable.
        name: &'static str,
        /// How many bytes from the start are valid UTF-8.
        valid_up_to: usize,
    },

    /// Nothing says which database to use (see [`ConnectionSettings::resolve`] for the
    /// sources, in order).
    #[error(
        "error: no database configured\n   = note: looked for --database-url, DATABASE_URL, DB_HOST or DB_NAME (with DB_PORT, DB_USER, DB_PASSWORD), and libpq's PGHOST, PGPORT, PGDATABASE or PGUSER (with PGPASSWORD, PGSSLMODE, PGOPTIONS): none is set\n   = help: name the database: `--database-url postgresql://USER:PASSWORD@HOST:PORT/DATABASE`, or set DATABASE_URL to that URL\n   = help: to try the migrations on a throwaway PostgreSQL server that is removed afterwards, pass --throwaway"
    )]
    NotConfigured,

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

/// The driver's message with its causes: its own `Display` stops at "error connecting to
/// server" and leaves out the reason.
pub(super) fn error_text(error: &postgres::Error) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_millis(250)), "250 ms");
        assert_eq!(human_duration(Duration::from_secs(30)), "30 s");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5 s");
    }
}
