// A blocking client inside an async test would start a runtime inside the test's.
#[migrate_macros::test(migrations = "fixtures/valid/lf")]
#[tokio::test]
async fn blocking(client: &mut postgres::Client) {
    let _ = client;
}

fn main() {}
