// A test attribute argument the attribute cannot produce.
#[migrate_macros::test(migrations = "fixtures/valid/lf")]
fn counts(rows: i64) {
    assert_eq!(rows, 0);
}

fn main() {}
