// `migrations` is the attribute's only option.
#[migrate_macros::test(migration = "fixtures/valid/lf")]
fn misspelt(url: String) {
    let _ = url;
}

fn main() {}
