//! Catalog queries some clients send on their own before any query of the user's, answered
//! from the gateway's type table so those clients work against any data source. Only exact
//! texts are recognised (whitespace aside); everything else goes to `onQuery`.

use bytes::{BufMut, BytesMut};

use crate::protocol::backend::{self, ColumnDescription};
use crate::protocol::types::{self, PgType, Value};

/// postgres.js's array-type lookup (`fetch_types`, on by default), run on every new connection.
const POSTGRES_JS_ARRAY_TYPES: &str =
    "select b.oid, b.typarray from pg_catalog.pg_type a left join pg_catalog.pg_type b \
     on b.oid = a.typelem where a.typcategory = 'A' group by b.oid, b.typarray order by b.oid";

/// A catalog query the session answers itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    PostgresJsArrayTypes,
}

impl Builtin {
    pub fn recognise(sql: &str) -> Option<Self> {
        // Cheap refusal first: almost no query mentions pg_type.
        if !sql.contains("pg_type") {
            return None;
        }
        let normalized = sql.split_whitespace().collect::<Vec<_>>().join(" ");
        (normalized.trim_end_matches(';').trim() == POSTGRES_JS_ARRAY_TYPES).then_some(Self::PostgresJsArrayTypes)
    }

    /// The result's columns, in `formats` (Bind's result format codes).
    pub fn columns(self, formats: &[i16]) -> Vec<ColumnDescription> {
        let oid = PgType::by_oid(26);
        ["oid", "typarray"]
            .iter()
            .enumerate()
            .map(|(i, name)| ColumnDescription {
                name: (*name).into(),
                type_oid: oid.oid,
                type_size: oid.size,
                format: match formats {
                    [] => 0,
                    [one] => *one,
                    many => many.get(i).copied().unwrap_or(0),
                },
            })
            .collect()
    }

    /// DataRows and CommandComplete.
    pub fn write_rows(self, out: &mut BytesMut, formats: &[i16]) {
        let columns = self.columns(formats);
        let oid = PgType::by_oid(26);
        let mut count = 0;
        for (element, array) in PgType::array_pairs() {
            let start = out.len();
            out.put_u8(b'D');
            out.put_i32(0);
            out.put_i16(2);
            for (value, column) in [element, array].iter().zip(&columns) {
                // Oids always fit their type: encoding cannot fail.
                let _ = types::encode(out, oid, column.format == 1, &Value::Number(*value as f64));
            }
            let len = (out.len() - start - 1) as i32;
            out[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
            count += 1;
        }
        backend::command_complete(out, &format!("SELECT {count}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_postgres_js_exactly() {
        let sql = "\n      select b.oid, b.typarray\n      from pg_catalog.pg_type a\n      left join pg_catalog.pg_type b on b.oid = a.typelem\n      where a.typcategory = 'A'\n      group by b.oid, b.typarray\n      order by b.oid\n    ";
        assert_eq!(Builtin::recognise(sql), Some(Builtin::PostgresJsArrayTypes));
        assert_eq!(Builtin::recognise("select * from pg_catalog.pg_type"), None);
        let mut out = BytesMut::new();
        Builtin::PostgresJsArrayTypes.write_rows(&mut out, &[]);
        assert!(out.ends_with(b"SELECT 21\0"), "{out:?}");
    }
}
