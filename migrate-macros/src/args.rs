//! The macro's input: nothing, or a string literal naming the migrations directory,
//! optionally followed by `, lint` (risky DDL becomes a compile error).

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::LitStr;

/// The directory to embed and where it was named (for error spans).
pub(crate) struct Args {
    pub(crate) dir: String,
    pub(crate) span: Span,
    /// `lint` was given: every lint finding a migration does not allow is an error.
    pub(crate) lint: bool,
}

const USAGE: &str = "`embed_migrations!` takes the directory and, optionally, `lint`: e.g. `embed_migrations!(\"migrations\", lint)`";

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.is_empty() {
            return Ok(Args {
                dir: "migrations".to_owned(),
                span: Span::call_site(),
                lint: false,
            });
        }
        let lit: LitStr = input.parse().map_err(|error| {
            syn::Error::new(
                error.span(),
                "expected the migrations directory as a string literal, e.g. `embed_migrations!(\"migrations\")`",
            )
        })?;
        let _: Option<syn::Token![,]> = input.parse()?;
        let mut lint = false;
        if !input.is_empty() {
            let option: syn::Ident = input
                .parse()
                .map_err(|error| syn::Error::new(error.span(), USAGE))?;
            if option != "lint" {
                return Err(syn::Error::new(option.span(), USAGE));
            }
            lint = true;
            let _: Option<syn::Token![,]> = input.parse()?;
        }
        if !input.is_empty() {
            return Err(input.error(USAGE));
        }
        Ok(Args {
            dir: lit.value(),
            span: lit.span(),
            lint,
        })
    }
}
