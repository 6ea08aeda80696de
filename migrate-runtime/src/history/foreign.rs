//! Another tool's history table under this runtime's name. dbmate, Rails and golang-migrate
//! all keep their history in `schema_migrations`, this runtime's default: reading it as ours
//! would fail with `column "name" does not exist`, and its action log would simply be
//! missing. When a read fails that way (or the action log is missing), the table's columns
//! are looked up in the catalog and the error says which tool it looks like and how to go on
//! ([`Error::ForeignHistoryTable`]). Nothing is looked up on the common path.

use postgres::error::SqlState;
use postgres::{Client, SimpleQueryMessage};

use super::{literal, HistoryTables};
use crate::terms::OtherTool;
use crate::Error;

/// A table's columns (`name`, `type` as `format_type` writes it), in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) columns: Vec<(String, String)>,
    /// Rails' `ar_internal_metadata` is in the same schema.
    pub(crate) rails_metadata: bool,
}

/// What a table with our history table's name turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recognised {
    /// It has this runtime's columns.
    Ours,
    /// Another tool's, by its shape.
    Tool(OtherTool),
    /// Not ours, and not a shape we know.
    Unknown,
}

/// Columns this runtime's history table has (and reads).
const OURS: [&str; 8] = [
    "version",
    "name",
    "checksum",
    "status",
    "applied_at",
    "execution_time_ms",
    "applied_by",
    "error_message",
];

impl Shape {
    /// The columns of `table` (a name as SQL writes it, quoted or not, qualified or not), or
    /// `None` when there is no such table. One round trip.
    pub(crate) fn of(
        client: &mut Client,
        table: &str,
        schema: Option<&str>,
    ) -> Result<Option<Shape>, postgres::Error> {
        let metadata = match schema {
            Some(schema) => format!("{schema}.ar_internal_metadata"),
            None => "ar_internal_metadata".to_owned(),
        };
        let sql = format!(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), \
             to_regclass({metadata}) IS NOT NULL \
             FROM pg_attribute a WHERE a.attrelid = to_regclass({table}) \
             AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            metadata = literal(&metadata),
            table = literal(table),
        );
        let mut shape = Shape {
            columns: Vec::new(),
            rails_metadata: false,
        };
        for message in client.simple_query(&sql)? {
            if let SimpleQueryMessage::Row(row) = message {
                let text = |i: usize| row.get(i).unwrap_or_default().to_owned();
                shape.columns.push((text(0), text(1)));
                shape.rails_metadata = row.get(2) == Some("t");
            }
        }
        Ok((!shape.columns.is_empty()).then_some(shape))
    }

    /// The shape of this runtime's history table, as `tables` names it.
    fn of_history(client: &mut Client, tables: &HistoryTables) -> Option<Shape> {
        let (schema, _) = tables.names();
        let schema = postgres_protocol::escape::escape_identifier(schema);
        Shape::of(client, &tables.migrations(), Some(&schema))
            .ok()
            .flatten()
    }

    pub(crate) fn recognise(&self) -> Recognised {
        let has = |name: &str| self.columns.iter().any(|(column, _)| column == name);
        if OURS.iter().all(|name| has(name)) {
            return Recognised::Ours;
        }
        let types: Vec<(&str, &str)> = self
            .columns
            .iter()
            .map(|(name, kind)| (name.as_str(), kind.as_str()))
            .collect();
        let text = |kind: &str| kind.starts_with("character varying") || kind == "text";
        match types.as_slice() {
            [("version", kind)] if text(kind) => Recognised::Tool(if self.rails_metadata {
                OtherTool::Rails
            } else {
                OtherTool::Dbmate
            }),
            [("version", "bigint"), ("dirty", "boolean")] => {
                Recognised::Tool(OtherTool::GolangMigrate)
            }
            _ => Recognised::Unknown,
        }
    }

    /// `version character varying(128), dirty boolean`
    pub(crate) fn describe(&self) -> Vec<String> {
        self.columns
            .iter()
            .map(|(name, kind)| format!("{name} {kind}"))
            .collect()
    }
}

/// The error for a failed read of the history table: [`Error::ForeignHistoryTable`] when the
/// table is another tool's, else the database error with `context`.
pub(crate) fn read_failed(
    client: &mut Client,
    tables: &HistoryTables,
    context: &str,
    error: postgres::Error,
) -> Error {
    if error.code() == Some(&SqlState::UNDEFINED_COLUMN) {
        if let Some(foreign) = foreign(client, tables) {
            return foreign;
        }
    }
    Error::database(context)(error)
}

/// [`Error::ForeignHistoryTable`] when the table named as this runtime's history is another
/// tool's; `None` when it is ours or missing (or cannot be looked at).
pub(crate) fn foreign(client: &mut Client, tables: &HistoryTables) -> Option<Error> {
    let shape = Shape::of_history(client, tables)?;
    let tool = match shape.recognise() {
        Recognised::Ours => return None,
        Recognised::Tool(tool) => Some(tool),
        Recognised::Unknown => None,
    };
    Some(Error::ForeignHistoryTable {
        schema: tables.names().0.to_owned(),
        table: tables.names().1.to_owned(),
        tool,
        columns: shape.describe(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(columns: &[(&str, &str)], rails_metadata: bool) -> Shape {
        Shape {
            columns: columns
                .iter()
                .map(|(name, kind)| ((*name).to_owned(), (*kind).to_owned()))
                .collect(),
            rails_metadata,
        }
    }

    #[test]
    fn the_tools_that_use_schema_migrations_are_recognised_by_their_columns() {
        let dbmate = shape(&[("version", "character varying(128)")], false);
        assert_eq!(dbmate.recognise(), Recognised::Tool(OtherTool::Dbmate));
        let rails = shape(&[("version", "character varying")], true);
        assert_eq!(rails.recognise(), Recognised::Tool(OtherTool::Rails));
        let golang = shape(&[("version", "bigint"), ("dirty", "boolean")], false);
        assert_eq!(
            golang.recognise(),
            Recognised::Tool(OtherTool::GolangMigrate)
        );
        assert_eq!(golang.describe(), ["version bigint", "dirty boolean"]);

        let ecto = shape(
            &[
                ("version", "bigint"),
                ("inserted_at", "timestamp(0) without time zone"),
            ],
            false,
        );
        assert_eq!(ecto.recognise(), Recognised::Unknown);
        let mut ours: Vec<(&str, &str)> = OURS.iter().map(|name| (*name, "text")).collect();
        ours.push(("added_later", "integer"));
        assert_eq!(shape(&ours, true).recognise(), Recognised::Ours);
    }
}
