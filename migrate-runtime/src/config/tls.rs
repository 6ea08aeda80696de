//! libpq's `sslmode` values, what each asks of the driver and the TLS connector, the CA file.

use postgres::config::{Host, SslMode as DriverSslMode};
use postgres::{Client, Config, NoTls};

use super::{ConfigError, ConnectionSettings};

/// libpq's sslmode values; the driver knows only disable, prefer and require.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SslMode {
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

    pub(super) fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    pub(super) fn needs_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }

    /// What the driver is told: whether TLS is skipped, tried or insisted on. Certificate
    /// checks are the TLS connector's business.
    pub(super) fn driver(self) -> DriverSslMode {
        match self {
            SslMode::Disable => DriverSslMode::Disable,
            // libpq's allow tries plain first; the driver cannot, and trying TLS first gives
            // the same outcome against any server that allow would accept.
            SslMode::Allow | SslMode::Prefer => DriverSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverSslMode::Require,
        }
    }
}

pub(super) fn parse_ssl_mode(value: String, from: &'static str) -> Result<SslMode, ConfigError> {
    SslMode::parse(&value).ok_or(ConfigError::InvalidSslMode { from, value })
}

impl ConnectionSettings {
    pub(super) fn tls(&self) -> Result<Tls, ConfigError> {
        if self.config.get_ssl_mode() == DriverSslMode::Disable {
            return Ok(Tls::Off);
        }
        Tls::for_mode(self.ssl_mode, self.root_cert.as_deref())
    }
}

pub(super) fn only_unix_sockets(config: &Config) -> bool {
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
#[derive(Clone)]
pub(crate) enum Tls {
    Off,
    #[cfg(feature = "tls")]
    Native(postgres_native_tls::MakeTlsConnector),
}

impl Tls {
    pub(super) fn connect(&self, config: &Config) -> Result<Client, postgres::Error> {
        match self {
            Tls::Off => config.connect(NoTls),
            #[cfg(feature = "tls")]
            Tls::Native(connector) => config.connect(connector.clone()),
        }
    }

    /// Sends a cancel request for `token`'s session, with the same TLS as the connection.
    pub(crate) fn cancel(&self, token: &postgres::CancelToken) -> Result<(), postgres::Error> {
        match self {
            Tls::Off => token.cancel_query(NoTls),
            #[cfg(feature = "tls")]
            Tls::Native(connector) => token.cancel_query(connector.clone()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::{resolve, resolve_err};

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
