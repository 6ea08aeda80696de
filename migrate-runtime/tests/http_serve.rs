//! `migrate serve` run as a user would run it, answered over loopback by a real HTTP client
//! (`ureq`), against a real PostgreSQL.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use migrate_runtime::testing::{TestDatabase, TestServer};
use migrate_test_support::files::project;
use serde_json::Value;
use support::binary;

const TOKEN: &str = "9c1f0d7e-admin-token-for-tests-5b2a";
const PASSWORD: &str = "Pa55-never-served";

/// A running `migrate serve`, stopped when dropped.
struct Serve {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// Everything the server wrote on standard error so far.
    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

fn command(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut command = binary();
    command
        .current_dir(dir)
        .envs(env.iter().copied())
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(args);
    command
}

/// Starts the server and waits for its "listening on" line; a server that exits instead gives
/// its exit code and standard error.
fn try_serve(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Result<Serve, (i32, String)> {
    let mut child = command(dir, env, args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(url) = line.strip_prefix("listening on ") {
            let base = url.trim_end_matches("/migrations").to_owned();
            // Keep reading standard error so the server never blocks on a full pipe.
            let log = Arc::new(Mutex::new(Vec::new()));
            let sink = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in lines.map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            });
            return Ok(Serve { child, base, log });
        }
        seen.push(line);
    }
    let code = child.wait().unwrap().code().unwrap_or(-1);
    Err((code, seen.join("\n")))
}

fn serve(dir: &Path, database: &TestDatabase<'_>, args: &[&str]) -> Serve {
    let url = url(database);
    try_serve(
        dir,
        &[("DATABASE_URL", &url), ("INTERNAL_ADMIN_TOKEN", TOKEN)],
        args,
    )
    .unwrap_or_else(|(code, stderr)| panic!("serve exited with {code}:\n{stderr}"))
}

