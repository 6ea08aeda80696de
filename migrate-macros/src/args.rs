//! The macro's input: nothing, or one string literal naming the migrations directory.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::LitStr;

/// The directory to embed and where it was named (for error spans).
pub(crate) struct Args {
    pub(crate) dir: String,
    pub(crate) span: Span,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.is_empty() {
            return Ok(Args {
                dir: "migrations".to_owned(),
                span: Span::call_site(),
            });
        }
        let lit: LitStr = input.parse().map_err(|error| {
            syn::Error::new(
                error.span(),
                "expected the migrations directory as a string literal, e.g. `embed_migrations!(\"migrations\")`",
            )
        })?;
        let _: Option<syn::Token![,]> = input.parse()?;
        if !input.is_empty() {
            return Err(input.error("`embed_migrations!` takes one argument: the directory"));
        }
        Ok(Args {
            dir: lit.value(),
            span: lit.span(),
        })
    }
}
