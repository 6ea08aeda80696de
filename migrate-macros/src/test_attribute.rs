//! `#[migrate_macros::test]`: a test function taking a migrated database, rewritten into a
//! test that asks `migrate_runtime::testing` for one and passes it in.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, LitStr, ReturnType, Type};

const ARGUMENTS: &str = "`&mut postgres::Client`, `postgres::Client`, `migrate_runtime::testing::TestDatabase` or `String` (its URL)";

/// Where the test's migrations come from.
enum Migrations {
    /// A directory embedded for this test (`migrations = "dir"`, default `"migrations"`).
    Directory(LitStr),
    /// A `&'static [Migration]` the crate already embeds (`migrations = crate::MIGRATIONS`).
    Static(syn::Path),
}

/// The attribute's input: nothing, or `migrations = "dir"` / `migrations = path::TO_STATIC`.
pub(crate) struct Args {
    migrations: Migrations,
}

const USAGE: &str = "expected `migrations = \"dir\"` (a directory to embed) or `migrations = path::TO_MIGRATIONS` (a `&'static [migrate_runtime::Migration]`), e.g. `#[migrate_macros::test(migrations = crate::MIGRATIONS)]`";

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.is_empty() {
            return Ok(Args {
                migrations: Migrations::Directory(LitStr::new("migrations", Span::call_site())),
            });
        }
        let name: syn::Ident = input
            .parse()
            .map_err(|error| syn::Error::new(error.span(), USAGE))?;
        if name != "migrations" {
            return Err(syn::Error::new(name.span(), USAGE));
        }
        let _: syn::Token![=] = input
            .parse()
            .map_err(|error| syn::Error::new(error.span(), USAGE))?;
        let migrations = if input.peek(LitStr) {
            Migrations::Directory(input.parse()?)
        } else {
            Migrations::Static(
                input
                    .parse()
                    .map_err(|error| syn::Error::new(error.span(), USAGE))?,
            )
        };
        let _: Option<syn::Token![,]> = input.parse()?;
        if !input.is_empty() {
            return Err(input.error(USAGE));
        }
        Ok(Args { migrations })
    }
}

