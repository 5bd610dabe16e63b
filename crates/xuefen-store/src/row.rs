//! One row type for every backend: a driver's row read by column name
//! through four typed readers, so that each record is decoded once, here,
//! and a value the service could not have written is reported the same way
//! on every backend ([`StoreError::Corrupt`], naming the table and the
//! column).
//!
//! A backend implements [`ReadRow`] for its driver's row; the decoders
//! (`EntryRecord::read`, `Site::read` and the like) take any [`ReadRow`].
//! Hot paths that bypass rows (PostgreSQL's binary `COPY`) keep their own
//! readers.

use crate::{Result, StoreError};

/// What a driver's row gives: the value of a named column, `None` for SQL
/// `NULL`, or the driver's reason it cannot be read as that type.
pub trait ReadRow {
    fn text(&self, column: &str) -> std::result::Result<Option<String>, String>;
    /// Any integer column, widened.
    fn int(&self, column: &str) -> std::result::Result<Option<i64>, String>;
    fn bytes(&self, column: &str) -> std::result::Result<Option<Vec<u8>>, String>;
    fn flag(&self, column: &str) -> std::result::Result<Option<bool>, String>;
}

/// A type a column is read as: `T` refuses `NULL`, `Option<T>` takes it.
pub trait FromColumn: Sized {
    fn from_column<R: ReadRow + ?Sized>(row: &R, column: &str) -> std::result::Result<Self, String>;
}

macro_rules! from_column {
    ($($t:ty => $read:ident),* $(,)?) => {$(
        impl FromColumn for Option<$t> {
            fn from_column<R: ReadRow + ?Sized>(row: &R, column: &str) -> std::result::Result<Self, String> {
                row.$read(column)
            }
        }

        impl FromColumn for $t {
            fn from_column<R: ReadRow + ?Sized>(row: &R, column: &str) -> std::result::Result<Self, String> {
                row.$read(column)?.ok_or_else(|| "null where a value is required".to_owned())
            }
        }
    )*};
}

from_column!(String => text, i64 => int, Vec<u8> => bytes, bool => flag);

/// A row of `table`, read column by column.
pub struct Columns<'r, R: ?Sized> {
    row: &'r R,
    table: &'static str,
}

impl<'r, R: ReadRow + ?Sized> Columns<'r, R> {
    pub fn of(table: &'static str, row: &'r R) -> Self {
        Self { row, table }
    }

    /// The value of `column`; a value that cannot be a `T` is corrupt data.
    pub fn get<T: FromColumn>(&self, column: &str) -> Result<T> {
        T::from_column(self.row, column).map_err(|detail| StoreError::Corrupt {
            at: self.table.to_owned(),
            detail: format!("column {column}: {detail}"),
        })
    }
}

/// The drivers' rows (feature `sqlx`).
#[cfg(feature = "sqlx")]
mod drivers {
    use sqlx::postgres::PgRow;
    use sqlx::sqlite::SqliteRow;
    use sqlx::{Row, TypeInfo, ValueRef};

    use super::ReadRow;

    /// Integers are read at the width the column has (`smallint`, `integer`,
    /// `bigint`) and widened.
    impl ReadRow for PgRow {
        fn text(&self, column: &str) -> std::result::Result<Option<String>, String> {
            self.try_get(column).map_err(|e| e.to_string())
        }

        fn int(&self, column: &str) -> std::result::Result<Option<i64>, String> {
            let raw = self.try_get_raw(column).map_err(|e| e.to_string())?;
            if raw.is_null() {
                return Ok(None);
            }
            let width = raw.type_info().name().to_owned();
            match width.as_str() {
                "INT2" => self.try_get::<i16, _>(column).map(i64::from),
                "INT4" => self.try_get::<i32, _>(column).map(i64::from),
                _ => self.try_get::<i64, _>(column),
            }
            .map(Some)
            .map_err(|e| e.to_string())
        }

        fn bytes(&self, column: &str) -> std::result::Result<Option<Vec<u8>>, String> {
            self.try_get(column).map_err(|e| e.to_string())
        }

        fn flag(&self, column: &str) -> std::result::Result<Option<bool>, String> {
            self.try_get(column).map_err(|e| e.to_string())
        }
    }

    impl ReadRow for SqliteRow {
        fn text(&self, column: &str) -> std::result::Result<Option<String>, String> {
            self.try_get(column).map_err(|e| e.to_string())
        }

        fn int(&self, column: &str) -> std::result::Result<Option<i64>, String> {
            self.try_get(column).map_err(|e| e.to_string())
        }

        fn bytes(&self, column: &str) -> std::result::Result<Option<Vec<u8>>, String> {
            self.try_get(column).map_err(|e| e.to_string())
        }

        fn flag(&self, column: &str) -> std::result::Result<Option<bool>, String> {
            self.try_get(column).map_err(|e| e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A row of named integers, some `NULL`.
    struct Ints(HashMap<&'static str, Option<i64>>);

    impl ReadRow for Ints {
        fn text(&self, _: &str) -> std::result::Result<Option<String>, String> {
            Err("not text".into())
        }
        fn int(&self, column: &str) -> std::result::Result<Option<i64>, String> {
            self.0.get(column).copied().ok_or_else(|| format!("no column {column}"))
        }
        fn bytes(&self, _: &str) -> std::result::Result<Option<Vec<u8>>, String> {
            Err("not bytes".into())
        }
        fn flag(&self, _: &str) -> std::result::Result<Option<bool>, String> {
            Err("not a flag".into())
        }
    }

    #[test]
    fn null_is_refused_where_a_value_is_required_and_names_table_and_column() {
        let row = Ints(HashMap::from([("seq", Some(7)), ("refers_seq", None)]));
        let cols = Columns::of("ledger_entries", &row);
        assert_eq!(cols.get::<i64>("seq").ok(), Some(7));
        assert_eq!(cols.get::<Option<i64>>("refers_seq").ok(), Some(None));
        match cols.get::<i64>("refers_seq") {
            Err(StoreError::Corrupt { at, detail }) => {
                assert_eq!(at, "ledger_entries");
                assert!(detail.starts_with("column refers_seq: null"), "{detail}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert!(matches!(cols.get::<String>("seq"), Err(StoreError::Corrupt { .. })));
        assert!(matches!(cols.get::<i64>("absent"), Err(StoreError::Corrupt { .. })));
    }
}
