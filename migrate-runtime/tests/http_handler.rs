//! The admin endpoint's handler through its plain API (no server), as a web framework would
//! call it, against a real PostgreSQL.

use migrate_runtime::config::ConnectionSettings;
use migrate_runtime::http::{Handler, Request, Response};
use migrate_runtime::testing::{TestDatabase, TestServer};
use serde_json::Value;

static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("../migrations");

const TOKEN: &str = "handler-token-0f3b9a61c2-7d4e8a90b1c3";

fn handler(database: &TestDatabase<'_>) -> Handler<'static> {
    Handler::new(
        MIGRATIONS,
        ConnectionSettings::from_config(database.config()),
        TOKEN,
    )
    .unwrap()
    .environment(None)
}

fn request(method: &str, path: &str, token: Option<&str>, body: &str) -> Request {
    Request {
        method: method.to_owned(),
        path: path.to_owned(),
        headers: token
            .map(|token| vec![("authorization".to_owned(), format!("Bearer {token}"))])
            .unwrap_or_default(),
        body: body.as_bytes().to_vec(),
    }
}

fn json(response: &Response) -> Value {
    serde_json::from_str(&response.body).unwrap_or_else(|e| panic!("{e}: {}", response.body))
}

#[test]
fn status_plan_apply_and_history_through_the_plain_api() {
    let database = TestServer::shared().create_database().unwrap();
    let handler = handler(&database).mount("/api/");

    let status = handler.handle(&request("GET", "/api/migrations", Some(TOKEN), ""));
    assert_eq!(status.status, 200, "{}", status.body);
    assert!(status
        .headers
        .contains(&("Content-Type".to_owned(), "application/json".to_owned())));
    let pending = json(&status)["pending"].as_u64().unwrap();
    assert!(pending > 0);

    let plan = handler.handle(&request(
        "POST",
        "/api/migrations",
        Some(TOKEN),
        r#"{"dryRun": true}"#,
    ));
    assert_eq!(plan.status, 200, "{}", plan.body);
    assert!(json(&plan)["pending"][0]["sql"].is_string());

    let applied = handler.handle(&request(
        "POST",
        "/api/migrations",
        Some(TOKEN),
        r#"{"dryRun": false}"#,
    ));
    assert_eq!(applied.status, 200, "{}", applied.body);
    let count = json(&applied)["applied"].as_array().unwrap().len() as u64;
    // The production-only migration is filtered out when no environment is set.
    assert!(count > 0 && count <= pending, "{}", applied.body);

    let history = handler.handle(&request("GET", "/api/migrations/history", Some(TOKEN), ""));
    assert_eq!(history.status, 200);
    assert_eq!(
        json(&history)["actions"].as_array().unwrap().len() as u64,
        count
    );
}

#[test]
fn production_is_403_before_anything_else() {
    // No database behind these settings: a 403 must not need one.
    let settings =
        ConnectionSettings::resolve(Some("postgresql://nobody:secret@127.0.0.1:1/none"), |_| {
            None
        })
        .unwrap()
        .unwrap();
    let handler = Handler::new(MIGRATIONS, settings, TOKEN)
        .unwrap()
        .environment(Some("production"));
    assert!(handler.is_production());
    for token in [Some(TOKEN), None] {
        let response = handler.handle(&request("GET", "/migrations", token, ""));
        assert_eq!(response.status, 403);
        assert_eq!(json(&response)["error"]["kind"], "disabled_in_production");
    }
}

#[test]
fn tokens_bodies_routes_and_methods_are_checked_before_the_database() {
    let settings =
        ConnectionSettings::resolve(Some("postgresql://app:secret@127.0.0.1:1/none"), |_| None)
            .unwrap()
            .unwrap();
    let handler = Handler::new(MIGRATIONS, settings, TOKEN)
        .unwrap()
        .environment(Some("staging"))
        .body_limit(40);

    for token in [
        None,
        Some("wrong"),
        Some(""),
        Some("handler-token-0f3b9a61c"),
    ] {
        let response = handler.handle(&request("GET", "/migrations", token, ""));
        assert_eq!(response.status, 401, "{token:?}");
        assert_eq!(json(&response)["error"]["kind"], "unauthorized");
    }
    let basic = Request {
        headers: vec![("Authorization".to_owned(), format!("Basic {TOKEN}"))],
        ..request("GET", "/migrations", None, "")
    };
    assert_eq!(handler.handle(&basic).status, 401);

    let big = format!(r#"{{"dryRun": false}}{}"#, " ".repeat(32));
    assert_eq!(
        handler
            .handle(&request("POST", "/migrations", Some(TOKEN), &big))
            .status,
        413
    );
    assert_eq!(
        handler
            .handle(&request("GET", "/elsewhere", Some(TOKEN), ""))
            .status,
        404
    );
    let delete = handler.handle(&request("DELETE", "/migrations/history", Some(TOKEN), ""));
    assert_eq!(delete.status, 405);
    assert!(delete
        .headers
        .contains(&("Allow".to_owned(), "GET".to_owned())));
    for body in [
        "",
        "{",
        r#"{"dryRun": "yes"}"#,
        r#"{"dryRun": false, "execute": true}"#,
    ] {
        let response = handler.handle(&request("POST", "/migrations", Some(TOKEN), body));
        assert_eq!(response.status, 400, "{body}: {}", response.body);
    }

    // Past every check, the database is unreachable: 503, and the password is not in it.
    let response = handler.handle(&request("GET", "/migrations", Some(TOKEN), ""));
    assert_eq!(response.status, 503, "{}", response.body);
    assert!(!response.body.contains("secret"), "{}", response.body);
    assert!(
        response.body.contains("postgresql://app@127.0.0.1:1/none"),
        "{}",
        response.body
    );
}

#[test]
fn an_empty_or_short_token_is_refused() {
    use migrate_runtime::http::TokenError;

    let database = TestServer::shared().create_database().unwrap();
    let settings = || ConnectionSettings::from_config(database.config());
    assert_eq!(
        Handler::new(MIGRATIONS, settings(), "").err(),
        Some(TokenError::Missing)
    );
    assert_eq!(
        Handler::new(MIGRATIONS, settings(), "   ").err(),
        Some(TokenError::Missing)
    );
    assert_eq!(
        Handler::new(MIGRATIONS, settings(), "a").err(),
        Some(TokenError::TooShort { length: 1 })
    );
    let error = Handler::new(MIGRATIONS, settings(), &"x".repeat(31))
        .err()
        .unwrap();
    assert_eq!(
        error.to_string(),
        "error: the admin token (INTERNAL_ADMIN_TOKEN) must be at least 32 characters long; it has 31\n   = help: make one with `openssl rand -hex 32`"
    );
    assert!(Handler::new(MIGRATIONS, settings(), &"x".repeat(32)).is_ok());

    // A blank presented token never matches a real one.
    let handler = handler(&database);
    let blank = Request {
        headers: vec![("Authorization".to_owned(), "Bearer ".to_owned())],
        ..request("GET", "/migrations", None, "")
    };
    assert_eq!(handler.handle(&blank).status, 401);
}

/// A rolling deploy through the endpoint: a readiness probe that answers 503 until the
/// binary's migrations are applied, then the post-deploy phase applied on request.
#[test]
fn readiness_and_the_post_deploy_phase_through_the_plain_api() {
    static PHASED: &[migrate_runtime::Migration] =
        migrate_macros::embed_migrations!("../tests/fixtures/valid/phases/new");
    let database = TestServer::shared().create_database().unwrap();
    let handler = Handler::new(
        PHASED,
        ConnectionSettings::from_config(database.config()),
        TOKEN,
    )
    .unwrap()
    .environment(None);
    let versions = |value: &Value| -> Vec<u64> {
        value
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["version"].as_u64().unwrap())
            .collect()
    };

    let probe = handler.handle(&request("GET", "/migrations/ready", Some(TOKEN), ""));
    assert_eq!(probe.status, 503, "{}", probe.body);
    assert_eq!(json(&probe)["ready"], false);
    assert_eq!(versions(&json(&probe)["missing"]), [1, 2, 3]);

    let pre = handler.handle(&request(
        "POST",
        "/migrations",
        Some(TOKEN),
        r#"{"dryRun": false}"#,
    ));
    assert_eq!(pre.status, 200, "{}", pre.body);
    assert_eq!(versions(&json(&pre)["applied"]), [1, 2, 3]);

    // Ready: the post-deploy migration is not needed by this binary, only listed.
    let probe = handler.handle(&request("GET", "/migrations/ready", Some(TOKEN), ""));
    assert_eq!(probe.status, 200, "{}", probe.body);
    assert_eq!(versions(&json(&probe)["post_deploy_pending"]), [4]);

    let refused = handler.handle(&request(
        "POST",
        "/migrations",
        Some(TOKEN),
        r#"{"dryRun": false, "phase": "later"}"#,
    ));
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("\\\"post-deploy\\\""),
        "{}",
        refused.body
    );

    let post = handler.handle(&request(
        "POST",
        "/migrations",
        Some(TOKEN),
        r#"{"dryRun": false, "phase": "post-deploy"}"#,
    ));
    assert_eq!(post.status, 200, "{}", post.body);
    assert_eq!(versions(&json(&post)["applied"]), [4]);
    let probe = handler.handle(&request("GET", "/migrations/ready", Some(TOKEN), ""));
    assert_eq!(json(&probe)["post_deploy_pending"], serde_json::json!([]));

    let wrong = handler.handle(&request("POST", "/migrations/ready", Some(TOKEN), ""));
    assert_eq!(wrong.status, 405);
}
