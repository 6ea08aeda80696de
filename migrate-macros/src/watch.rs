//! Whether a file *added* to the embedded directory will rebuild the crate, and a compile-time
//! warning when it will not.
//!
//! The compiler tracks every file the macro embeds (`include_str!`), so an edit or a deletion
//! rebuilds the crate; a new file does not, because on stable Rust a procedural macro cannot
//! ask to be re-run when a directory changes. Only a build script can, with
//! `cargo::rerun-if-changed=DIR` (what `migrate_runtime::build::rerun_if_migrations_change`
//! prints). Without it, a build right after adding a migration silently keeps the old set.
//!
//! So, at expansion time, the macro looks for the evidence that the directory is watched:
//!
//! 1. No `OUT_DIR`: Cargo sets it only for a package that has a build script, so nothing
//!    watches the directory.
//! 2. Cargo keeps what the build script printed in `output`, beside `OUT_DIR`. It is rewritten
//!    every time the script runs, so it says what the script printed *this* time: a
//!    `rerun-if-changed` of the directory or of one above it watches it. A script that prints
//!    no `rerun-if-changed` at all gets Cargo's default (re-run on any change in the package),
//!    which watches a directory inside the package.
//! 3. Where that file is not there (a build system other than Cargo, a future layout),
//!    `rerun_if_migrations_change` also leaves a marker file in `OUT_DIR` listing the
//!    directories it was called with.
//!
//! When none of them shows the directory watched, the expansion carries a `#[deprecated]`
//! constant that it uses: the one way a procedural macro can make rustc print a warning on
//! stable Rust. The warning points at the macro call and says which line to add to which
//! file; `#[allow(deprecated)]` on the item silences it for a crate that rebuilds some other
//! way. The run-time check (debug builds compare the embedded set with the directory on disk)
//! stays as the second line of defence.

use std::path::{Component, Path, PathBuf};

use proc_macro2::{Span, TokenStream};

/// The file `migrate_runtime::build::rerun_if_migrations_change` writes into `OUT_DIR`: one
/// watched directory per line, as given (relative to the crate root).
const MARKER: &str = "migrate-runtime-watched-dirs";

/// Why adding a file to the directory will not rebuild the crate.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unwatched {
    /// The crate has no build script.
    NoBuildScript,
    /// Its build script does not watch the directory.
    NotWatched,
}

/// Whether `dir` (as the macro was given it, relative to `root`) is watched, from the
/// environment of the crate being compiled (its build script's `OUT_DIR`, and its root
/// `package`, which the script's `rerun-if-changed` paths are relative to).
pub(crate) fn check(root: &Path, dir: &str, package: &Path) -> Option<Unwatched> {
    let Some(out_dir) = std::env::var_os("OUT_DIR") else {
        return Some(Unwatched::NoBuildScript);
    };
    let out_dir = PathBuf::from(out_dir);
    let target = resolve(root, dir);
    let watched = match out_dir
        .parent()
        .and_then(|build| std::fs::read_to_string(build.join("output")).ok())
    {
        Some(output) => watched_by_output(&output, package, &target),
        None => std::fs::read_to_string(out_dir.join(MARKER)).is_ok_and(|marker| {
            marker
                .lines()
                .any(|line| target.starts_with(resolve(package, line)))
        }),
    };
    (!watched).then_some(Unwatched::NotWatched)
}

/// Whether a build script that printed `output` makes Cargo rebuild when a file appears in
/// `target`.
fn watched_by_output(output: &str, crate_root: &Path, target: &Path) -> bool {
    let mut rerun_lines = false;
    for line in output.lines() {
        let Some(instruction) = line
            .strip_prefix("cargo::")
            .or_else(|| line.strip_prefix("cargo:"))
        else {
            continue;
        };
        if let Some(path) = instruction.strip_prefix("rerun-if-changed=") {
            rerun_lines = true;
            if target.starts_with(resolve(crate_root, path)) {
                return true;
            }
        } else if instruction.starts_with("rerun-if-env-changed=") {
            rerun_lines = true;
        }
    }
    // No rerun-if line at all: Cargo re-runs the script when anything in the package changes.
    !rerun_lines && target.starts_with(resolve(crate_root, ""))
}

/// `path` relative to `root`, absolute and without `.`/`..` (through symbolic links when it
/// exists, else lexically).
fn resolve(root: &Path, path: &str) -> PathBuf {
    let joined = root.join(path);
    if let Ok(canonical) = joined.canonicalize() {
        return canonical;
    }
    let mut clean = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                clean.pop();
            }
            other => clean.push(other),
        }
    }
    clean
}

/// The warning, as an item that uses a deprecated constant (see the module's documentation).
pub(crate) fn warning(unwatched: &Unwatched, dir: &str, span: Span) -> TokenStream {
    let line = format!("migrate_runtime::build::rerun_if_migrations_change({dir:?});");
    let note = match unwatched {
        Unwatched::NoBuildScript => format!(
            "a migration file added to `{dir}` will not rebuild this crate, so the binary would silently keep the old set: create build.rs beside Cargo.toml with `fn main() {{ {line} }}`, and add migrate-runtime (default-features = false) to [build-dependencies]"
        ),
        Unwatched::NotWatched => format!(
            "a migration file added to `{dir}` will not rebuild this crate, so the binary would silently keep the old set: add `{line}` to `fn main` in this crate's build.rs"
        ),
    };
    quote::quote_spanned! {span=>
        #[deprecated(note = #note)]
        #[allow(non_upper_case_globals)]
        const new_migration_files_are_not_seen: () = ();
        #[allow(clippy::let_unit_value)]
        let _ = new_migration_files_are_not_seen;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_scripts_output_says_what_is_watched() {
        let root = Path::new("/nonexistent/app");
        let target = resolve(root, "migrations");
        let watched = |output: &str| watched_by_output(output, root, &target);
        assert!(watched("cargo::rerun-if-changed=migrations\n"));
        assert!(watched("cargo:rerun-if-changed=./migrations/\n"));
        assert!(watched("cargo::rerun-if-changed=.\n"));
        assert!(!watched("cargo::rerun-if-changed=build.rs\n"));
        assert!(!watched("cargo::rerun-if-changed=migrations_old\n"));
        assert!(!watched("cargo::rerun-if-env-changed=PROFILE\n"));
        // No rerun-if line: Cargo's default watches the whole package.
        assert!(watched("cargo::rustc-cfg=x\n"));
        assert!(!watched_by_output(
            "",
            root,
            &resolve(root, "../shared/migrations")
        ));
        assert!(watched_by_output(
            "cargo::rerun-if-changed=../shared\n",
            root,
            &resolve(root, "../shared/migrations")
        ));
    }
}
