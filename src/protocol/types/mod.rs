//! PostgreSQL data types for the query API: the type table, and values in text and binary.

pub mod datetime;
pub mod interval;
pub mod numeric;
pub mod registry;
pub mod value;

pub use interval::Interval;
pub use registry::{Family, PgType};
pub use value::{decode, encode, encode_cell, no_binary, Cell, Value};
