//! Writing the embedded migrations as a static array of `::migrate_runtime::Migration`.

use std::path::PathBuf;

use migrate_runtime::source::Loaded;
use migrate_runtime::{Migration, Section};
use proc_macro2::TokenStream;
use quote::quote;

/// `warning`: statements that make rustc warn at the call (or nothing).
pub(crate) fn expand(loaded: &Loaded, warning: TokenStream) -> TokenStream {
    let files = Files::read(&loaded.files);
    // `include_str!` makes the compiler track each file, so editing one rebuilds the crate.
    // A constant that nothing uses is not stored in the binary.
    let file_constants = files.entries.iter().map(|file| {
        let (ident, path) = (&file.ident, file.path.to_string_lossy());
        quote!(const #ident: &str = ::core::include_str!(#path);)
    });
    let tracked = files.entries.iter().map(|file| &file.ident);
    let count = loaded.migrations.len();
    let migrations = loaded
        .migrations
        .iter()
        .map(|migration| self::migration(migration, &files));
    quote! {{
        #warning
        #(#file_constants)*
        const _: &[&str] = &[#(#tracked),*];
        static MIGRATIONS: [::migrate_runtime::Migration; #count] = [#(#migrations),*];
        &MIGRATIONS
    }}
}

/// A section at least this long is embedded as a slice of its file's `include_str!` rather
/// than as a string literal of its own: the compiler reads the file itself, and a large data
/// migration never passes through the token stream (where each byte costs memory several
/// times over).
const SLICE_FROM_FILE: usize = 64 * 1024;

/// The files the migrations were read from, each named by a constant in the expansion.
struct Files {
    entries: Vec<File>,
}

struct File {
    path: PathBuf,
    ident: syn::Ident,
    /// The text, for the files that hold a section embedded as a slice.
    text: Option<String>,
}

impl Files {
    fn read(paths: &[PathBuf]) -> Files {
        let entries = paths
            .iter()
            .enumerate()
            .map(|(index, path)| File {
                path: path.clone(),
                ident: quote::format_ident!("__MIGRATE_FILE_{}", index),
                text: std::fs::metadata(path)
                    .is_ok_and(|meta| meta.len() >= SLICE_FROM_FILE as u64)
                    .then(|| std::fs::read_to_string(path).ok())
                    .flatten(),
            })
            .collect();
        Files { entries }
    }

    /// `FILE.split_at(start).1.split_at(len).0` when `sql` is large and appears verbatim in
    /// the file it came from (`path`, relative to the crate root); otherwise the literal.
    fn sql(&self, path: &str, sql: &str) -> TokenStream {
        if sql.len() >= SLICE_FROM_FILE {
            let found = self
                .entries
                .iter()
                .filter(|file| file.path.ends_with(path))
                .find_map(|file| Some((file, offset_of(file.text.as_deref()?, sql)?)));
            if let Some((file, start)) = found {
                let (ident, len) = (&file.ident, sql.len());
                return quote!(#ident.split_at(#start).1.split_at(#len).0);
            }
        }
        quote!(#sql)
    }
}

/// Where `sql` starts in `text`: a short prefix is searched for, and each place it occurs is
/// compared whole (a byte comparison, fast even in an unoptimised build).
fn offset_of(text: &str, sql: &str) -> Option<usize> {
    let mut prefix_len = sql.len().min(256);
    while !sql.is_char_boundary(prefix_len) {
        prefix_len -= 1;
    }
    let prefix = &sql[..prefix_len];
    let mut from = 0;
    while let Some(found) = text[from..].find(prefix) {
        let start = from + found;
        if text.as_bytes()[start..].starts_with(sql.as_bytes()) {
            return Some(start);
        }
        from = start + 1;
        while !text.is_char_boundary(from) {
            from += 1;
        }
    }
    None
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

fn migration(migration: &Migration, files: &Files) -> TokenStream {
    let version = migration.version();
    let name = migration.name();
    let up = section(migration.up(), files);
    let down = match migration.down() {
        Some(down) => {
            let down = section(down, files);
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

fn section(section: &Section, files: &Files) -> TokenStream {
    let path = section.path();
    let line = section.line();
    let transactional = section.is_transactional();
    let sql = files.sql(path, section.sql());
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
