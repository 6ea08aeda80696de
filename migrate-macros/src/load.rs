//! Reading and checking the directory with the runtime's own parser, and turning its
//! diagnostics into compile errors.

use std::path::PathBuf;

use migrate_runtime::source::{self, Loaded};

use crate::args::Args;

/// Harnesses that compile a crate away from its sources (trybuild builds UI tests in its own
/// directory under `target/`) set this to the real crate root. It applies only to the crates
/// Cargo was asked to build (`CARGO_PRIMARY_PACKAGE`), never to their dependencies: a library
/// that embeds its own migrations still finds them under its own root.
const MANIFEST_DIR_OVERRIDE: &str = "MIGRATE_MACROS_MANIFEST_DIR";

/// The directory the macro's path is relative to: the crate root, or the harness's override.
pub(crate) fn root(args: &Args) -> syn::Result<PathBuf> {
    std::env::var_os("CARGO_PRIMARY_PACKAGE")
        .and_then(|_| std::env::var_os(MANIFEST_DIR_OVERRIDE))
        .or_else(|| std::env::var_os("CARGO_MANIFEST_DIR"))
        .map(PathBuf::from)
        .ok_or_else(|| {
            syn::Error::new(
                args.span,
                "CARGO_MANIFEST_DIR is not set; `embed_migrations!` must be compiled by Cargo",
            )
        })
}

pub(crate) fn load(args: &Args) -> syn::Result<Loaded> {
    let root = root(args)?;
    source::read_dir(&root, &args.dir).map_err(|problems| {
        problems
            .0
            .iter()
            .map(|problem| syn::Error::new(args.span, problem))
            .reduce(|mut all, next| {
                all.combine(next);
                all
            })
            .expect("read_dir reports at least one problem")
    })
}
