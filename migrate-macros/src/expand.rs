//! Writing the embedded migrations as a static array of `::migrate_runtime::Migration`.

use migrate_runtime::source::Loaded;
use migrate_runtime::{Migration, Section};
use proc_macro2::TokenStream;
use quote::quote;

/// `warning`: statements that make rustc warn at the call (or nothing).
pub(crate) fn expand(loaded: &Loaded, warning: TokenStream) -> TokenStream {
    // `include_str!` makes the compiler track each file, so editing one rebuilds the crate.
    // The constant is never used, so the text is not stored twice.
    let tracked = loaded.files.iter().map(|file| {
        let file = file.to_string_lossy();
        quote!(::core::include_str!(#file))
    });
    let count = loaded.migrations.len();
    let migrations = loaded.migrations.iter().map(migration);
    quote! {{
        #warning
        const _: &[&str] = &[#(#tracked),*];
        static MIGRATIONS: [::migrate_runtime::Migration; #count] = [#(#migrations),*];
        &MIGRATIONS
    }}
}

/// Every problem as its own `compile_error!`, inside an expression of the right type so the
/// problems are all reported and nothing else cascades from them.
pub(crate) fn errors(problems: syn::Error) -> TokenStream {
    let errors = problems.into_compile_error();
    quote! {{
        #errors
        const NONE: &[::migrate_runtime::Migration] = &[];
        NONE
    }}
}

fn migration(migration: &Migration) -> TokenStream {
    let version = migration.version();
    let name = migration.name();
    let up = section(migration.up());
    let down = match migration.down() {
        Some(down) => {
            let down = section(down);
            quote!(::core::option::Option::Some(#down))
        }
        None => quote!(::core::option::Option::None),
    };
    let checksum = migration.checksum();
    let digest = checksum.as_bytes();
    let requires = migration.requires();
    let environments = migration.environments().collect::<Vec<_>>().join(",");
    let allowed_lints = migration.allowed_lints().collect::<Vec<_>>().join(",");
    let lock_timeout = match migration.lock_timeout() {
        None => quote!(::core::option::Option::None),
        Some(::migrate_runtime::LockTimeout::Off) => {
            quote!(::core::option::Option::Some(
                ::migrate_runtime::LockTimeout::Off
            ))
        }
        Some(::migrate_runtime::LockTimeout::After(limit)) => {
            let ms = limit.as_millis() as u64;
            quote!(::core::option::Option::Some(::migrate_runtime::LockTimeout::After(
                ::core::time::Duration::from_millis(#ms)
            )))
        }
    };
    let phase = match migration.phase() {
        ::migrate_runtime::Phase::PreDeploy => quote!(::migrate_runtime::Phase::PreDeploy),
        ::migrate_runtime::Phase::PostDeploy => quote!(::migrate_runtime::Phase::PostDeploy),
    };
    let out_of_order = migration.allows_out_of_order();
    let replaces = migration
        .replaces()
        .map(|(version, checksum)| format!("{version}={checksum}"))
        .collect::<Vec<_>>()
        .join(",");
    let requires_sets = migration
        .requires_sets()
        .map(|(set, version)| format!("{set}={version}"))
        .collect::<Vec<_>>()
        .join(",");
    quote! {
        ::migrate_runtime::Migration::__embedded(::migrate_runtime::EmbeddedMigration {
            version: #version,
            name: #name,
            up: #up,
            down: #down,
            checksum: ::migrate_runtime::Checksum::from_bytes([#(#digest),*]),
            requires: &[#(#requires),*],
            environments: #environments,
            allowed_lints: #allowed_lints,
            lock_timeout: #lock_timeout,
            phase: #phase,
            out_of_order: #out_of_order,
            replaces: #replaces,
            requires_sets: #requires_sets,
        })
    }
}

fn section(section: &Section) -> TokenStream {
    let path = section.path();
    let line = section.line();
    let transactional = section.is_transactional();
    let sql = section.sql();
    let inferred = match section.inferred_no_transaction() {
        Some(why) => quote!(::core::option::Option::Some(#why)),
        None => quote!(::core::option::Option::None),
    };
    quote! {
        ::migrate_runtime::EmbeddedSection {
            path: #path,
            line: #line,
            transactional: #transactional,
            sql: #sql,
            inferred: #inferred,
        }
    }
}
