//! Creating a new migration file in a directory, in the directory's own layout and version
//! style: the next number in the width already used, or a timestamp where timestamps are used.

use std::path::{Path, PathBuf};

use super::file_name::{self, MigrationFile};

/// Why a new migration could not be created.
///
/// ```
/// use migrate_runtime::source::{scaffold, ScaffoldError};
///
/// let project = tempfile::tempdir()?;
/// let refused = scaffold(project.path(), "migrations", "add user roles", "20261121120000");
/// assert!(matches!(refused, Err(ScaffoldError::BadName(_))));
/// // Nothing was written.
/// assert!(!project.path().join("migrations").exists());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScaffoldError {
    /// The name is not usable in a file name.
    #[error("`{0}` is not a valid migration name: use ASCII letters, digits and underscores, e.g. `add_user_roles`")]
    BadName(String),
    /// Writing the file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or directory being written.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Creates the files for a new migration named `name` in `root/dir` (created if missing) and
/// returns their paths. `now` is the UTC time as `YYYYMMDDHHMMSS`, used where the directory
/// numbers migrations by timestamp (14 digits) or uses diesel's layout.
///
/// ```
/// use std::path::Path;
///
/// # let project = tempfile::tempdir()?;
/// # let root = project.path();
/// # std::fs::create_dir(root.join("migrations"))?;
/// # std::fs::write(root.join("migrations/001_create_users.sql"), "CREATE TABLE users (id int);\n")?;
/// // `root` is the crate's directory; `migrations/` holds `001_create_users.sql`.
/// let created = migrate_runtime::source::scaffold(root, "migrations", "add_user_roles", "20261121120000")?;
/// println!("created {}", created[0].display());
/// assert!(created[0].ends_with("migrations/002_add_user_roles.sql"), "{created:?}");
/// assert!(created[0].is_file());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn scaffold(
    root: &Path,
    dir: &str,
    name: &str,
    now: &str,
) -> Result<Vec<PathBuf>, ScaffoldError> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(ScaffoldError::BadName(name.to_owned()));
    }
    let full = root.join(dir);
    if !full.is_dir() {
        std::fs::create_dir_all(&full).map_err(|source| io_error(&full, source))?;
    }
    // Only names matter here: a file still being written (say, an empty UP section from the
    // previous `new`) must not stop the next one.
    let style = Style::of(&existing_names(&full)?);
    let version = style.next_version(now);
    let created = match style.layout {
        Layout::Single => vec![(
            full.join(format!("{version}_{name}.sql")),
            template(name, now, Part::Both),
        )],
        Layout::UpDown => vec![
            (
                full.join(format!("{version}_{name}.up.sql")),
                template(name, now, Part::Up),
            ),
            (
                full.join(format!("{version}_{name}.down.sql")),
                template(name, now, Part::Down),
            ),
        ],
        Layout::Diesel => {
            let migration_dir = full.join(format!("{}_{name}", diesel_stamp(now)));
            std::fs::create_dir(&migration_dir)
                .map_err(|source| io_error(&migration_dir, source))?;
            vec![
                (migration_dir.join("up.sql"), template(name, now, Part::Up)),
                (
                    migration_dir.join("down.sql"),
                    template(name, now, Part::Down),
                ),
            ]
        }
    };
    for (path, contents) in &created {
        // create_new: never overwrite a migration that already exists.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .and_then(|mut file| std::io::Write::write_all(&mut file, contents.as_bytes()))
            .map_err(|source| io_error(path, source))?;
    }
    Ok(created.into_iter().map(|(path, _)| path).collect())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    Single,
    UpDown,
    Diesel,
}

/// How the directory's existing files are named.
#[derive(Debug, PartialEq, Eq)]
struct Style {
    layout: Layout,
    /// Digits in the version part (e.g. 3 for `001_...`); 14 or more means timestamps.
    width: usize,
    highest: Option<i64>,
}

const TIMESTAMP_WIDTH: usize = 14;

/// A migration already in the directory: its layout, version as written, version as number.
type Existing = (Layout, String, i64);

/// The migrations in `dir`, by name alone.
fn existing_names(dir: &Path) -> Result<Vec<Existing>, ScaffoldError> {
    let entries = std::fs::read_dir(dir).map_err(|source| io_error(dir, source))?;
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if entry.path().is_dir() {
            if let Some((version, _)) = file_name::parse_diesel_dir_name(&name) {
                if let Ok(number) = file_name::diesel_version(version) {
                    found.push((Layout::Diesel, version.replace('-', ""), number));
                }
            }
            continue;
        }
        let (layout, version) = match file_name::parse_file_name(&name) {
            Ok(Some(MigrationFile::Single { version, .. })) => (Layout::Single, version),
            Ok(Some(MigrationFile::Up { version, .. } | MigrationFile::Down { version, .. })) => {
                (Layout::UpDown, version)
            }
            _ => continue,
        };
        if let Ok(number) = file_name::numeric_version(version) {
            found.push((layout, version.to_owned(), number));
        }
    }
    Ok(found)
}

