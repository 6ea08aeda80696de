//! Shared helpers for the workspace's integration tests: migration sets written on the fly,
//! and a proxy that counts round trips.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use migrate_runtime::Migration;
use postgres::{Client, NoTls};

/// Writes `files` (name, contents) to a new temporary directory and reads them with the
/// runtime parser, as the CLI's directory mode does. Keep the `TempDir` alive while the
/// migrations are used only if their paths matter; the migrations own their text.
pub fn migrations(files: &[(&str, &str)]) -> Vec<Migration> {
    let dir = tempfile::tempdir().expect("temporary directory");
    for (name, contents) in files {
        std::fs::write(dir.path().join(name), contents).expect("write migration");
    }
    match migrate_runtime::source::read_dir(dir.path(), "") {
        Ok(loaded) => loaded.migrations,
        Err(problems) => panic!("test migrations do not parse:\n{problems}"),
    }
}

/// Five small migrations; with `failing_third`, the third refers to a missing table on
/// line 3, column 13 of `003_c.sql`.
pub fn five(failing_third: bool) -> Vec<Migration> {
    let third = if failing_third {
        "-- migrate:up\nCREATE TABLE c (id int);\nINSERT INTO missing_table VALUES (1);\n"
    } else {
        "-- migrate:up\nCREATE TABLE c (id int);\n"
    };
    migrations(&[
        (
            "001_a.sql",
            "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\n",
        ),
        ("002_b.sql", "-- migrate:up\nCREATE TABLE b (id int);\n"),
        ("003_c.sql", third),
        ("004_d.sql", "-- migrate:up\nCREATE TABLE d (id int);\n"),
        ("005_e.sql", "-- migrate:up\nCREATE TABLE e (id int);\n"),
    ])
}

/// Runs a query and returns its single integer value. Uses the simple protocol, so it leaves
/// no prepared statement behind whose closing would show up in a later round-trip count.
pub fn scalar(client: &mut Client, sql: &str) -> i64 {
    client
        .simple_query(sql)
        .expect(sql)
        .iter()
        .find_map(|message| match message {
            postgres::SimpleQueryMessage::Row(row) => row.get(0)?.parse().ok(),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no integer from {sql}"))
}

/// Names of the tables in `schema`, sorted.
pub fn tables(client: &mut Client, schema: &str) -> Vec<String> {
    client
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
            &[&schema],
        )
        .expect("list tables")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// A TCP proxy in front of a PostgreSQL server that counts round trips: every round trip
/// (a simple query, or an extended-protocol Sync) ends with exactly one `ReadyForQuery`
/// message from the server, so counting those after the start-up one counts round trips.
pub struct RoundTripCounter {
    port: u16,
    ready: Arc<AtomicUsize>,
}

impl RoundTripCounter {
    /// Starts the proxy on a free loopback port, forwarding to `127.0.0.1:server_port`.
    pub fn start(server_port: u16) -> RoundTripCounter {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listen");
        let port = listener.local_addr().expect("proxy address").port();
        let ready = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&ready);
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)) else {
                    continue;
                };
                forward(client, server, Arc::clone(&counter));
            }
        });
        RoundTripCounter { port, ready }
    }

    /// Connects through the proxy (TLS off, so the stream can be read).
    pub fn connect(&self, database: &str) -> Client {
        let url = format!(
            "postgresql://postgres@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        );
        Client::connect(&url, NoTls).expect("connect through the proxy")
    }

    /// `ReadyForQuery` messages seen so far, across connections.
    pub fn ready_messages(&self) -> usize {
        self.ready.load(Ordering::SeqCst)
    }
}

fn forward(client: TcpStream, server: TcpStream, ready: Arc<AtomicUsize>) {
    let (mut client_read, mut server_write) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    thread::spawn(move || {
        let _ = std::io::copy(&mut client_read, &mut server_write);
        let _ = server_write.shutdown(Shutdown::Write);
    });
    let (mut server_read, mut client_write) = (server, client);
    thread::spawn(move || {
        // Backend messages: a type byte, then a big-endian length that counts itself.
        let mut header = [0u8; 5];
        while server_read.read_exact(&mut header).is_ok() {
            let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
            let mut body = vec![0u8; length.saturating_sub(4)];
            if server_read.read_exact(&mut body).is_err() {
                break;
            }
            if header[0] == b'Z' {
                ready.fetch_add(1, Ordering::SeqCst);
            }
            if client_write
                .write_all(&header)
                .and_then(|_| client_write.write_all(&body))
                .is_err()
            {
                break;
            }
        }
        let _ = client_write.shutdown(Shutdown::Write);
    });
}

/// The repository's example migrations directory, relative to this crate.
pub fn example_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations"))
}
