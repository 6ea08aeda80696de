//! `Debug` of [`Error`]: the rendered text, so that `fn main() -> Result<(), Box<dyn Error>>`
//! (which prints `Error: {:?}`) and `unwrap()` show what happened, where, and what to do; the
//! alternate form (`{:#?}`) is the variant and its fields, as a derived `Debug` would show them.

use std::fmt;

use super::Error;

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            structure(self, f)
        } else {
            fmt::Display::fmt(&self.render(), f)
        }
    }
}

/// Every variant with every field (the patterns name each field, so a new one is a compile
/// error here until it is listed).
macro_rules! structure {
    ($error:expr, $f:expr;
     tuples: $($(#[$tuple_meta:meta])* $tuple:ident),*;
     structs: $($(#[$meta:meta])* $variant:ident { $($field:ident),* }),* $(,)?) => {
        match $error {
            $(
                $(#[$tuple_meta])*
                Error::$tuple(inner) => $f.debug_tuple(stringify!($tuple)).field(inner).finish(),
            )*
            $(
                $(#[$meta])*
                Error::$variant { $($field),* } => $f
                    .debug_struct(stringify!($variant))
                    $(.field(stringify!($field), $field))*
                    .finish(),
            )*
        }
    };
}

fn structure(error: &Error, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    structure!(error, f;
        tuples:
        MigrationFailed,
        MissingFromBinary,
        Unfinished,
        PartlySquashed,
        LockNotAvailable,
        Connect,
        PolicyViolation,
        #[cfg(feature = "testing")]
        Throwaway;
        structs:
        ChecksumMismatch { version, name, path, applied, embedded },
        VersionConflict { version, applied_name, name, path },
        TouchesHistoryTable { version, name, path, line, table },
        OutOfOrder { version, name, path, highest_applied },
        LockTimeout { table, waited, holder_pid, holder_application },
        BehindTransactionPooler {},
        TaskFailed { why },
        Irreversible { version, name, path },
        HistoryTableName { schema, table, problem },
        GroupedWithSafety {},
        GroupedNoTransaction { version, path },
        NotApplied { version },
        UnknownVersion { version },
        CannotSquash { version, reason },
        UnmetSetRequirement { set, version, path, requires_set, requires_version, known },
        HistoryNotEmpty { table, rows },
        NoOtherHistory { tool },
        UnreadableOtherHistory { tool, why },
        ForeignHistoryTable { schema, table, tool, columns },
        OtherHistoryDirty { version },
        ReasonRequired {},
        NothingToRepair { version, repair, status, in_binary },
        ConnectionLost { during, outside_transaction, source },
        Database { context, source },
    )
}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn debug_is_the_rendered_text_and_the_alternate_form_the_fields() {
        let error = Error::Irreversible {
            version: 3,
            name: "drop_a".to_owned(),
            path: "migrations/003_drop_a.sql".to_owned(),
        };
        assert_eq!(format!("{error:?}"), error.render().to_string());
        assert!(
            format!("{error:?}").starts_with("error: migration 3 (drop_a) cannot be reverted"),
            "{error:?}"
        );
        assert_eq!(
            format!("{error:#?}"),
            "Irreversible {\n    version: 3,\n    name: \"drop_a\",\n    path: \"migrations/003_drop_a.sql\",\n}"
        );
        assert_eq!(format!("{:#?}", Error::ReasonRequired), "ReasonRequired");
        let missing = Error::MissingFromBinary(vec![(7, "seven".to_owned())]);
        assert_eq!(
            format!("{missing:#?}"),
            "MissingFromBinary(\n    [\n        (\n            7,\n            \"seven\",\n        ),\n    ],\n)"
        );
    }
}
