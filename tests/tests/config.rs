//! Connection settings against a real server: every source form connects, `connect_with_wait`
//! rides out a restart and gives up clearly, and sslmode behaves as in libpq (with the `tls`
//! feature, against a server with a self-signed certificate too).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use migrate_runtime::config::{ConfigError, ConnectionSettings};
use migrate_runtime::testing::TestServer;

/// An environment of exactly these variables.
fn env(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.clone()))
        .collect();
    move |name| map.get(name).cloned()
}

fn settings(explicit: Option<&str>, pairs: &[(&str, String)]) -> ConnectionSettings {
    ConnectionSettings::resolve(explicit, env(pairs))
        .expect("valid settings")
        .expect("something is configured")
}

fn url_with(port: u16, query: &str) -> String {
    format!("postgresql://postgres:not-checked@127.0.0.1:{port}/postgres{query}")
}

fn current_user(settings: &ConnectionSettings) -> String {
    let mut client = settings.connect().unwrap_or_else(|error| panic!("{error}"));
    client
        .query_one("SELECT current_user::text", &[])
        .unwrap()
        .get(0)
}

fn connect_error(settings: &ConnectionSettings) -> ConfigError {
    match settings.connect() {
        Ok(_) => panic!("{} connected", settings.describe()),
        Err(error) => error,
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port()
}

#[test]
fn every_source_form_connects() {
    let port = TestServer::shared().port();
    let password = "any-password-the-server-trusts".to_owned();
    let forms = [
        (settings(Some(&url_with(port, "")), &[]), "--database-url"),
        (
            settings(
                None,
                &[(
                    "DATABASE_URL",
                    format!("host=127.0.0.1 port={port} user=postgres password='{password}' dbname=postgres"),
                )],
            ),
            "DATABASE_URL",
        ),
        (
            settings(
                None,
                &[
                    ("DB_HOST", "127.0.0.1".to_owned()),
                    ("DB_PORT", port.to_string()),
                    ("DB_NAME", "postgres".to_owned()),
                    ("DB_USER", "postgres".to_owned()),
                    ("DB_PASSWORD", password.clone()),
                ],
            ),
            "DB_* variables",
        ),
        (
            settings(
                None,
                &[
                    ("PGHOST", "127.0.0.1".to_owned()),
                    ("PGPORT", port.to_string()),
                    ("PGDATABASE", "postgres".to_owned()),
                    ("PGUSER", "postgres".to_owned()),
                    ("PGPASSWORD", password.clone()),
                    ("PGSSLMODE", "prefer".to_owned()),
                ],
            ),
            "PG* variables",
        ),
    ];
    for (settings, source) in &forms {
        assert_eq!(settings.source(), *source);
        assert_eq!(
            settings.describe(),
            format!("postgresql://postgres@127.0.0.1:{port}/postgres")
        );
        assert!(!settings.describe().contains(&password));
        assert_eq!(current_user(settings), "postgres", "{source}");
    }
}

/// `PGOPTIONS`, and `options` in a URL or `key=value` string, reach the server as libpq sends
/// them: the session shows the settings, in the `-c name=value` and `--name=value` forms.
#[test]
fn pgoptions_and_options_in_the_string_set_the_sessions_settings() {
    let port = TestServer::shared().port();
    let show = |settings: &ConnectionSettings, name: &str| -> String {
        let mut client = settings.connect().unwrap_or_else(|error| panic!("{error}"));
        client
            .query_one(&format!("SHOW {name}"), &[])
            .unwrap()
            .get(0)
    };
    let pg = |options: &str| {
        settings(
            None,
            &[
                ("PGHOST", "127.0.0.1".to_owned()),
                ("PGPORT", port.to_string()),
                ("PGDATABASE", "postgres".to_owned()),
                ("PGUSER", "postgres".to_owned()),
                ("PGOPTIONS", options.to_owned()),
            ],
        )
    };
    let both = pg("-c lock_timeout=1234ms -c work_mem=1234kB");
    assert_eq!(show(&both, "lock_timeout"), "1234ms");
    assert_eq!(show(&both, "work_mem"), "1234kB");
    assert_eq!(
        show(&pg("--statement_timeout=5s"), "statement_timeout"),
        "5s"
    );

    let url = settings(
        Some(&url_with(port, "?options=-c%20work_mem%3D2345kB")),
        &[("PGOPTIONS", "-c work_mem=1kB".to_owned())],
    );
    assert_eq!(show(&url, "work_mem"), "2345kB", "the string's options win");
    let conninfo = settings(
        Some(&format!(
            "host=127.0.0.1 port={port} user=postgres dbname=postgres options='-c search_path=elsewhere'"
        )),
        &[],
    );
    assert_eq!(show(&conninfo, "search_path"), "elsewhere");
}

#[test]
fn the_test_servers_own_config_connects_over_its_socket() {
    let settings = ConnectionSettings::from_config(TestServer::shared().config("postgres"));
    assert_eq!(settings.source(), "configuration");
    assert_eq!(current_user(&settings), "postgres");
}

#[test]
fn prefer_allow_and_disable_connect_in_plain_text_to_a_server_without_ssl() {
    let port = TestServer::shared().port();
    for mode in ["disable", "allow", "prefer"] {
        let settings = settings(Some(&url_with(port, &format!("?sslmode={mode}"))), &[]);
        let mut client = settings.connect().unwrap_or_else(|error| panic!("{error}"));
        let ssl: bool = client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .unwrap()
            .get(0);
        assert!(!ssl, "{mode}");
    }
}

#[test]
fn connect_with_wait_rides_out_a_restart() {
    let server = TestServer::start().unwrap();
    let settings = settings(Some(&url_with(server.port(), "")), &[]);
    settings.connect().unwrap_or_else(|error| panic!("{error}"));
    server.stop().unwrap();
    assert!(settings.connect().is_err(), "the server is stopped");

    let started = Instant::now();
    let client = std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_secs(2));
            server.restart().unwrap();
        });
        settings.connect_with_wait(Duration::from_secs(60))
    });
    let mut client = client.unwrap_or_else(|error| panic!("{error}"));
    assert!(started.elapsed() >= Duration::from_millis(1900));
    client.batch_execute("SELECT 1").unwrap();
}

