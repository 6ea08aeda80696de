//! Debug builds warn when the migrations directory on disk holds migrations the binary does
//! not embed, or embeds in an older version. (Its own test binary: it sets process-wide state,
//! the logger and `CARGO_MANIFEST_DIR`.)

use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};
use migrate_runtime::testing::TestServer;
use migrate_runtime::Migrator;

struct Capture(Mutex<Vec<String>>);

impl Log for Capture {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= Level::Warn
    }
    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            self.0.lock().unwrap().push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "the check exists in debug builds only"
)]
fn files_on_disk_but_not_in_the_binary_are_warned_about() {
    log::set_logger(&CAPTURE).unwrap();
    log::set_max_level(LevelFilter::Warn);

    let crate_root = tempfile::tempdir().unwrap();
    let dir = crate_root.path().join("migrations");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("001_a.sql"), "CREATE TABLE a (id int);\n").unwrap();
    std::fs::write(dir.join("002_b.sql"), "CREATE TABLE b (id int);\n").unwrap();
    // What the binary was built with...
    let built = migrate_runtime::source::read_dir(crate_root.path(), "migrations")
        .unwrap()
        .migrations;
    // ...and the directory since then.
    std::fs::write(dir.join("002_b.sql"), "CREATE TABLE b (id bigint);\n").unwrap();
    std::fs::write(dir.join("003_c.sql"), "CREATE TABLE c (id int);\n").unwrap();
    std::env::set_var("CARGO_MANIFEST_DIR", crate_root.path());

    let database = TestServer::shared().create_database().unwrap();
    let report = Migrator::new(&built)
        .run(&mut database.client().unwrap())
        .unwrap();
    assert_eq!(report.applied.len(), 2, "the warning does not stop the run");

    let warnings = CAPTURE.0.lock().unwrap().clone();
    assert!(
        warnings.iter().any(|w| w.starts_with(
            "migrations/003_c.sql is on disk but not embedded in this binary: rebuild"
        )),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("migrations/002_b.sql on disk differs from the copy embedded")),
        "{warnings:?}"
    );
    assert_eq!(warnings.len(), 2, "{warnings:?}");
}
