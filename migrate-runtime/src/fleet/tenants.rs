//! Who the tenants are: schemas in one database or whole databases, named by a list, a query
//! on a control database, or a URL template.

use std::collections::BTreeSet;

use postgres::{Client, SimpleQueryMessage};

use crate::config::{ConfigError, ConnectionSettings};

/// The placeholder a URL template names the tenant with.
pub const PLACEHOLDER: &str = "{tenant}";

/// The tenants of a fleet and where each one lives.
///
/// ```no_run
/// use migrate_runtime::config::ConnectionSettings;
/// use migrate_runtime::fleet::Tenants;
///
/// // Each tenant a schema of one database: its history is `acme.schema_migrations`.
/// let database = ConnectionSettings::from_url("postgres://app@db/platform")?;
/// let schemas = Tenants::schemas(database, ["acme", "globex"])?;
///
/// // Each tenant a database of its own.
/// let databases = Tenants::databases("postgres://app@db/{tenant}", ["acme", "globex"])?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Tenants {
    /// The database that holds every schema tenant; `None` for database tenants.
    pub(crate) database: Option<ConnectionSettings>,
    pub(crate) list: Vec<Tenant>,
}

/// One tenant: its name, and for a database tenant how to reach it.
#[derive(Clone, Debug)]
pub(crate) struct Tenant {
    pub(crate) name: String,
    pub(crate) url: Option<ConnectionSettings>,
}

/// Why a list of tenants (or a fleet's settings) is unusable. Nothing was run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// A tenant name is empty, contains a NUL character, or is longer than PostgreSQL keeps
    /// a name (63 bytes).
    #[error("tenant name {0:?} is not usable: names are 1 to 63 bytes without NUL characters")]
    BadName(String),
    /// The same tenant is listed twice.
    #[error("tenant {0:?} is listed twice: list each tenant once")]
    Duplicate(String),
    /// A URL template without the `{tenant}` placeholder would send every tenant to one database.
    #[error("the URL template has no {PLACEHOLDER} placeholder: write it where the tenant's database name goes, e.g. postgres://app@db/{PLACEHOLDER}")]
    NoPlaceholder,
    /// A tenant's URL does not parse.
    #[error("tenant {tenant}: {source}")]
    Url {
        /// The tenant.
        tenant: String,
        /// Why its URL is refused.
        #[source]
        source: ConfigError,
    },
    /// The query naming the tenants failed.
    #[error("the tenants query failed: {0}")]
    Query(#[source] postgres::Error),
    /// A row of the tenants query has no name (NULL, or the query returns no column).
    #[error("row {row} of the tenants query has no tenant name in its first column (NULL or no column): filter those rows out")]
    NullName {
        /// The 1-based row.
        row: usize,
    },
    /// A canary tenant named by [`crate::fleet::Fleet::canary_tenants`] is not in the fleet.
    #[error("canary tenant {0:?} is not one of the fleet's tenants")]
    UnknownCanary(String),
    /// Schema tenants with [`crate::LockScope::Transaction`]: behind a transaction pooler the
    /// session's `search_path` could belong to another client's transaction, so a tenant's
    /// migrations could land in another schema.
    #[error("schema tenants need a session of their own (--lock-scope session): behind a transaction pooler the search_path set for a tenant does not follow its transactions; connect the fleet to PostgreSQL directly or to a session-mode pool")]
    SchemaTenantsBehindPooler,
    /// `--shard i/N` with `N` zero or `i` not below `N`.
    #[error("shard {index}/{count} does not exist: shards are 0/N to (N-1)/N with N at least 1")]
    BadShard {
        /// The shard asked for.
        index: u32,
        /// The number of shards.
        count: u32,
    },
}

