// One database per test: a second argument is refused.
#[migrate_macros::test(migrations = "fixtures/valid/lf")]
fn two(client: &mut postgres::Client, url: String) {
    let _ = (client, url);
}

fn main() {}
