// A test that takes no database has no use for the attribute.
#[migrate_macros::test(migrations = "fixtures/valid/lf")]
fn nothing() {}

fn main() {}
