//! Connecting: once, or retrying with backoff while the server is not up yet; hints on failure.

use std::error::Error as _;
use std::io;
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::{Client, Config};

use super::error::error_text;
use super::{ConfigError, ConnectionSettings};

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// The shortest TCP connect timeout of an attempt in `connect_with_wait`: a live but slow server
/// must not be cut off just because little of the wait is left.
const MIN_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);

impl ConnectionSettings {
    /// Connect once, honouring sslmode.
    ///
    /// ```
    /// use migrate_runtime::config::ConnectionSettings;
    ///
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let url = database.url();
    /// // e.g. url = "postgresql://app@db.internal/app?sslmode=require"
    /// let settings = ConnectionSettings::resolve(Some(&url), |_| None)?.expect("a URL was given");
    /// let mut client = settings.connect()?;
    /// let one: i32 = client.query_one("SELECT 1", &[])?.get(0);
    /// assert_eq!(one, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect(&self) -> Result<Client, ConfigError> {
        let tls = self.tls()?;
        self.open(&tls, &self.config)
            .map_err(|error| self.connect_error(error))
    }

    /// A handle that cancels the statement `client` (connected with these settings) is
    /// running, from another thread, with the same TLS as the connection.
    ///
    /// ```
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let settings = migrate_runtime::config::ConnectionSettings::resolve(Some(&database.url()), |_| None)?.expect("a URL");
    /// let mut client = settings.connect()?;
    /// let cancel = settings.cancel_handle(&client)?;
    /// std::thread::spawn(move || {
    ///     std::thread::sleep(std::time::Duration::from_millis(300));
    ///     cancel.cancel()
    /// });
    /// let error = client.batch_execute("SELECT pg_sleep(60)").unwrap_err();
    /// assert_eq!(error.code(), Some(&postgres::error::SqlState::QUERY_CANCELED));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cancel_handle(&self, client: &Client) -> Result<crate::CancelHandle, ConfigError> {
        Ok(crate::CancelHandle::with_tls(client, self.tls()?))
    }

    /// Connects, then sets the server's half of noticing a dead peer on the session
    /// (see [`super::liveness`]).
    fn open(&self, tls: &super::tls::Tls, config: &Config) -> Result<Client, postgres::Error> {
        let mut client = tls.connect(config)?;
        self.liveness.configure_session(&mut client)?;
        Ok(client)
    }

    /// Keep retrying while the server is not reachable yet (connection refused, no such socket, server
    /// starting up: SQLSTATE 57P03 "the database system is starting up") until `wait` has elapsed, with a
    /// short backoff (e.g. 100 ms doubling to 1 s). Authentication or other server errors are not retried.
    /// The final error says how long it waited and the last reason.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let settings = migrate_runtime::config::ConnectionSettings::resolve(Some(&database.url()), |_| None)?.expect("a URL");
    /// // A container started next to the database: give it half a minute to come up.
    /// let started = Instant::now();
    /// let mut client = settings.connect_with_wait(Duration::from_secs(30))?;
    /// client.batch_execute("SELECT 1")?;
    /// assert!(started.elapsed() < Duration::from_secs(30)); // the server was up: no wait
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect_with_wait(&self, wait: Duration) -> Result<Client, ConfigError> {
        let tls = self.tls()?;
        let deadline = Instant::now() + wait;
        let mut backoff = FIRST_BACKOFF;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let error = match self.open(&tls, &self.attempt_config(deadline)) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::resolve;

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
}