impl Tenants {
    /// Tenants that are schemas of one database. Each tenant's history table is in its own
    /// schema (created with the history if missing), and its migrations run with
    /// `search_path` set to that schema alone.
    ///
    /// ```no_run
    /// # use migrate_runtime::{config::ConnectionSettings, fleet::Tenants};
    /// let database = ConnectionSettings::from_url("postgres://app@db/platform")?;
    /// let tenants = Tenants::schemas(database, ["acme", "globex"])?;
    /// assert_eq!(tenants.names().count(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn schemas<I, S>(database: ConnectionSettings, names: I) -> Result<Tenants, FleetError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let list = checked(names)?
            .into_iter()
            .map(|name| Tenant { name, url: None })
            .collect();
        Ok(Tenants {
            database: Some(database),
            list,
        })
    }

    /// Tenants that are databases, each reached through `template` with `{tenant}` replaced
    /// by its name (percent-encoded where a URL needs it).
    ///
    /// ```
    /// # use migrate_runtime::fleet::Tenants;
    /// let tenants = Tenants::databases("postgres://app@db:5432/{tenant}", ["acme", "globex"])?;
    /// assert_eq!(tenants.names().collect::<Vec<_>>(), ["acme", "globex"]);
    /// # Ok::<(), migrate_runtime::fleet::FleetError>(())
    /// ```
    pub fn databases<I, S>(template: &str, names: I) -> Result<Tenants, FleetError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        if !template.contains(PLACEHOLDER) {
            return Err(FleetError::NoPlaceholder);
        }
        let pairs: Vec<(String, String)> = checked(names)?
            .into_iter()
            .map(|name| {
                let url = template.replace(PLACEHOLDER, &percent_encode(&name));
                (name, url)
            })
            .collect();
        Tenants::database_urls(pairs)
    }

    /// Tenants that are databases, each with its own URL.
    ///
    /// ```
    /// # use migrate_runtime::fleet::Tenants;
    /// let tenants = Tenants::database_urls([
    ///     ("acme", "postgres://app@db-1/acme"),
    ///     ("globex", "postgres://app@db-2/globex"),
    /// ])?;
    /// assert_eq!(tenants.len(), 2);
    /// # Ok::<(), migrate_runtime::fleet::FleetError>(())
    /// ```
    pub fn database_urls<I, N, U>(pairs: I) -> Result<Tenants, FleetError>
    where
        I: IntoIterator<Item = (N, U)>,
        N: Into<String>,
        U: AsRef<str>,
    {
        let pairs: Vec<(String, U)> = pairs.into_iter().map(|(n, u)| (n.into(), u)).collect();
        checked(pairs.iter().map(|(name, _)| name.clone()))?;
        let list = pairs
            .into_iter()
            .map(
                |(name, url)| match ConnectionSettings::from_url(url.as_ref()) {
                    Ok(settings) => Ok(Tenant {
                        name,
                        url: Some(settings),
                    }),
                    Err(source) => Err(FleetError::Url {
                        tenant: name,
                        source,
                    }),
                },
            )
            .collect::<Result<_, _>>()?;
        Ok(Tenants {
            database: None,
            list,
        })
    }

    /// The tenant names a query returns: the first column of every row, as text (e.g.
    /// `SELECT schema_name FROM platform.projects WHERE active ORDER BY 1`). One round trip.
    ///
    /// ```
    /// use migrate_runtime::fleet::Tenants;
    /// use migrate_runtime::testing::TestServer;
    ///
    /// let mut control = TestServer::shared().connect("postgres")?;
    /// let names = Tenants::names_from_query(&mut control, "VALUES ('acme'), ('globex')")?;
    /// assert_eq!(names, ["acme", "globex"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn names_from_query(control: &mut Client, sql: &str) -> Result<Vec<String>, FleetError> {
        let messages = control.simple_query(sql).map_err(FleetError::Query)?;
        let mut names = Vec::new();
        for message in &messages {
            if let SimpleQueryMessage::Row(row) = message {
                let row_number = names.len() + 1;
                match row.try_get(0) {
                    Ok(Some(name)) => names.push(name.to_owned()),
                    _ => return Err(FleetError::NullName { row: row_number }),
                }
            }
        }
        Ok(names)
    }

    /// The tenant names of a list file: one per line; blank lines and `#` comments are left out.
    ///
    /// ```
    /// # use migrate_runtime::fleet::Tenants;
    /// let names = Tenants::names_from_lines("acme\n# paused: initech\n\nglobex  # EU\n");
    /// assert_eq!(names, ["acme", "globex"]);
    /// ```
    pub fn names_from_lines(text: &str) -> Vec<String> {
        text.lines()
            .map(|line| line.split('#').next().unwrap_or_default().trim())
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The tenants' names, in the fleet's order.
    ///
    /// ```
    /// # use migrate_runtime::fleet::Tenants;
    /// let tenants = Tenants::databases("postgres://db/{tenant}", ["b", "a"])?;
    /// assert_eq!(tenants.names().collect::<Vec<_>>(), ["b", "a"]);
    /// # Ok::<(), migrate_runtime::fleet::FleetError>(())
    /// ```
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(|tenant| tenant.name.as_str())
    }

    /// How many tenants there are.
    ///
    /// ```
    /// # use migrate_runtime::fleet::Tenants;
    /// assert!(Tenants::databases("postgres://db/{tenant}", Vec::<String>::new())?.is_empty());
    /// # Ok::<(), migrate_runtime::fleet::FleetError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    ///
    /// ```
    /// # use migrate_runtime::fleet::Tenants;
    /// assert!(!Tenants::databases("postgres://db/{tenant}", ["a"])?.is_empty());
    /// # Ok::<(), migrate_runtime::fleet::FleetError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// The names, refusing unusable and repeated ones (a tenant migrated twice at once would
/// only wait for its own lock, but a repeated line is a mistake worth saying).
fn checked<I, S>(names: I) -> Result<Vec<String>, FleetError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut seen = BTreeSet::new();
    let mut list = Vec::new();
    for name in names {
        let name: String = name.into();
        if name.is_empty() || name.len() > 63 || name.contains('\0') {
            return Err(FleetError::BadName(name));
        }
        if !seen.insert(name.clone()) {
            return Err(FleetError::Duplicate(name));
        }
        list.push(name);
    }
    Ok(list)
}

/// Percent-encodes everything but unreserved URL characters.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_duplicates_and_bad_names() {
        let error = Tenants::databases("postgres://db/{tenant}", ["a", "b", "a"]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "tenant \"a\" is listed twice: list each tenant once"
        );
        assert!(matches!(
            Tenants::databases("postgres://db/{tenant}", [""]),
            Err(FleetError::BadName(_))
        ));
        assert!(matches!(
            Tenants::databases("postgres://db/x", ["a"]),
            Err(FleetError::NoPlaceholder)
        ));
    }

    #[test]
    fn template_names_are_encoded() {
        assert_eq!(percent_encode("a b/ü"), "a%20b%2F%C3%BC");
        let tenants = Tenants::databases("postgres://u@h/{tenant}", ["t 1"]).unwrap();
        let url = tenants.list[0].url.as_ref().unwrap();
        assert_eq!(url.config().get_dbname(), Some("t 1"));
    }
}
