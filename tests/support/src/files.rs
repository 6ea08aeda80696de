//! Directories of migration files written on the fly.

use std::path::Path;

use tempfile::TempDir;

/// A new temporary directory holding `files` (name, contents).
pub fn directory<N: AsRef<Path>, C: AsRef<[u8]>>(files: &[(N, C)]) -> TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    write_files(dir.path(), files);
    dir
}

/// A new project directory with `migrations/` holding `files`, the layout the `migrate`
/// binary finds on its own.
pub fn project<N: AsRef<Path>, C: AsRef<[u8]>>(files: &[(N, C)]) -> TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    let migrations = dir.path().join("migrations");
    std::fs::create_dir(&migrations).expect("create migrations/");
    write_files(&migrations, files);
    dir
}

fn write_files<N: AsRef<Path>, C: AsRef<[u8]>>(dir: &Path, files: &[(N, C)]) {
    for (name, contents) in files {
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
    }
}