/// The test database's URL with a password in it (the server trusts local connections, so
/// any password works; the point is that it is never served).
fn url(database: &TestDatabase<'_>) -> String {
    database
        .url()
        .replace("postgres@", &format!("postgres:{PASSWORD}@"))
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// One request; `token` None sends no `Authorization` header.
fn request(method: &str, url: &str, token: Option<&str>, body: Option<&[u8]>) -> Reply {
    let agent = agent();
    let authorization = token.map(|token| format!("Bearer {token}"));
    let mut response = match (method, body) {
        ("GET", _) => {
            let mut request = agent.get(url);
            if let Some(value) = &authorization {
                request = request.header("Authorization", value);
            }
            request.call()
        }
        (_, body) => {
            let mut request = match method {
                "POST" => agent.post(url),
                "PUT" => agent.put(url),
                other => panic!("no helper for {other}"),
            };
            if let Some(value) = &authorization {
                request = request.header("Authorization", value);
            }
            request
                .header("Content-Type", "application/json")
                .send(body.unwrap_or_default())
        }
    }
    .unwrap_or_else(|error| panic!("{method} {url}: {error}"));
    let reply = Reply {
        status: response.status().as_u16(),
        headers: response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect(),
        body: response.body_mut().read_to_string().unwrap(),
    };
    assert!(
        !reply.body.contains(PASSWORD),
        "the password was served: {}",
        reply.body
    );
    reply
}

fn get(serve: &Serve, route: &str) -> Reply {
    request("GET", &format!("{}{route}", serve.base), Some(TOKEN), None)
}

fn post(serve: &Serve, body: &str) -> Reply {
    request(
        "POST",
        &format!("{}/migrations", serve.base),
        Some(TOKEN),
        Some(body.as_bytes()),
    )
}

fn applied_versions(reply: &Reply) -> Vec<i64> {
    reply.json()["applied"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", reply.body))
        .iter()
        .map(|a| a["version"].as_i64().unwrap())
        .collect()
}

fn tables(database: &TestDatabase<'_>) -> Vec<String> {
    database
        .client()
        .unwrap()
        .query("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' AND table_name NOT LIKE 'schema_migrations%' ORDER BY 1", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn two() -> tempfile::TempDir {
    project(&[
        ("001_a.sql", "CREATE TABLE a (id int);\n"),
        ("002_b.sql", "CREATE TABLE b (id int);\n"),
    ])
}

#[test]
fn each_route_answers_with_the_command_lines_documents() {
    let dir = two();
    let database = TestServer::shared().create_database().unwrap();
    let serve = serve(dir.path(), &database, &[]);

    let status = get(&serve, "/migrations");
    assert_eq!(status.status, 200, "{}", status.body);
    assert_eq!(status.header("content-type"), Some("application/json"));
    assert_eq!(status.json()["pending"], 2);
    assert_eq!(status.json()["migrations"][1]["state"], "pending");

    let plan = post(&serve, r#"{"dryRun": true}"#);
    assert_eq!(plan.status, 200, "{}", plan.body);
    assert_eq!(plan.json()["pending"][0]["path"], "migrations/001_a.sql");
    assert_eq!(
        plan.json()["pending"][1]["sql"],
        "CREATE TABLE b (id int);\n"
    );

    let rehearsal = post(&serve, r#"{"dryRun": true, "execute": true}"#);
    assert_eq!(rehearsal.status, 200, "{}", rehearsal.body);
    assert_eq!(rehearsal.json()["failed"], false);
    assert_eq!(rehearsal.json()["rehearsal"][1]["outcome"], "would_apply");
    assert!(tables(&database).is_empty(), "a dry run changes nothing");

    let applied = post(&serve, r#"{"dryRun": false}"#);
    assert_eq!(applied.status, 200, "{}", applied.body);
    assert_eq!(applied_versions(&applied), [1, 2]);
    assert_eq!(tables(&database), ["a", "b"]);

    let again = post(&serve, r#"{"dryRun": false}"#);
    assert_eq!(applied_versions(&again), Vec::<i64>::new());

    // The same document as `migrate status --json`.
    let status = get(&serve, "/migrations");
    let output = binary()
        .current_dir(dir.path())
        .env("DATABASE_URL", url(&database))
        .args(["status", "--json"])
        .output()
        .unwrap();
    let cli: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(status.json(), cli);
    assert_eq!(cli["pending"], 0);

    let history = get(&serve, "/migrations/history");
    assert_eq!(history.status, 200, "{}", history.body);
    let actions = history.json()["actions"].as_array().unwrap().clone();
    assert_eq!(actions.len(), 2, "{}", history.body);
    assert!(actions
        .iter()
        .all(|a| a["action"] == "apply" && a["status"] == "success"));

    // Query strings are ignored; other routes and methods are not found or not allowed.
    assert_eq!(get(&serve, "/migrations?verbose=1").status, 200);
    let missing = get(&serve, "/migrations/nope");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["kind"], "not_found");
    let put = request(
        "PUT",
        &format!("{}/migrations", serve.base),
        Some(TOKEN),
        Some(b"{}"),
    );
    assert_eq!(put.status, 405);
    assert_eq!(put.header("allow"), Some("GET, POST"));
    let bad = post(&serve, r#"{"dry_run": true}"#);
    assert_eq!(bad.status, 400, "a misspelt field is refused, not ignored");
    assert_eq!(bad.json()["error"]["kind"], "bad_request");

    let log = serve.log();
    assert!(!log.contains(TOKEN) && !log.contains(PASSWORD), "{log}");
}

#[test]
fn a_prefix_mounts_the_routes_under_it() {
    let dir = two();
    let database = TestServer::shared().create_database().unwrap();
    let serve = serve(dir.path(), &database, &["--prefix", "/api"]);
    assert!(serve.base.ends_with("/api"), "{}", serve.base);
    assert_eq!(get(&serve, "/migrations").status, 200);
    let root = serve.base.trim_end_matches("/api").to_owned();
    let unprefixed = request("GET", &format!("{root}/migrations"), Some(TOKEN), None);
    assert_eq!(unprefixed.status, 404);
}

#[test]
fn a_missing_or_wrong_token_gets_the_same_401() {
    let dir = two();
    let database = TestServer::shared().create_database().unwrap();
    let serve = serve(dir.path(), &database, &[]);
    let url = format!("{}/migrations", serve.base);

    let missing = request("GET", &url, None, None);
    let wrong = request(
        "GET",
        &url,
        Some("9c1f0d7e-admin-token-for-tests-5b2b"),
        None,
    );
    let prefix = request("GET", &url, Some(&TOKEN[..10]), None);
    let longer = request("GET", &url, Some(&format!("{TOKEN}x")), None);
    for reply in [&missing, &wrong, &prefix, &longer] {
        assert_eq!(reply.status, 401, "{}", reply.body);
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
        assert_eq!(reply.json()["error"]["kind"], "unauthorized");
    }
    assert_eq!(missing.body, wrong.body, "the answer does not say which");

    let apply = request("POST", &url, Some("wrong"), Some(br#"{"dryRun": false}"#));
    assert_eq!(apply.status, 401);
    assert!(tables(&database).is_empty(), "nothing ran");
    assert_eq!(get(&serve, "/migrations").status, 200);
}

#[test]
fn the_server_refuses_to_start_in_production_or_without_a_token() {
    let dir = two();
    let database = TestServer::shared().create_database().unwrap();
    let url = url(&database);

    for (env, args) in [
        (vec![("MIGRATE_ENV", "production")], vec![]),
        (vec![("MIGRATE_ENV", "Production")], vec![]),
        (vec![], vec!["--env", "production"]),
    ] {
        let mut env = env;
        env.extend([
            ("DATABASE_URL", url.as_str()),
            ("INTERNAL_ADMIN_TOKEN", TOKEN),
        ]);
        let Err((code, stderr)) = try_serve(dir.path(), &env, &args) else {
            panic!("the server started in production");
        };
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("disabled in production"), "{stderr}");
    }

    for token in [None, Some("")] {
        let mut env = vec![("DATABASE_URL", url.as_str())];
        env.extend(token.map(|token| ("INTERNAL_ADMIN_TOKEN", token)));
        let Err((code, stderr)) = try_serve(dir.path(), &env, &[]) else {
            panic!("the server started without a token");
        };
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("INTERNAL_ADMIN_TOKEN"), "{stderr}");
    }

    // Without a database: no throwaway server behind it, asked for or not.
    let Err((code, stderr)) = try_serve(dir.path(), &[("INTERNAL_ADMIN_TOKEN", TOKEN)], &[]) else {
        panic!("the server started without a database");
    };
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.starts_with("error: no database configured\n"),
        "{stderr}"
    );
    let Err((code, stderr)) = try_serve(
        dir.path(),
        &[("INTERNAL_ADMIN_TOKEN", TOKEN)],
        &["--throwaway"],
    ) else {
        panic!("the server started on a throwaway database");
    };
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        stderr,
        "error: `serve` manages a real database; --throwaway is not for it"
    );

    // Staging is fine.
    let staging = try_serve(
        dir.path(),
        &[
            ("DATABASE_URL", &url),
            ("INTERNAL_ADMIN_TOKEN", TOKEN),
            ("MIGRATE_ENV", "staging"),
        ],
        &[],
    );
    assert!(staging.is_ok());
}

#[test]
fn bodies_over_the_limit_get_413_and_run_nothing() {
    let dir = two();
    let database = TestServer::shared().create_database().unwrap();
    let serve = serve(dir.path(), &database, &[]);

    // Valid JSON padded with spaces: exactly the limit is read, one byte more is refused.
    let document = r#"{"dryRun": false}"#;
    let at_limit = format!("{document}{}", " ".repeat(64 * 1024 - document.len()));
    let over = format!("{at_limit} ");
    let reply = post(&serve, &over);
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert_eq!(reply.json()["error"]["kind"], "body_too_large");
    assert!(tables(&database).is_empty(), "nothing ran");

    let huge = format!("{document}{}", " ".repeat(4 * 1024 * 1024));
    assert_eq!(post(&serve, &huge).status, 413);
    assert!(tables(&database).is_empty(), "nothing ran");

    let reply = post(&serve, &at_limit);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(applied_versions(&reply), [1, 2]);
}

/// A client that declares an absurd body (100 TB) and sends almost none of it: the server
/// answers 413 and stays up. (Written on a raw socket: no HTTP client sends a lying
/// `Content-Length`, which is the point.)
#[test]
fn a_lying_content_length_gets_413_and_the_server_stays_up() {
    use std::io::{Read as _, Write as _};

    let dir = two();
    let database = TestServer::shared().create_database().unwrap();
    let serve = serve(dir.path(), &database, &[]);
    let address = serve.base.trim_start_matches("http://").to_owned();
    let mut socket = std::net::TcpStream::connect(&address).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        socket,
        "POST /migrations HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Length: 100000000000000\r\n\r\n{{\"dryRun\": false}}"
    )
    .unwrap();
    let mut answer = [0u8; 12];
    socket.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 413");
    // Draining that body is what used to abort the process, just after the answer: give it
    // time to, then check the server is still there.
    std::thread::sleep(Duration::from_secs(1));

    let reply = request(
        "GET",
        &format!("{}/migrations", serve.base),
        Some(TOKEN),
        None,
    );
    assert_eq!(reply.status, 200, "the server is still up: {}", reply.body);
    assert!(tables(&database).is_empty(), "nothing ran");
}

/// Two applies at once: the migration lock makes the second wait, then find nothing to do.
#[test]
fn concurrent_applies_apply_each_migration_once() {
    let dir = project(&[
        ("001_a.sql", "CREATE TABLE a (id int);\n"),
        (
            "002_slow.sql",
            "CREATE TABLE slow (id int);\nSELECT pg_sleep(1);\n",
        ),
        ("003_c.sql", "CREATE TABLE c (id int);\n"),
    ]);
    let database = TestServer::shared().create_database().unwrap();
    let serve = serve(dir.path(), &database, &[]);

    let barrier = std::sync::Barrier::new(2);
    let replies: Vec<Reply> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    post(&serve, r#"{"dryRun": false}"#)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all = Vec::new();
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.body);
        all.extend(applied_versions(reply));
    }
    all.sort_unstable();
    assert_eq!(
        all,
        [1, 2, 3],
        "each migration applied by exactly one request"
    );

    let applies: i64 = database
        .client()
        .unwrap()
        .query_one(
            "SELECT count(*) FROM schema_migrations_history WHERE action = 'apply'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(applies, 3);
}

/// With no lock wait, the apply that finds the lock taken gets 409 naming the holder.
#[test]
fn an_apply_that_cannot_get_the_lock_gets_409_with_the_holder() {
    let dir = project(&[(
        "001_slow.sql",
        "CREATE TABLE slow (id int);\nSELECT pg_sleep(3);\n",
    )]);
    let database = TestServer::shared().create_database().unwrap();
    let serve = serve(dir.path(), &database, &["--lock-wait", "0"]);

    let (first, second) = std::thread::scope(|scope| {
        let first = scope.spawn(|| post(&serve, r#"{"dryRun": false}"#));
        // Until the first request holds the lock (its migration sleeps for 3 s).
        let mut client = database.client().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while client
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted",
                &[],
            )
            .unwrap()
            .get::<_, i64>(0)
            == 0
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the lock was never taken"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let second = post(&serve, r#"{"dryRun": false}"#);
        (first.join().unwrap(), second)
    });
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(applied_versions(&first), [1]);
    assert_eq!(second.status, 409, "{}", second.body);
    let error = &second.json()["error"];
    assert_eq!(error["kind"], "lock_timeout");
    assert!(error["holder_pid"].as_i64().unwrap() > 0, "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("held by"),
        "{error}"
    );
}

#[test]
fn a_failing_migration_is_reported_with_file_line_and_sqlstate() {
    let dir = project(&[
        ("001_a.sql", "CREATE TABLE a (id int);\n"),
        (
            "002_b.sql",
            "-- migrate:up\nCREATE TABLE b (id int);\nINSERT INTO b SELECT * FROM nowhere;\n",
        ),
    ]);
    let database = TestServer::shared().create_database().unwrap();
    let serve = serve(dir.path(), &database, &[]);

    let rehearsal = post(&serve, r#"{"dryRun": true, "execute": true}"#);
    assert_eq!(rehearsal.status, 422, "{}", rehearsal.body);
    let document = rehearsal.json();
    assert_eq!(document["failed"], true);
    assert_eq!(document["rehearsal"][1]["outcome"], "would_fail");
    assert_eq!(document["error"]["path"], "migrations/002_b.sql");
    assert_eq!(document["error"]["line"], 3);
    assert_eq!(document["error"]["sqlstate"], "42P01");
    assert!(tables(&database).is_empty(), "a rehearsal changes nothing");

    let reply = post(&serve, r#"{"dryRun": false}"#);
    assert_eq!(reply.status, 422, "{}", reply.body);
    let error = &reply.json()["error"];
    assert_eq!(error["kind"], "migration_failed");
    assert_eq!(error["version"], 2);
    assert_eq!(error["path"], "migrations/002_b.sql");
    assert_eq!(error["line"], 3);
    assert!(error["column"].as_u64().is_some(), "{error}");
    assert_eq!(error["sqlstate"], "42P01");
    assert_eq!(error["message"], "relation \"nowhere\" does not exist");
    assert_eq!(error["done_before"][0]["version"], 1);
    assert!(!reply.body.contains("panicked") && !reply.body.contains("RUST_BACKTRACE"));
    assert_eq!(tables(&database), ["a"]);

    // The failure is in the action log; the status shows what stands.
    let history = get(&serve, "/migrations/history").json();
    assert!(history["actions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["version"] == 2 && a["status"] == "failed"));
    assert_eq!(get(&serve, "/migrations").json()["pending"], 1);
}

#[test]
fn an_unreachable_database_is_a_503_without_the_password() {
    let dir = two();
    let database = TestServer::shared().create_database().unwrap();
    let serve = serve(dir.path(), &database, &[]);
    drop(database);
    let reply = get(&serve, "/migrations");
    assert_eq!(reply.status, 503, "{}", reply.body);
    let error = &reply.json()["error"];
    assert_eq!(error["kind"], "connection");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("postgresql://postgres@127.0.0.1:"),
        "{error}"
    );
}

/// The server's address (`127.0.0.1:PORT`), for raw sockets.
fn address(serve: &Serve) -> String {
    serve
        .base
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned()
}

/// A raw connection that has sent `bytes` (and keeps its write side open).
fn send(address: &str, bytes: &[u8]) -> std::net::TcpStream {
    use std::io::Write as _;

    let mut socket = std::net::TcpStream::connect(address).unwrap();
    socket.write_all(bytes).unwrap();
    socket
}

/// Everything the server sends until it closes the connection (at most `within`), and how
/// long that took.
fn answer(socket: &mut std::net::TcpStream, within: Duration) -> (String, Duration) {
    use std::io::Read as _;

    let started = std::time::Instant::now();
    socket.set_read_timeout(Some(within)).unwrap();
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match socket.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => bytes.extend_from_slice(&chunk[..read]),
            Err(error) => panic!(
                "no close within {within:?} ({error}); so far: {}",
                String::from_utf8_lossy(&bytes)
            ),
        }
    }
    (
        String::from_utf8_lossy(&bytes).into_owned(),
        started.elapsed(),
    )
}

/// Issue 19: connections that declare a body and send one byte of it no longer hold the
/// server. Without the token they get 401 at once, their body unread; with it they get 408
/// when the body deadline passes; a head that never ends gets 408 after the head deadline;
/// and meanwhile a valid request is answered at once.
#[test]
#[allow(clippy::print_stderr)] // The figures, seen with --nocapture.
fn slow_senders_get_408_and_a_valid_request_is_answered_meanwhile() {
    let dir = two();
    let database = TestServer::shared().create_database().unwrap();
    let serve = serve(dir.path(), &database, &[]);
    let address = address(&serve);
    let started = std::time::Instant::now();

    let slow_body = |token: Option<&str>| {
        let authorization = token
            .map(|token| format!("Authorization: Bearer {token}\r\n"))
            .unwrap_or_default();
        send(
            &address,
            format!(
                "POST /migrations HTTP/1.1\r\nHost: x\r\n{authorization}Content-Length: 60000\r\n\r\n{{"
            )
            .as_bytes(),
        )
    };
    let mut unauthenticated: Vec<_> = (0..4).map(|_| slow_body(None)).collect();
    let mut authenticated: Vec<_> = (0..4).map(|_| slow_body(Some(TOKEN))).collect();
    let mut slow_head = send(&address, b"GET /migrations HTTP/1.1\r\nHost: x\r\n");

    for socket in &mut unauthenticated {
        let (text, took) = answer(socket, Duration::from_secs(3));
        assert!(text.starts_with("HTTP/1.1 401 "), "{text}");
        assert!(text.contains("Connection: close"), "{text}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }

    let valid_started = std::time::Instant::now();
    let reply = get(&serve, "/migrations");
    let valid = valid_started.elapsed();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        valid < Duration::from_secs(3),
        "a valid request took {valid:?}"
    );

    let (text, _) = answer(&mut slow_head, Duration::from_secs(8));
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(text.contains("headers did not arrive within 5 s"), "{text}");
    let head_closed = started.elapsed();
    assert!(
        head_closed >= Duration::from_millis(4500) && head_closed < Duration::from_secs(8),
        "{head_closed:?}"
    );

    for socket in &mut authenticated {
        let (text, _) = answer(socket, Duration::from_secs(10));
        assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
        assert!(text.contains("body did not arrive within 10 s"), "{text}");
    }
    let body_closed = started.elapsed();
    assert!(
        body_closed >= Duration::from_millis(9500) && body_closed < Duration::from_secs(14),
        "{body_closed:?}"
    );
    eprintln!(
        "valid request answered in {valid:?} beside 8 slow senders; head 408 at {head_closed:?}, body 408s by {body_closed:?}"
    );
    assert!(tables(&database).is_empty(), "nothing ran");
}

/// Past `MAX_CONNECTIONS` open connections, one more is answered 503 and closed at once,
/// not queued; when they close, the server answers again.
#[test]
fn a_connection_over_the_cap_gets_503_at_once() {
    let dir = two();
    let database = TestServer::shared().create_database().unwrap();
    let serve = serve(dir.path(), &database, &[]);
    let address = address(&serve);

    let held: Vec<_> = (0..migrate_runtime::http::MAX_CONNECTIONS)
        .map(|_| send(&address, b"GET /migrations HTTP/1.1\r\n"))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut extra = send(
        &address,
        format!("GET /migrations HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n").as_bytes(),
    );
    let (text, took) = answer(&mut extra, Duration::from_secs(3));
    assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
    assert!(text.contains("Retry-After: 1"), "{text}");
    assert!(took < Duration::from_secs(1), "{took:?}");

    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(&serve, "/migrations").status, 200);
}

/// The descriptors of a process.
fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Issue 19: a request declaring a huge body used to be abandoned with its connection still
/// open (two descriptors and a thread each), until the server ran out of descriptors. Now
/// it is answered 413 and its connection closed: 300 of them leave the count flat.
#[test]
#[allow(clippy::print_stderr)] // The figures, seen with --nocapture.
fn lying_content_lengths_leave_the_descriptor_count_flat() {
    let dir = two();
    let database = TestServer::shared().create_database().unwrap();
    let serve = serve(dir.path(), &database, &[]);
    let address = address(&serve);
    let pid = serve.child.id();
    assert_eq!(get(&serve, "/migrations").status, 200);
    std::thread::sleep(Duration::from_millis(300));
    let before = descriptors(pid);

    let started = std::time::Instant::now();
    for _ in 0..300 {
        let mut socket = send(
            &address,
            format!(
                "POST /migrations HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\
                 Content-Length: 100000000000000\r\n\r\n{{\"dryRun\": false}}"
            )
            .as_bytes(),
        );
        let (text, _) = answer(&mut socket, Duration::from_secs(5));
        assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    }
    let took = started.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let after = descriptors(pid);
    eprintln!("300 lying requests in {took:?}: descriptors {before} before, {after} after");
    assert!(
        after <= before + 1,
        "descriptors {before} before, {after} after"
    );

    assert_eq!(get(&serve, "/migrations").status, 200);
    assert!(tables(&database).is_empty(), "nothing ran");
}

#[test]
fn a_short_token_is_refused_at_start_up() {
    let dir = two();
    let database = TestServer::shared().create_database().unwrap();
    let url = url(&database);
    for token in ["a", "0123456789abcdef0123456789abcde"] {
        let Err((code, stderr)) = try_serve(
            dir.path(),
            &[("DATABASE_URL", &url), ("INTERNAL_ADMIN_TOKEN", token)],
            &[],
        ) else {
            panic!("the server started with the token {token:?}");
        };
        assert_eq!(code, 2, "{stderr}");
        assert_eq!(
            stderr,
            format!(
                "error: the admin token (INTERNAL_ADMIN_TOKEN) must be at least 32 characters long; it has {}\n   = help: make one with `openssl rand -hex 32`",
                token.len()
            )
        );
    }
}

/// One request on its own connection, with `token`; the status line's code.
fn status_with(address: &str, token: &str) -> (u16, String) {
    let mut socket = send(
        address,
        format!(
            "GET /migrations HTTP/1.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    let (text, _) = answer(&mut socket, Duration::from_secs(5));
    (text[9..12].parse().unwrap(), text)
}

/// Issue 19: after `FREE_FAILURES` wrong tokens, the peer is answered 429 (the right token
/// too) for 1 s, then 2 s after its next failure; the right token clears the record.
#[test]
#[allow(clippy::print_stderr)] // The figures, seen with --nocapture.
fn wrong_tokens_get_429_for_a_growing_time() {
    let dir = two();
    let database = TestServer::shared().create_database().unwrap();
    let serve = serve(dir.path(), &database, &[]);
    let address = address(&serve);
    let wrong = "9c1f0d7e-admin-token-for-tests-5b2b";
    let free = migrate_runtime::http::FREE_FAILURES as usize;

    // A 401 closes its connection: a second request on it gets nothing.
    let mut socket = send(
        &address,
        format!(
            "GET /migrations HTTP/1.1\r\nAuthorization: Bearer {wrong}\r\n\r\n\
             GET /migrations HTTP/1.1\r\nAuthorization: Bearer {wrong}\r\n\r\n"
        )
        .as_bytes(),
    );
    let (text, _) = answer(&mut socket, Duration::from_secs(5));
    assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{text}");
    assert!(text.starts_with("HTTP/1.1 401 "), "{text}");

    let started = std::time::Instant::now();
    let statuses: Vec<u16> = (0..30).map(|_| status_with(&address, wrong).0).collect();
    let burst = started.elapsed();
    let unauthorized = statuses.iter().filter(|&&s| s == 401).count();
    eprintln!("30 wrong tokens in {burst:?}: {unauthorized} answered 401, the rest 429");
    assert_eq!(&statuses[..free], &vec![401; free][..], "{statuses:?}");
    assert!(statuses[free..].iter().all(|&s| s == 429), "{statuses:?}");

    let (status, text) = status_with(&address, TOKEN);
    assert_eq!(status, 429, "the right token waits too: {text}");
    assert!(text.contains("Retry-After: 1\r\n"), "{text}");
    assert!(text.contains("too_many_failures"), "{text}");

    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(status_with(&address, wrong).0, 401);
    let (status, text) = status_with(&address, wrong);
    assert_eq!(status, 429, "{text}");
    assert!(text.contains("Retry-After: 2\r\n"), "{text}");

    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(status_with(&address, TOKEN).0, 200);
    assert_eq!(
        status_with(&address, wrong).0,
        401,
        "the record was cleared"
    );
}

/// Framing the server does not guess at: chunked bodies (411), conflicting lengths (400),
/// heads over 16 KiB (431); and `Expect: 100-continue` is answered before the body.
#[test]
fn framing_is_strict_and_expect_continue_is_answered() {
    use std::io::Write as _;

    let dir = two();
    let database = TestServer::shared().create_database().unwrap();
    let serve = serve(dir.path(), &database, &[]);
    let address = address(&serve);
    let authorization = format!("Authorization: Bearer {TOKEN}\r\n");

    for (request, status) in [
        (
            format!("POST /migrations HTTP/1.1\r\n{authorization}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            "411",
        ),
        (
            format!("POST /migrations HTTP/1.1\r\n{authorization}Content-Length: 2\r\nContent-Length: 3\r\n\r\n{{}}"),
            "400",
        ),
        (
            format!("GET /migrations HTTP/1.1\r\n{authorization}X-Padding: {}\r\n\r\n", "a".repeat(20_000)),
            "431",
        ),
    ] {
        let mut socket = send(&address, request.as_bytes());
        let (text, _) = answer(&mut socket, Duration::from_secs(5));
        assert!(text.starts_with(&format!("HTTP/1.1 {status} ")), "{text}");
    }

    let body = r#"{"dryRun": true}"#;
    let mut socket = send(
        &address,
        format!(
            "POST /migrations HTTP/1.1\r\n{authorization}Expect: 100-continue\r\nConnection: close\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let mut interim = [0u8; 25];
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    std::io::Read::read_exact(&mut socket, &mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    socket.write_all(body.as_bytes()).unwrap();
    let (text, _) = answer(&mut socket, Duration::from_secs(10));
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert!(tables(&database).is_empty(), "a dry run changes nothing");
}
