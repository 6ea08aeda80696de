// An async test needs its runtime's attribute below this one.
#[migrate_macros::test(migrations = "fixtures/valid/lf")]
async fn no_runtime(url: String) {
    let _ = url;
}

fn main() {}
