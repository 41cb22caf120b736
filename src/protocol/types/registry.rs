//! The PostgreSQL types `onQuery` results and parameters speak: names, OIDs, sizes, and the
//! JS-facing family each belongs to. One table, so names, OIDs and array OIDs cannot disagree.

/// How values of a type are encoded and decoded (each family has one text and one binary form).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Bool,
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    Numeric,
    /// text, varchar, bpchar, name, unknown: UTF-8 in both formats.
    Text,
    Json,
    Jsonb,
    Bytea,
    Uuid,
    Date,
    Time,
    Timestamp,
    Timestamptz,
    Interval,
    /// A type this table does not know (given by OID): text format only, the value as a string.
    Other,
}

/// A column or parameter type: a base type or a one-dimensional array of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PgType {
    /// The OID on the wire (the array's own OID for arrays).
    pub oid: u32,
    pub family: Family,
    /// For arrays: the element type's OID.
    pub element: Option<u32>,
    /// `typlen` for RowDescription: the fixed size, or -1 for variable-length types.
    pub size: i16,
}

/// (names, OID, array OID, family, typlen). The first name is PostgreSQL's own.
const TYPES: &[(&[&str], u32, u32, Family, i16)] = &[
    (&["bool", "boolean"], 16, 1000, Family::Bool, 1),
    (&["bytea"], 17, 1001, Family::Bytea, -1),
    (&["name"], 19, 1003, Family::Text, 64),
    (&["int8", "bigint"], 20, 1016, Family::Int8, 8),
    (&["int2", "smallint"], 21, 1005, Family::Int2, 2),
    (&["int4", "integer", "int"], 23, 1007, Family::Int4, 4),
    (&["text"], 25, 1009, Family::Text, -1),
    (&["oid"], 26, 1028, Family::Oid, 4),
    (&["json"], 114, 199, Family::Json, -1),
    (&["float4", "real"], 700, 1021, Family::Float4, 4),
    (&["float8", "double precision", "float"], 701, 1022, Family::Float8, 8),
    (&["unknown"], 705, 0, Family::Text, -2),
    (&["bpchar", "character", "char"], 1042, 1014, Family::Text, -1),
    (&["varchar", "character varying"], 1043, 1015, Family::Text, -1),
    (&["date"], 1082, 1182, Family::Date, 4),
    (&["time", "time without time zone"], 1083, 1183, Family::Time, 8),
    (&["timestamp", "timestamp without time zone"], 1114, 1115, Family::Timestamp, 8),
    (&["timestamptz", "timestamp with time zone"], 1184, 1185, Family::Timestamptz, 8),
    (&["interval"], 1186, 1187, Family::Interval, 16),
    (&["numeric", "decimal"], 1700, 1231, Family::Numeric, -1),
    (&["uuid"], 2950, 2951, Family::Uuid, 16),
    (&["jsonb"], 3802, 3807, Family::Jsonb, -1),
];

pub const TEXT: PgType = PgType { oid: 25, family: Family::Text, element: None, size: -1 };

impl PgType {
    /// A type by name (`'int4'`, `'integer'`, `'timestamptz'`, `'text[]'`, `'_int4'`), case
    /// and surrounding spaces ignored.
    pub fn by_name(name: &str) -> Option<Self> {
        let name = name.trim().to_ascii_lowercase();
        if let Some(element) = name.strip_suffix("[]").or_else(|| name.strip_prefix('_')) {
            let (_, oid, array, family, _) = TYPES.iter().find(|t| t.0.contains(&element.trim()))?;
            return (*array != 0).then_some(Self { oid: *array, family: *family, element: Some(*oid), size: -1 });
        }
        let (_, oid, _, family, size) = TYPES.iter().find(|t| t.0.contains(&name.as_str()))?;
        Some(Self { oid: *oid, family: *family, element: None, size: *size })
    }

    /// A type by OID; OIDs this table does not know are served as text of that OID.
    pub fn by_oid(oid: u32) -> Self {
        for (_, base, array, family, size) in TYPES {
            if *base == oid {
                return Self { oid, family: *family, element: None, size: *size };
            }
            if *array == oid && oid != 0 {
                return Self { oid, family: *family, element: Some(*base), size: -1 };
            }
        }
        Self { oid, family: Family::Other, element: None, size: -1 }
    }

    pub fn is_array(self) -> bool {
        self.element.is_some()
    }

    /// The element type of an array (itself for a base type).
    pub fn element_type(self) -> Self {
        match self.element {
            Some(oid) => Self::by_oid(oid),
            None => self,
        }
    }

    /// PostgreSQL's name for the type, as error messages print it.
    pub fn name(self) -> String {
        let base = self.element.unwrap_or(self.oid);
        let name = TYPES.iter().find(|t| t.1 == base).map(|t| t.0[0]);
        match (name, self.is_array()) {
            (Some(name), false) => name.to_string(),
            (Some(name), true) => format!("{name}[]"),
            (None, _) => format!("oid {}", self.oid),
        }
    }

    /// (element OID, array OID) of every base type that has an array type.
    pub fn array_pairs() -> impl Iterator<Item = (u32, u32)> {
        TYPES.iter().filter(|t| t.2 != 0).map(|t| (t.1, t.2))
    }

    /// Whether values can go out in binary (a type we do not know has no binary form here).
    pub fn has_binary(self) -> bool {
        self.family != Family::Other
    }

    /// Whether a JS string is this type's natural value (texts, and JSON given as its text).
    pub fn is_textual(self) -> bool {
        matches!(self.family, Family::Text | Family::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_oids_agree() {
        assert_eq!(PgType::by_name("int4").map(|t| t.oid), Some(23));
        assert_eq!(PgType::by_name(" Integer ").map(|t| t.oid), Some(23));
        assert_eq!(PgType::by_name("timestamptz").map(|t| t.size), Some(8));
        assert_eq!(PgType::by_name("text[]").map(|t| (t.oid, t.element)), Some((1009, Some(25))));
        assert_eq!(PgType::by_name("_int8").map(|t| t.oid), Some(1016));
        assert_eq!(PgType::by_name("unknown[]"), None);
        assert_eq!(PgType::by_name("nope"), None);
        assert_eq!(PgType::by_oid(1185).family, Family::Timestamptz);
        assert!(PgType::by_oid(1185).is_array());
        assert_eq!(PgType::by_oid(99999).family, Family::Other);
        assert_eq!(PgType::by_oid(0), PgType { oid: 0, family: Family::Other, element: None, size: -1 });
        assert_eq!(PgType::by_oid(1015).name(), "varchar[]");
    }
}
