//! The `DB_*` variables, and libpq's `PG*` variables as a source and as defaults for any source.

use std::ffi::OsString;

use super::tls::parse_ssl_mode;
use super::{ConfigError, Draft};

/// The environment as the settings read it. A variable is either unset or used: one that is
/// set but empty, or not valid UTF-8, is an error naming it, never skipped in favour of the
/// next source (a typo'd deployment must not quietly reach another database, or none).
#[derive(Clone, Copy)]
pub(super) struct Env<'e>(pub(super) &'e dyn Fn(&str) -> Option<OsString>);

impl Env<'_> {
    /// Whether `name` is set at all (even to something unusable).
    pub(super) fn is_set(&self, name: &str) -> bool {
        (self.0)(name).is_some()
    }

    /// `name`'s value, `None` when unset; set but empty or not UTF-8 is an error.
    pub(super) fn get(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        let Some(value) = (self.0)(name) else {
            return Ok(None);
        };
        if value.is_empty() {
            return Err(ConfigError::EmptyVariable { name });
        }
        match value.into_string() {
            Ok(value) => Ok(Some(value)),
            Err(value) => Err(ConfigError::VariableNotUtf8 {
                name,
                valid_up_to: std::str::from_utf8(value.as_encoded_bytes())
                    .err()
                    .map_or(0, |error| error.valid_up_to()),
            }),
        }
    }
}

/// Any of these set selects the `PG*` source (PGPASSWORD and PGSSLMODE alone do not: they are
/// commonly exported as defaults for other tools).
pub(super) const PG_SELECTORS: [&str; 4] = ["PGHOST", "PGDATABASE", "PGUSER", "PGPORT"];

/// `DB_HOST`, `DB_PORT` (default 5432), `DB_NAME`, `DB_USER`, `DB_PASSWORD`.
pub(super) fn db_variables(env: Env<'_>) -> Result<Draft, ConfigError> {
    let mut draft = Draft::empty();
    let config = &mut draft.config;
    if let Some(host) = env.get("DB_HOST")? {
        config.host(&host);
    }
    match env.get("DB_PORT")? {
        Some(port) => config.port(parse_port("DB_PORT", &port, &port)?),
        None => config.port(5432),
    };
    if let Some(dbname) = env.get("DB_NAME")? {
        config.dbname(&dbname);
    }
    if let Some(user) = env.get("DB_USER")? {
        config.user(&user);
    }
    if let Some(password) = env.get("DB_PASSWORD")? {
        config.password(password);
    }
    Ok(draft)
}

