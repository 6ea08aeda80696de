//! The persistent test server: the one `MIGRATE_TEST_DATABASE_URL` names, else the machine's
//! shared throwaway server; how to connect to its databases and name them in output.

use std::sync::OnceLock;

use postgres::Client;

use super::{machine, TestServerError};
use crate::config::ConnectionSettings;

/// The variable naming a server (and an administrative database on it) that test databases
/// are created on. When unset, the machine's shared throwaway server is used.
pub(crate) const URL_VARIABLE: &str = "MIGRATE_TEST_DATABASE_URL";

/// A server that outlives test processes.
#[derive(Debug)]
pub(crate) struct Host {
    /// Settings for the administrative database (the one in the URL).
    settings: ConnectionSettings,
    /// The connection string as given (password included), to derive each database's URL.
    url: String,
}

impl Host {
    /// The process's persistent server, chosen once: `MIGRATE_TEST_DATABASE_URL`, else the
    /// machine's shared server (started if need be).
    pub(crate) fn get() -> Result<&'static Host, TestServerError> {
        static HOST: OnceLock<Result<Host, String>> = OnceLock::new();
        HOST.get_or_init(|| Host::choose().map_err(|error| error.to_string()))
            .as_ref()
            .map_err(|message| TestServerError::Command {
                program: "the persistent test server".to_owned(),
                output: message.clone(),
            })
    }

    fn choose() -> Result<Host, TestServerError> {
        let url = match std::env::var(URL_VARIABLE) {
            Ok(url) => url,
            Err(std::env::VarError::NotPresent) => machine::ensure()?,
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(TestServerError::Command {
                    program: URL_VARIABLE.to_owned(),
                    output: "is not valid UTF-8\n  help: set it to a postgresql:// URL".to_owned(),
                })
            }
        };
        if url.trim().is_empty() {
            return Err(TestServerError::Command {
                program: URL_VARIABLE.to_owned(),
                output: format!(
                    "{URL_VARIABLE} is set but empty\n  help: unset it to use the shared throwaway server, or set it to a postgresql:// URL"
                ),
            });
        }
        let settings = ConnectionSettings::from_url(&url)?;
        Ok(Host { settings, url })
    }

    /// A connection to the administrative database.
    pub(crate) fn admin(&self) -> Result<Client, TestServerError> {
        Ok(self.settings.connect()?)
    }

    /// A connection to `database`.
    pub(crate) fn connect(&self, database: &str) -> Result<Client, TestServerError> {
        Ok(self.settings.with_dbname(database).connect()?)
    }

    /// The driver settings for `database`.
    pub(crate) fn config(&self, database: &str) -> postgres::Config {
        self.settings.with_dbname(database).config().clone()
    }

    /// A connection string for `database` (with the password, if the server's had one).
    pub(crate) fn url(&self, database: &str) -> String {
        with_database(&self.url, database)
    }

    /// `postgresql://user@host:port/database`: never a password.
    pub(crate) fn shown_url(&self, database: &str) -> String {
        self.settings.with_dbname(database).describe()
    }

    /// Marks the shared server as in use, so that its idle shutdown waits (no-op for a server
    /// named by `MIGRATE_TEST_DATABASE_URL`).
    pub(crate) fn touch(&self) {
        if std::env::var_os(URL_VARIABLE).is_none() {
            machine::touch();
        }
    }
}

/// `url` (a `postgresql://` URL or a `key=value` string) pointed at `database`.
fn with_database(url: &str, database: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        // In a key=value string the last `dbname` wins.
        return format!("{url} dbname={database}");
    };
    let authority = scheme_end + 3;
    let query = url[authority..].find('?').map(|at| authority + at);
    let path = url[authority..query.unwrap_or(url.len())]
        .find('/')
        .map(|at| authority + at);
    let end_of_authority = path.or(query).unwrap_or(url.len());
    let rest = query.map_or("", |at| &url[at..]);
    format!("{}/{database}{rest}", &url[..end_of_authority])
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn a_url_is_pointed_at_another_database_keeping_its_credentials_and_options() {
        assert_eq!(
            with_database("postgresql://app:pw@db:6432/postgres?sslmode=require", "t1"),
            "postgresql://app:pw@db:6432/t1?sslmode=require"
        );
        assert_eq!(with_database("postgres://db", "t1"), "postgres://db/t1");
        assert_eq!(
            with_database("postgres://db?x=1", "t1"),
            "postgres://db/t1?x=1"
        );
        assert_eq!(
            with_database("host=db dbname=postgres", "t1"),
            "host=db dbname=postgres dbname=t1"
        );
    }
}
