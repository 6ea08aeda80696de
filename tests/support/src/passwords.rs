//! A server whose TCP connections need a password (SCRAM), and the checks that a password
//! shows nowhere.

use std::time::{Duration, Instant};

use postgres::{Client, NoTls};

use crate::server::write_server_file;

/// `text` percent-encoded for a URL: everything but ASCII letters, digits and `-`.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Panics, naming `what`, if `text` contains any of `passwords`.
pub fn assert_secret_free(what: &str, text: &str, passwords: &[&str]) {
    for secret in passwords {
        assert!(!text.contains(secret), "{what} shows a password:\n{text}");
    }
}

/// Creates `role` (not a superuser, may not create databases or roles) with `password` and a
/// database it owns for each of `databases`, then makes TCP connections to the server on
/// `port` follow `hba`, the TCP lines of `pg_hba.conf` (e.g. `host all all 127.0.0.1/32
/// scram-sha-256`); the Unix socket, which `admin` uses, stays trusted for the tests' own
/// checks. Returns once a TCP connection without a password is refused.
pub fn require_passwords(
    admin: &mut Client,
    port: u16,
    role: &str,
    password: &str,
    hba: &str,
    databases: &[&str],
) {
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{}'",
            password.replace('\'', "''")
        ))
        .unwrap();
    for database in databases {
        admin
            .batch_execute(&format!("CREATE DATABASE {database} OWNER {role}"))
            .unwrap();
    }
    write_server_file(
        admin,
        "pg_hba.conf",
        format!("local all all trust\n{hba}\n").as_bytes(),
    );
    admin.batch_execute("SELECT pg_reload_conf()").unwrap();
    // The reload is asynchronous: wait until a TCP connection without a password is refused.
    let started = Instant::now();
    let plain = format!("postgresql://postgres@127.0.0.1:{port}/postgres?sslmode=disable");
    while Client::connect(&plain, NoTls).is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "pg_hba.conf was not reloaded"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The history of the database `client` is connected to: both tables have rows, no column of
/// any row holds one of `passwords`, and every action was executed by `role`.
pub fn assert_history_names_only(client: &mut Client, role: &str, passwords: &[&str]) {
    for table in ["schema_migrations", "schema_migrations_history"] {
        let rows: Vec<String> = client
            .query(&format!("SELECT row_to_json(t)::text FROM {table} t"), &[])
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert!(!rows.is_empty(), "{table}");
        assert_secret_free(table, &rows.join("\n"), passwords);
    }
    let by: String = client
        .query_one(
            "SELECT string_agg(DISTINCT executed_by, ',') FROM schema_migrations_history",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(by, role);
}