/// libpq's environment defaults for whatever the source left out, then `localhost`.
pub(super) fn fill_from_libpq_env(draft: &mut Draft, env: Env<'_>) -> Result<(), ConfigError> {
    let config = &mut draft.config;
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        for host in env.get("PGHOST")?.iter().flat_map(|hosts| list(hosts)) {
            config.host(host);
        }
        if let Some(addrs) = env.get("PGHOSTADDR")? {
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
        if let Some(ports) = env.get("PGPORT")? {
            for port in list(&ports) {
                config.port(parse_port("PGPORT", &ports, port)?);
            }
        }
    }
    if config.get_user().is_none() {
        if let Some(user) = env.get("PGUSER")? {
            config.user(&user);
        }
    }
    if config.get_dbname().is_none() {
        if let Some(dbname) = env.get("PGDATABASE")? {
            config.dbname(&dbname);
        }
    }
    if config.get_password().is_none() {
        if let Some(password) = env.get("PGPASSWORD")? {
            config.password(password);
        }
    }
    if draft.ssl_mode.is_none() {
        if let Some(value) = env.get("PGSSLMODE")? {
            draft.ssl_mode = Some(parse_ssl_mode(value, "PGSSLMODE")?);
        }
    }
    if draft.root_cert.is_none() {
        draft.root_cert = env.get("PGSSLROOTCERT")?;
    }
    // libpq sends PGOPTIONS as the `options` startup parameter (`-c name=value ...`), unless
    // the connection string has its own `options`.
    if draft.config.get_options().is_none() {
        if let Some(options) = env.get("PGOPTIONS")? {
            draft.config.options(&options);
        }
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
        assert_error_secret_free, env_os_of, resolve, resolve_err, tcp_hosts, SECRET,
    };
    use crate::config::tls::SslMode;
    use crate::config::{ConfigError, ConnectionSettings};

    /// Every variable the settings read, with what makes it read.
    const READ: [(&str, &[(&str, &str)]); 15] = [
        ("DATABASE_URL", &[("PGHOST", "h")]),
        ("DB_HOST", &[("DB_NAME", "app")]),
        ("DB_NAME", &[("DB_HOST", "h")]),
        ("DB_PORT", &[("DB_HOST", "h")]),
        ("DB_USER", &[("DB_HOST", "h")]),
        ("DB_PASSWORD", &[("DB_HOST", "h")]),
        ("PGHOST", &[("PGUSER", "u")]),
        ("PGHOSTADDR", &[("PGUSER", "u")]),
        ("PGPORT", &[("PGHOST", "h")]),
        ("PGDATABASE", &[("PGHOST", "h")]),
        ("PGUSER", &[("PGHOST", "h")]),
        ("PGPASSWORD", &[("PGHOST", "h")]),
        ("PGSSLMODE", &[("PGHOST", "h")]),
        ("PGSSLROOTCERT", &[("PGHOST", "h")]),
        ("PGOPTIONS", &[("DATABASE_URL", "postgresql://h/db")]),
    ];

    #[test]
    fn a_variable_set_but_empty_is_an_error_naming_it() {
        for (variable, with) in READ {
            let mut pairs = with.to_vec();
            pairs.push((variable, ""));
            let error = resolve_err(None, &pairs);
            assert!(
                matches!(error, ConfigError::EmptyVariable { name } if name == variable),
                "{variable}: {error:?}"
            );
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("error: {variable} is set but empty\n")),
                "{error}"
            );
        }
    }

    #[test]
    fn a_variable_that_is_not_utf8_is_an_error_naming_it_never_skipped() {
        for (variable, with) in READ {
            let mut pairs: Vec<(&str, &[u8])> =
                with.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
            pairs.push((variable, b"caf\xe9-Zx9-very-secret-pw"));
            let error = match ConnectionSettings::resolve_os(None, env_os_of(&pairs)) {
                Ok(settings) => panic!("{variable}: expected an error, got {settings:?}"),
                Err(error) => error,
            };
            assert!(
                matches!(
                    error,
                    ConfigError::VariableNotUtf8 { name, valid_up_to: 3 } if name == variable
                ),
                "{variable}: {error:?}"
            );
            assert_error_secret_free(&error);
            assert!(
                error.to_string().starts_with(&format!(
                    "error: {variable} is not valid UTF-8 (at byte 3)\n"
                )),
                "{error}"
            );
        }
        // Above all, a DATABASE_URL that cannot be read does not hand over to the PG* variables.
        let error = ConnectionSettings::resolve_os(
            None,
            env_os_of(&[
                ("DATABASE_URL", b"postgresql://prod/\xff"),
                ("PGHOST", b"elsewhere"),
                ("PGDATABASE", b"other"),
            ]),
        )
        .unwrap_err();
        assert!(
            matches!(
                error,
                ConfigError::VariableNotUtf8 {
                    name: "DATABASE_URL",
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn pgoptions_is_sent_unless_the_string_has_its_own_options() {
        let options = "-c lock_timeout=2s -c statement_timeout=5s";
        for pairs in [
            &[("PGHOST", "h"), ("PGOPTIONS", options)][..],
            &[
                ("DATABASE_URL", "postgresql://h/db"),
                ("PGOPTIONS", options),
            ],
            &[("DB_HOST", "h"), ("PGOPTIONS", options)],
        ] {
            assert_eq!(resolve(None, pairs).config().get_options(), Some(options));
        }
        let settings = resolve(None, &[("PGHOST", "h"), ("PGOPTIONS", "--work_mem=2MB")]);
        assert_eq!(settings.config().get_options(), Some("--work_mem=2MB"));
        // The connection string's own `options` wins, as in libpq.
        for own in [
            "postgresql://h/db?options=-c%20work_mem%3D3MB",
            "host=h dbname=db options='-c work_mem=3MB'",
        ] {
            let settings = resolve(Some(own), &[("PGOPTIONS", options)]);
            assert_eq!(
                settings.config().get_options(),
                Some("-c work_mem=3MB"),
                "{own}"
            );
        }
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
