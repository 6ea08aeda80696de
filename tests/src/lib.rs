//! Shared helpers for the workspace's integration tests: migration sets written on the fly,
//! and a proxy that counts round trips.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use migrate_runtime::Migration;
use postgres::{Client, NoTls};

/// Writes `files` (name, contents) to a new temporary directory and reads them with the
/// runtime parser, as the CLI's directory mode does. Keep the `TempDir` alive while the
/// migrations are used only if their paths matter; the migrations own their text.
pub fn migrations(files: &[(&str, &str)]) -> Vec<Migration> {
    let dir = migrate_test_support::files::directory(files);
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

/// `n` migrations `0001_t1.sql`.. creating tables `t1`..`tn` (each with a primary key);
/// `broken(version)` gives a migration other SQL.
pub fn numbered(n: usize, broken: impl Fn(usize) -> Option<String>) -> Vec<Migration> {
    let files: Vec<(String, String)> = (1..=n)
        .map(|v| {
            let sql =
                broken(v).unwrap_or_else(|| format!("CREATE TABLE t{v} (id int PRIMARY KEY);\n"));
            (format!("{v:04}_t{v}.sql"), sql)
        })
        .collect();
    let borrowed: Vec<(&str, &str)> = files
        .iter()
        .map(|(f, s)| (f.as_str(), s.as_str()))
        .collect();
    migrations(&borrowed)
}

/// How many of [`numbered`]'s tables exist.
pub fn numbered_tables(client: &mut Client) -> i64 {
    scalar(
        client,
        "SELECT count(*) FROM pg_tables WHERE tablename ~ '^t[0-9]+$'",
    )
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
        Self::with_delay(server_port, Duration::ZERO)
    }

    /// Like [`RoundTripCounter::start`], and holds every chunk of data for `delay` before
    /// passing it on, in each direction: a network that is not a loopback.
    pub fn with_delay(server_port: u16, delay: Duration) -> RoundTripCounter {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listen");
        let port = listener.local_addr().expect("proxy address").port();
        let ready = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&ready);
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)) else {
                    continue;
                };
                forward(client, server, Arc::clone(&counter), delay);
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

    /// The loopback port the proxy listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `ReadyForQuery` messages seen so far, across connections.
    pub fn ready_messages(&self) -> usize {
        self.ready.load(Ordering::SeqCst)
    }
}

fn forward(client: TcpStream, server: TcpStream, ready: Arc<AtomicUsize>, delay: Duration) {
    // Without this, Nagle's algorithm and delayed ACKs add ~40 ms to small exchanges.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, server_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    thread::spawn(move || relay(client_read, server_write, delay, |_| {}));
    let mut parser = ReadyCounter::default();
    thread::spawn(move || {
        relay(server, client, delay, move |chunk| {
            parser.feed(chunk, &ready)
        })
    });
}

/// Copies `from` to `to`, chunk by chunk, holding each chunk for `delay`; `inspect` sees the
/// bytes first.
fn relay(mut from: TcpStream, mut to: TcpStream, delay: Duration, mut inspect: impl FnMut(&[u8])) {
    let mut buffer = [0u8; 64 * 1024];
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        inspect(&buffer[..read]);
        if !delay.is_zero() {
            thread::sleep(delay);
        }
        if to.write_all(&buffer[..read]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Finds `ReadyForQuery` messages in the server's byte stream. Backend messages are a type
/// byte and a big-endian length that counts itself; chunks may split them anywhere.
#[derive(Default)]
struct ReadyCounter {
    pending: Vec<u8>,
}

impl ReadyCounter {
    fn feed(&mut self, chunk: &[u8], ready: &AtomicUsize) {
        self.pending.extend_from_slice(chunk);
        let mut at = 0;
        while self.pending.len() >= at + 5 {
            let length =
                u32::from_be_bytes(self.pending[at + 1..at + 5].try_into().unwrap()) as usize;
            if self.pending.len() < at + 1 + length {
                break;
            }
            if self.pending[at] == b'Z' {
                ready.fetch_add(1, Ordering::SeqCst);
            }
            at += 1 + length;
        }
        self.pending.drain(..at);
    }
}

/// The repository's example migrations directory, relative to this crate.
pub fn example_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations"))
}
