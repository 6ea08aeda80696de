//! TLS for a test server: a self-signed certificate made by openssl, installed in the data
//! directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use postgres::Client;

use crate::server::write_server_file;

/// A self-signed certificate and key for `localhost` only (not for 127.0.0.1), written to
/// `dir` as `{name}.crt` and `{name}.key`.
pub fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let output = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("the openssl command (apt-get install openssl)");
    assert!(
        output.status.success(),
        "openssl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (cert, key)
}

/// Installs `cert` and `key` as the server's `server.crt` and `server.key` and turns `ssl`
/// on; it takes effect when the server is restarted, which the caller does (after this has
/// closed `admin`).
pub fn enable_ssl(mut admin: Client, cert: &Path, key: &Path) {
    write_server_file(&mut admin, "server.crt", &std::fs::read(cert).unwrap());
    write_server_file(&mut admin, "server.key", &std::fs::read(key).unwrap());
    admin.batch_execute("ALTER SYSTEM SET ssl = on").unwrap();
}
