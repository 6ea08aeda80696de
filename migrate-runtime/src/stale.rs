//! Debug builds: warn when the migrations directory on disk holds migrations this binary
//! does not embed (the stale-binary trap of every compile-time embedder).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::{source, Migration};

/// Compares the embedded set with its directory, once per set per process, when the
/// directory exists at run time (paths are relative to the crate root: `CARGO_MANIFEST_DIR`
/// under `cargo run`/`cargo test`, else the working directory).
pub(crate) fn warn_about_unembedded_files(migrations: &[Migration]) {
    static CHECKED: Mutex<BTreeSet<usize>> = Mutex::new(BTreeSet::new());
    let Some(first) = migrations.first() else {
        return;
    };
    if !CHECKED
        .lock()
        .map(|mut checked| checked.insert(migrations.as_ptr() as usize))
        .unwrap_or(false)
    {
        return;
    }
    let Some(dir) = directory_of(first.path()) else {
        return;
    };
    let root =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from("."), PathBuf::from);
    if !root.join(&dir).is_dir() {
        return;
    }
    let on_disk = match source::read_dir(&root, &dir) {
        Ok(loaded) => loaded.migrations,
        Err(problems) => {
            log::warn!("the migrations in {dir} on disk have problems this binary was built without:\n{problems}");
            return;
        }
    };
    for migration in &on_disk {
        match migrations.iter().find(|m| m.version() == migration.version()) {
            None => log::warn!(
                "{} is on disk but not embedded in this binary: rebuild (and add `migrate_runtime::build::rerun_if_migrations_change` to build.rs)",
                migration.path()
            ),
            Some(embedded) if embedded.checksum() != migration.checksum() => log::warn!(
                "{} on disk differs from the copy embedded in this binary: rebuild",
                migration.path()
            ),
            Some(_) => {}
        }
    }
}

/// The directory a migration path belongs to: `migrations` for `migrations/001_a.sql`,
/// and for diesel's `migrations/2019-01-01-000000_a/up.sql` too.
fn directory_of(path: &str) -> Option<String> {
    let parent = Path::new(path).parent()?;
    let dir = if path.ends_with("/up.sql") {
        parent.parent()?
    } else {
        parent
    };
    dir.to_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::directory_of;

    #[test]
    fn directories_of_each_layout() {
        assert_eq!(
            directory_of("migrations/001_a.sql").as_deref(),
            Some("migrations")
        );
        assert_eq!(directory_of("../db/1_a.up.sql").as_deref(), Some("../db"));
        assert_eq!(
            directory_of("migrations/2019-01-01-000000_a/up.sql").as_deref(),
            Some("migrations")
        );
    }
}