#[test]
fn connect_with_wait_gives_up_saying_how_long_it_waited_and_why() {
    let port = free_port();
    let settings = settings(Some(&url_with(port, "")), &[]);
    let started = Instant::now();
    let error = match settings.connect_with_wait(Duration::from_secs(1)) {
        Ok(_) => panic!("something listens on {port}"),
        Err(error) => error,
    };
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(error, ConfigError::Timeout { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("after waiting 1 s"), "{message}");
    assert!(message.contains("Connection refused"), "{message}");
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(!message.contains("not-checked"), "{message}");
}

#[test]
fn server_errors_are_not_retried() {
    let port = TestServer::shared().port();
    let url = format!("postgresql://postgres@127.0.0.1:{port}/no_such_database");
    let settings = settings(Some(&url), &[]);
    let started = Instant::now();
    let error = match settings.connect_with_wait(Duration::from_secs(30)) {
        Ok(_) => panic!("connected to a missing database"),
        Err(error) => error,
    };
    assert!(started.elapsed() < Duration::from_secs(5));
    let ConfigError::Connect { error: driver, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(driver.code().map(|code| code.code()), Some("3D000"));
    let message = error.to_string();
    assert!(message.contains("does not exist"), "{message}");
    assert!(message.contains("create the database"), "{message}");
}

#[cfg(not(feature = "tls"))]
#[test]
fn sslmode_require_without_the_tls_feature_says_how_to_enable_it() {
    let port = TestServer::shared().port();
    for mode in ["require", "verify-ca", "verify-full"] {
        let settings = settings(Some(&url_with(port, &format!("?sslmode={mode}"))), &[]);
        let error = connect_error(&settings);
        assert!(
            matches!(error, ConfigError::TlsNotEnabled { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("`tls` feature"), "{message}");
        assert!(message.contains(&format!("sslmode={mode}")), "{message}");
    }
}

#[cfg(feature = "tls")]
#[test]
fn sslmode_require_against_a_server_without_ssl_says_so() {
    let port = TestServer::shared().port();
    for mode in ["require", "verify-ca", "verify-full"] {
        let settings = settings(Some(&url_with(port, &format!("?sslmode={mode}"))), &[]);
        let error = connect_error(&settings);
        assert!(matches!(error, ConfigError::Connect { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("server does not support TLS"), "{message}");
        assert!(
            message.contains("does not accept TLS connections"),
            "{message}"
        );
        assert!(message.contains("sslmode=prefer"), "{message}");
    }
}

/// A server with `ssl = on` and a self-signed certificate for `localhost`.
#[cfg(feature = "tls")]
mod tls_server {
    use std::path::Path;

    use migrate_test_support::tls::self_signed;

    use super::*;

    /// Installs the certificate and key, turns ssl on and restarts the server.
    fn enable_ssl(server: &TestServer, cert: &Path, key: &Path) {
        migrate_test_support::tls::enable_ssl(server.connect("postgres").unwrap(), cert, key);
        server.stop().unwrap();
        server.restart().unwrap();
    }

    fn uses_ssl(settings: &ConnectionSettings) -> bool {
        let mut client = settings
            .connect()
            .unwrap_or_else(|error| panic!("{}: {error}", settings.describe()));
        client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .unwrap()
            .get(0)
    }

    #[test]
    fn sslmodes_verify_as_libpq_does_against_a_self_signed_server() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path(), "server");
        let (other_ca, _) = self_signed(dir.path(), "other");
        let server = TestServer::start().unwrap();
        enable_ssl(&server, &cert, &key);
        let port = server.port();
        let at = |host: &str, query: String| {
            settings(
                Some(&format!(
                    "postgresql://postgres@{host}:{port}/postgres?{query}"
                )),
                &[],
            )
        };
        let root = |path: &Path| format!("sslrootcert={}", path.display());

        // Encrypted without checks, as libpq does.
        assert!(uses_ssl(&at("127.0.0.1", "sslmode=prefer".into())));
        assert!(uses_ssl(&at("127.0.0.1", "sslmode=require".into())));
        assert!(!uses_ssl(&at("127.0.0.1", "sslmode=disable".into())));
        // verify-ca checks the chain, not the name; verify-full checks both.
        let verify_ca = format!("sslmode=verify-ca&{}", root(&cert));
        assert!(uses_ssl(&at("127.0.0.1", verify_ca)));
        let verify_full = format!("sslmode=verify-full&{}", root(&cert));
        assert!(uses_ssl(&at("localhost", verify_full.clone())));

        let wrong_host = connect_error(&at("127.0.0.1", verify_full));
        let message = wrong_host.to_string();
        assert!(message.contains("(IP address mismatch)"), "{message}");
        assert!(
            message.contains(&format!(
                "= help: the server's certificate does not name the host connected to (127.0.0.1:{port}), which verify-full requires"
            )),
            "{message}"
        );
        let untrusted = connect_error(&at("localhost", "sslmode=verify-full".into()));
        // require with a CA file verifies the chain, as in libpq.
        let wrong_ca = connect_error(&at(
            "127.0.0.1",
            format!("sslmode=require&{}", root(&other_ca)),
        ));
        assert!(matches!(wrong_host, ConfigError::Connect { .. }));
        for error in [untrusted, wrong_ca] {
            assert!(matches!(error, ConfigError::Connect { .. }), "{error:?}");
            let message = error.to_string();
            assert!(message.contains("TLS"), "{message}");
            assert!(message.contains("set sslrootcert=PATH"), "{message}");
        }
    }
}
