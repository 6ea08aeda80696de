//! A tokio service that owns its schema: it applies the embedded migrations at start-up (on
//! tokio's blocking pool, through `migrate_runtime::tokio::run`), then serves an axum app with
//! a route of its own and the admin endpoint mounted under `/admin` (bearer token from
//! `INTERNAL_ADMIN_TOKEN`). Needs a database (`DATABASE_URL`, `DB_*` or `PG*`); listens on
//! `LISTEN_ADDR` (default `127.0.0.1:3000`) and prints the address it bound.
//!
//! ```sh
//! DATABASE_URL=postgresql://... INTERNAL_ADMIN_TOKEN=... \
//!     cargo run -p migrate-runtime --features tokio,http --example axum_startup
//! ```
#![allow(clippy::print_stdout)] // A demo that reports to the terminal.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::routing::{any, get};
use axum::Router;
use migrate_runtime::config::ConnectionSettings;
use migrate_runtime::http::{Handler, Request};
use migrate_runtime::{Migration, Migrator};

static MIGRATIONS: &[Migration] = migrate_macros::embed_migrations!("../migrations");

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let database = ConnectionSettings::from_env(None)?
        .ok_or("no database configured: set DATABASE_URL (or DB_* / PG* variables)")?;

    // The blocking client lives and dies on tokio's blocking pool: no panic in async code.
    let report = migrate_runtime::tokio::run(Migrator::new(MIGRATIONS), database.clone()).await?;
    println!("migrations: {} applied at start-up", report.applied.len());

    let token = std::env::var("INTERNAL_ADMIN_TOKEN").unwrap_or_default();
    let admin = Arc::new(Handler::new(MIGRATIONS, database, &token)?.mount("/admin"));
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/admin/{*route}", any(admin_endpoint))
        .with_state(admin);

    let address = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(address).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// The admin endpoint, answered on the blocking pool so its database work never holds up a
/// worker thread.
async fn admin_endpoint(
    State(handler): State<Arc<Handler<'static>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::http::Response<Body> {
    let request = Request {
        method: method.to_string(),
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
            .collect(),
        body: body.to_vec(),
    };
    let answer = migrate_runtime::tokio::handle(handler, request).await;
    let mut response = axum::http::Response::builder().status(answer.status);
    for (name, value) in &answer.headers {
        response = response.header(name, value);
    }
    response
        .body(Body::from(answer.body))
        .expect("the handler's status and headers are valid HTTP")
}
