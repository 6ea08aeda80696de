//! The migration file format, shared by `embed_migrations!` and the runtime: file names and
//! layouts, sections and directives, the SQL lexer, the checks, and the checksum. Nothing here
//! needs a database, so `migrate-macros` uses this module without the `runtime` feature.

pub(crate) mod checksum;
mod columns;
mod directory;
mod duration;
mod file_name;
#[doc(hidden)]
pub mod fuzzing;
pub mod lexer;
pub mod lint;
pub(crate) mod position;
#[cfg(test)]
mod random_sql;
mod scaffold;
mod sections;
pub mod statements;

use std::fmt;

pub use directory::{read_dir, Loaded, IGNORE_FILE};
pub use duration::{format_duration, parse_duration};
pub use file_name::diesel_version;
pub use scaffold::{scaffold, ScaffoldError};

/// One problem found while reading migrations: the file, the line where it applies, what is
/// wrong and how to fix it.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// std::fs::create_dir(dir.path().join("migrations"))?;
/// std::fs::write(dir.path().join("migrations/001_a.sql"), "-- migrate:up\nCREATE TABLE a ();\n")?;
/// std::fs::write(dir.path().join("migrations/1_b.sql"), "-- migrate:up\nCREATE TABLE b ();\n")?;
///
/// let problems = migrate_runtime::source::read_dir(dir.path(), "migrations").unwrap_err();
/// let problem = &problems.0[0];
/// assert!(problem.message.contains("version 1"), "{problem}");
/// println!("{problem}"); // path:line: message, then `help:` with what to do
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file (or directory), relative to the crate root, with `/` separators.
    pub path: String,
    /// The 1-based line, when the problem is on one.
    pub line: Option<u32>,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path, self.message)?,
            None => write!(f, "{}: {}", self.path, self.message)?,
        }
        match &self.help {
            Some(help) => write!(f, "\n  help: {help}"),
            None => Ok(()),
        }
    }
}

/// Every problem found in a migrations directory (never empty).
///
/// ```
/// # use std::path::Path;
/// // Two files with version 1: `001_create_users.sql` and `1_create_roles.sql`.
/// let root = Path::new(env!("CARGO_MANIFEST_DIR"));
/// let dir = "../tests/fixtures/invalid/duplicate_version";
/// if let Err(problems) = migrate_runtime::source::read_dir(root, dir) {
///     for problem in &problems.0 {
///         eprintln!("{problem}");
///     }
///     assert!(!problems.0.is_empty());
///     assert!(problems.to_string().contains("1_create_roles.sql"), "{problems}");
/// } else {
///     panic!("two files share version 1");
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, diagnostic) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

/// Collects diagnostics for one file.
pub(crate) struct Reporter<'a> {
    path: &'a str,
    out: &'a mut Vec<Diagnostic>,
}

impl<'a> Reporter<'a> {
    pub(crate) fn new(path: &'a str, out: &'a mut Vec<Diagnostic>) -> Self {
        Reporter { path, out }
    }

    pub(crate) fn error(
        &mut self,
        line: Option<u32>,
        message: impl Into<String>,
        help: Option<impl Into<String>>,
    ) {
        self.out.push(Diagnostic {
            path: self.path.to_owned(),
            line,
            message: message.into(),
            help: help.map(Into::into),
        });
    }

    /// The file the diagnostics are about.
    pub(crate) fn path(&self) -> &'a str {
        self.path
    }

    /// Diagnostics collected so far (for this and earlier files), to tell whether a step
    /// added any.
    pub(crate) fn count(&self) -> usize {
        self.out.len()
    }
}