/// The rewritten test, or the compile errors saying what is wrong with its use.
pub(crate) fn expand(args: Args, function: ItemFn) -> syn::Result<TokenStream> {
    let signature = &function.sig;
    if !signature.generics.params.is_empty() {
        return Err(syn::Error::new(
            signature.generics.span(),
            "`#[migrate_macros::test]` functions cannot be generic",
        ));
    }
    let argument = match (signature.inputs.len(), signature.inputs.first()) {
        (1, Some(FnArg::Typed(argument))) => argument,
        (1, Some(FnArg::Receiver(receiver))) => {
            return Err(syn::Error::new(
                receiver.span(),
                format!("a `#[migrate_macros::test]` function takes its database as {ARGUMENTS}, not `self`"),
            ))
        }
        (count, _) => {
            let span = if count == 0 {
                signature.ident.span()
            } else {
                signature.inputs.span()
            };
            return Err(syn::Error::new(
                span,
                format!("a `#[migrate_macros::test]` function takes exactly one argument, its database: {ARGUMENTS} (this one takes {count})"),
            ));
        }
    };
    let is_async = signature.asyncness.is_some();
    let (by_reference, owned) = match &*argument.ty {
        Type::Reference(reference) => (Some(reference.mutability), &*reference.elem),
        other => (None, other),
    };
    if !["Client", "TestDatabase", "String"]
        .iter()
        .any(|name| last_segment_is(owned, name))
    {
        let ty = &argument.ty;
        let written = quote!(#ty).to_string();
        return Err(syn::Error::new(
            argument.ty.span(),
            format!("`#[migrate_macros::test]` cannot give a test a `{written}`: the argument may be {ARGUMENTS}"),
        ));
    }
    if is_async && last_segment_is(owned, "Client") {
        return Err(syn::Error::new(
            argument.ty.span(),
            "a blocking `postgres::Client` cannot be used inside an async test (its runtime would run inside the test's)\n  help: take the database's URL as `String` (connect with tokio-postgres, sqlx, ...) or `migrate_runtime::testing::TestDatabase`",
        ));
    }
    let test_attribute = function.attrs.iter().any(|attribute| {
        attribute
            .path()
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "test")
    });
    if is_async && !test_attribute {
        return Err(syn::Error::new(
            signature.fn_token.span(),
            "an async `#[migrate_macros::test]` needs the runtime's test attribute below it\n  help: add `#[tokio::test]` on the line after `#[migrate_macros::test]`",
        ));
    }
    let (migrations, set) = match &args.migrations {
        Migrations::Directory(dir) => (
            quote_spanned! {dir.span()=>
                ::migrate_macros::embed_migrations!(#dir)
            },
            dir.value(),
        ),
        Migrations::Static(path) => (quote!(#path), quote!(#path).to_string().replace(' ', "")),
    };
    let set = format!(":{set}");
    let inner = {
        let mut inner = function.clone();
        // The test attributes (`#[ignore]`, `#[tokio::test]`, docs, ...) stay on the outer
        // function; lint levels apply to the body too.
        inner.attrs.retain(|attribute| {
            ["allow", "warn", "deny", "expect"]
                .iter()
                .any(|lint| attribute.path().is_ident(lint))
        });
        inner.vis = syn::Visibility::Inherited;
        if let Some(FnArg::Typed(argument)) = inner.sig.inputs.first_mut() {
            let ty = match &mut *argument.ty {
                Type::Reference(reference) => &mut *reference.elem,
                ty => ty,
            };
            give_database_its_lifetime(ty);
        }
        inner
    };
    let outer_attrs = &function.attrs;
    let add_test = (!test_attribute).then(|| quote!(#[::core::prelude::v1::test]));
    let vis = &function.vis;
    let asyncness = &signature.asyncness;
    let name = &signature.ident;
    let output = match &signature.output {
        ReturnType::Default => quote!(),
        ReturnType::Type(arrow, ty) => quote!(#arrow #ty),
    };
    let pass = match by_reference {
        Some(Some(_)) => quote!(&mut __migrate_value),
        Some(None) => quote!(&__migrate_value),
        None => quote!(__migrate_value),
    };
    let call = if is_async {
        quote!(#name(#pass).await)
    } else {
        quote!(#name(#pass))
    };
    let owned_type = quote_spanned! {argument.ty.span()=> #owned};
    Ok(quote! {
        #(#outer_attrs)*
        #add_test
        #vis #asyncness fn #name() #output {
            #inner
            let __migrate_parts = ::migrate_runtime::testing::__private::prepare::<#owned_type>(
                ::core::concat!(::core::env!("CARGO_PKG_NAME"), #set),
                #migrations,
            );
            let __migrate_failure = __migrate_parts.failure;
            let __migrate_database = __migrate_parts.database;
            #[allow(unused_mut)]
            let mut __migrate_value = __migrate_parts.value;
            let __migrate_result = #call;
            __migrate_failure.record(&__migrate_result);
            // Dropped in reverse order: the argument (a connection) before its database.
            __migrate_result
        }
    })
}

/// Whether `ty` is spelled `name` or `some::path::name` (with or without generic arguments).
fn last_segment_is(ty: &Type, name: &str) -> bool {
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == name),
        _ => false,
    }
}

/// `TestDatabase` written without its lifetime gets `'static` (what the attribute hands out):
/// an `async fn` may not leave a path's lifetime out.
fn give_database_its_lifetime(ty: &mut Type) {
    if let Type::Path(path) = ty {
        if let Some(segment) = path.path.segments.last_mut() {
            if segment.ident == "TestDatabase" && segment.arguments.is_none() {
                segment.arguments =
                    syn::PathArguments::AngleBracketed(syn::parse_quote!(<'static>));
            }
        }
    }
}
