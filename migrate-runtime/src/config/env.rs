//! The `DB_*` variables, and libpq's `PG*` variables as a source and as defaults for any source.

use super::tls::parse_ssl_mode;
use super::{ConfigError, Draft};

/// Any of these set selects the `PG*` source (PGPASSWORD and PGSSLMODE alone do not: they are
/// commonly exported as defaults for other tools).
pub(super) const PG_SELECTORS: [&str; 4] = ["PGHOST", "PGDATABASE", "PGUSER", "PGPORT"];

/// `DB_HOST`, `DB_PORT` (default 5432), `DB_NAME`, `DB_USER`, `DB_PASSWORD`.
pub(super) fn db_variables(env: &dyn Fn(&str) -> Option<String>) -> Result<Draft, ConfigError> {
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
pub(super) fn fill_from_libpq_env(
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

#[cfg(test)]
mod tests {
    use postgres::config::SslMode as DriverSslMode;

    use crate::config::test_support::{
        assert_error_secret_free, resolve, resolve_err, tcp_hosts, SECRET,
    };
    use crate::config::tls::SslMode;

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
}
