//! Checks on the loaded migrations that the application opts into: lint findings as errors.

use migrate_runtime::source::{lint, Loaded};

use crate::args::Args;

/// With `lint`, every finding a migration does not allow becomes an error at the macro's
/// directory argument; all of them are reported together.
pub(crate) fn validate(args: &Args, loaded: Loaded) -> syn::Result<Loaded> {
    if !args.lint {
        return Ok(loaded);
    }
    let errors = loaded
        .migrations
        .iter()
        .flat_map(lint::lint)
        .filter(|finding| !finding.allowed)
        .map(|finding| syn::Error::new(args.span, finding))
        .reduce(|mut all, next| {
            all.combine(next);
            all
        });
    match errors {
        Some(errors) => Err(errors),
        None => Ok(loaded),
    }
}
