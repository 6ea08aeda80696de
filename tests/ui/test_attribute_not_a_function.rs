// The attribute goes on a test function only.
#[migrate_macros::test]
struct Fixture {
    url: String,
}

fn main() {}