impl Style {
    /// An empty directory gets `001_name.sql`.
    fn of(existing: &[Existing]) -> Style {
        let layout = existing
            .iter()
            .map(|(layout, _, _)| *layout)
            .max_by_key(|layout| *layout as u8)
            .unwrap_or(Layout::Single);
        Style {
            layout,
            width: existing
                .iter()
                .map(|(_, text, _)| text.len())
                .max()
                .unwrap_or(3),
            highest: existing.iter().map(|(_, _, number)| *number).max(),
        }
    }

    fn next_version(&self, now: &str) -> String {
        if self.width >= TIMESTAMP_WIDTH {
            // A clock behind the newest migration must not produce an older version.
            let stamp: i64 = now.parse().unwrap_or_default();
            let next = self.highest.map_or(stamp, |h| stamp.max(h + 1));
            return next.to_string();
        }
        let next = self.highest.map_or(1, |h| h + 1);
        format!("{next:0width$}", width = self.width)
    }
}

/// `20261121120000` → diesel's `2026-11-21-120000`.
fn diesel_stamp(now: &str) -> String {
    if now.len() != TIMESTAMP_WIDTH {
        return now.to_owned();
    }
    format!("{}-{}-{}-{}", &now[..4], &now[4..6], &now[6..8], &now[8..])
}

#[derive(Clone, Copy)]
enum Part {
    Both,
    Up,
    Down,
}

fn template(name: &str, now: &str, part: Part) -> String {
    let title = name.replace('_', " ");
    let header = format!(
        "-- {title}\n-- Created {now} (UTC).\n--\n-- Say what this changes and why. To run it statement by statement outside a\n-- transaction (CREATE INDEX CONCURRENTLY and the like), add the no-transaction\n-- directive line in this header.\n"
    );
    match part {
        Part::Both => format!("{header}\n-- migrate:up\n\n\n-- migrate:down\n\n"),
        Part::Up => format!("{header}\n"),
        Part::Down => format!("-- Reverts {title}.\n\n"),
    }
}

fn io_error(path: &Path, source: std::io::Error) -> ScaffoldError {
    ScaffoldError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for file in files {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "SELECT 1;\n").unwrap();
        }
        dir
    }

    fn names(created: &[PathBuf], root: &Path) -> Vec<String> {
        created
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn sequential_in_the_width_already_used() {
        let dir = dir_with(&["m/01_a.sql", "m/02_b.sql"]);
        let created = scaffold(dir.path(), "m", "add_c", "20261121120000").unwrap();
        assert_eq!(names(&created, dir.path()), ["m/03_add_c.sql"]);
        let text = std::fs::read_to_string(&created[0]).unwrap();
        assert!(
            text.contains("-- migrate:up\n") && text.contains("-- migrate:down\n"),
            "{text}"
        );
    }

    #[test]
    fn an_empty_or_missing_directory_starts_at_001() {
        let dir = tempfile::tempdir().unwrap();
        let created = scaffold(dir.path(), "migrations", "init", "20261121120000").unwrap();
        assert_eq!(names(&created, dir.path()), ["migrations/001_init.sql"]);
    }

    #[test]
    fn timestamps_where_timestamps_are_used() {
        let dir = dir_with(&["m/20241201000001_a.sql"]);
        let created = scaffold(dir.path(), "m", "b", "20261121120000").unwrap();
        assert_eq!(names(&created, dir.path()), ["m/20261121120000_b.sql"]);
        // A clock behind the newest version still moves forward.
        let created = scaffold(dir.path(), "m", "c", "20200101000000").unwrap();
        assert_eq!(names(&created, dir.path()), ["m/20261121120001_c.sql"]);
    }

    #[test]
    fn other_layouts_keep_their_shape() {
        let dir = dir_with(&["m/1_a.up.sql", "m/1_a.down.sql"]);
        let created = scaffold(dir.path(), "m", "b", "20261121120000").unwrap();
        assert_eq!(
            names(&created, dir.path()),
            ["m/2_b.up.sql", "m/2_b.down.sql"]
        );
        let dir = dir_with(&["m/2019-03-11-123456_a/up.sql"]);
        let created = scaffold(dir.path(), "m", "b", "20261121120000").unwrap();
        assert_eq!(
            names(&created, dir.path()),
            [
                "m/2026-11-21-120000_b/up.sql",
                "m/2026-11-21-120000_b/down.sql"
            ]
        );
    }

    #[test]
    fn bad_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let error = scaffold(dir.path(), "m", "add-users", "20261121120000").unwrap_err();
        assert!(error
            .to_string()
            .contains("`add-users` is not a valid migration name"));
    }

    #[test]
    fn the_new_file_parses_once_its_up_section_has_sql() {
        let dir = tempfile::tempdir().unwrap();
        let created = scaffold(dir.path(), "m", "add_t", "20261121120000").unwrap();
        let text = std::fs::read_to_string(&created[0]).unwrap();
        std::fs::write(
            &created[0],
            text.replace("-- migrate:up\n", "-- migrate:up\nCREATE TABLE t ();\n"),
        )
        .unwrap();
        let loaded = super::super::read_dir(dir.path(), "m").unwrap();
        assert_eq!(loaded.migrations[0].name(), "add_t");
    }
}
