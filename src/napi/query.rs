//! The query API's binding: row plans and the row encoder JS calls while `onQuery` streams a
//! result (one call per batch of rows, never one per value), and the conversions of query
//! events and replies.

use std::ffi::CString;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use napi::bindgen_prelude::*;
use napi::{sys, JsValue};
use napi_derive::napi;

use super::js::{Js, Raw};
use crate::protocol::backend::{self, ColumnDescription};
use crate::protocol::types::{self, Family, PgType, Value};
use crate::protocol::{PgError, SqlState};
use crate::session::query::Description;

/// A result field as `onQuery` / `onDescribe` give it: a name and a type (a PostgreSQL type
/// name or an OID).
#[napi(object)]
pub struct FieldInput {
    pub name: String,
    #[napi(js_name = "type", ts_type = "string | number")]
    pub type_: Either<String, f64>,
}

/// What the encoders answer instead of bytes when a value does not fit.
#[napi(object)]
pub struct EncodeFailure {
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
}

impl From<PgError> for EncodeFailure {
    fn from(err: PgError) -> Self {
        let detail = err.fields.iter().find(|(f, _)| *f == b'D').map(|(_, d)| d.clone());
        Self { code: err.code.to_string(), message: err.message, detail }
    }
}

fn resolve(field: &FieldInput) -> std::result::Result<PgType, PgError> {
    match &field.type_ {
        Either::A(name) => PgType::by_name(name).ok_or_else(|| {
            PgError::error(SqlState::UNDEFINED_OBJECT, format!("type \"{name}\" does not exist"))
                .with_detail(format!("in the type of field \"{}\"", field.name))
        }),
        Either::B(oid) if oid.fract() == 0.0 && *oid > 0.0 && *oid <= u32::MAX as f64 => {
            Ok(PgType::by_oid(*oid as u32))
        }
        Either::B(oid) => {
            Err(PgError::error(SqlState::UNDEFINED_OBJECT, format!("type with OID {oid} does not exist")))
        }
    }
}

/// RowDescription columns for fields (text format), or why a type is unknown.
pub fn describe_fields(fields: &[FieldInput]) -> std::result::Result<Vec<ColumnDescription>, PgError> {
    fields
        .iter()
        .map(|f| {
            let ty = resolve(f)?;
            Ok(ColumnDescription { name: f.name.clone(), type_oid: ty.oid, type_size: ty.size, format: 0 })
        })
        .collect()
}

/// `onDescribe`'s answer, in the session's terms.
pub fn description(
    param_types: Option<Vec<u32>>,
    fields: Option<Vec<FieldInput>>,
) -> std::result::Result<Description, PgError> {
    Ok(Description {
        param_types: param_types.unwrap_or_default(),
        columns: describe_fields(&fields.unwrap_or_default())?,
    })
}

struct PlanColumn {
    ty: PgType,
    binary: bool,
    key: CString,
    name: String,
}

/// How one result's rows are encoded: each field's type and format, and its RowDescription.
pub struct RowPlan {
    columns: Vec<PlanColumn>,
    row_description: Vec<u8>,
}

impl RowPlan {
    pub fn columns_len(&self) -> usize {
        self.columns.len()
    }

    /// The plan's RowDescription message.
    pub fn row_description(&self) -> &[u8] {
        &self.row_description
    }
}

impl Drop for RowPlan {
    fn drop(&mut self) {
        super::raw::forget(self);
    }
}

/// A plan for `fields` with Bind's result format codes (none: all text; one: for all; else
/// one per field).
#[napi(catch_unwind)]
pub fn query_plan(fields: Vec<FieldInput>, formats: Option<Vec<i32>>) -> Either<External<RowPlan>, EncodeFailure> {
    match plan(fields, formats.unwrap_or_default()) {
        Ok(plan) => Either::A(External::new(plan)),
        Err(err) => Either::B(err.into()),
    }
}

fn plan(fields: Vec<FieldInput>, formats: Vec<i32>) -> std::result::Result<RowPlan, PgError> {
    if formats.len() > 1 && formats.len() != fields.len() {
        return Err(PgError::error(
            SqlState::PROTOCOL_VIOLATION,
            format!("bind message has {} result formats but query has {} columns", formats.len(), fields.len()),
        ));
    }
    if fields.len() > 1664 {
        return Err(PgError::error(SqlState::PROGRAM_LIMIT_EXCEEDED, "target lists can have at most 1664 entries"));
    }
    let mut columns = Vec::with_capacity(fields.len());
    let mut descriptions = Vec::with_capacity(fields.len());
    for (i, field) in fields.iter().enumerate() {
        let ty = resolve(field)?;
        let binary = match formats.as_slice() {
            [] => false,
            [one] => *one == 1,
            many => many[i] == 1,
        };
        if binary && !ty.has_binary() {
            return Err(types::no_binary(ty));
        }
        let key = CString::new(field.name.replace('\0', "")).unwrap_or_default();
        columns.push(PlanColumn { ty, binary, key, name: field.name.clone() });
        descriptions.push(ColumnDescription {
            name: field.name.clone(),
            type_oid: ty.oid,
            type_size: ty.size,
            format: i16::from(binary),
        });
    }
    let mut out = BytesMut::new();
    backend::row_description(&mut out, &descriptions);
    Ok(RowPlan { columns, row_description: out.to_vec() })
}

/// The plan's RowDescription message.
#[napi(catch_unwind)]
pub fn plan_row_description(plan: &External<RowPlan>) -> Buffer {
    plan.row_description.clone().into()
}

/// DataRow messages for `rows[start..end]` (each an array of values in field order, or an
/// object keyed by field name), or the first value that does not fit its field.
#[napi(catch_unwind)]
pub fn encode_rows<'env>(
    env: &'env Env,
    plan: &External<RowPlan>,
    rows: Unknown,
    start: u32,
    end: u32,
    prefix: Option<BufferSlice>,
    suffix: Option<BufferSlice>,
) -> Result<Either<BufferSlice<'env>, EncodeFailure>> {
    let mut out = BytesMut::new();
    let js = Js { env: env.raw() };
    if let Err(failure) =
        encode_rows_into(js, plan, rows.value().value, start, end, prefix.as_deref(), suffix.as_deref(), &mut out)?
    {
        return Ok(Either::B(failure));
    }
    // Copied into a Buffer V8 allocates and accounts for: a Vec handed over as an external
    // buffer is memory the garbage collector does not see, and a fast stream piled it up.
    Ok(Either::A(BufferSlice::copy_from(env, out)?))
}

/// [`encode_rows`] into `out`. A small result's RowDescription (`prefix`) and CommandComplete
/// (`suffix`) ride along, so it is one piece of output.
#[allow(clippy::too_many_arguments)]
pub fn encode_rows_into(
    js: Js,
    plan: &RowPlan,
    rows: Raw,
    start: u32,
    end: u32,
    prefix: Option<&[u8]>,
    suffix: Option<&[u8]>,
    out: &mut BytesMut,
) -> Result<std::result::Result<u32, EncodeFailure>> {
    let end = end.min(js.array_len(rows)?);
    // Fetched at the first row that is an object but not an Array (see `data_row`).
    let mut array_constructor = None;
    let estimate = ((end.saturating_sub(start)) as usize * (8 + plan.columns.len() * 12)).min(1 << 20);
    out.reserve(estimate + prefix.map_or(0, <[u8]>::len) + suffix.map_or(0, <[u8]>::len));
    if let Some(prefix) = prefix {
        out.extend_from_slice(prefix);
    }
    for i in start..end {
        let row = js.element(rows, i)?;
        if let Err((err, field)) = data_row(js, plan, row, out, &mut array_constructor)? {
            let place = match field {
                Some(name) => format!("in field \"{name}\", in row {} of the result", i + 1),
                None => format!("in row {} of the result", i + 1),
            };
            return Ok(Err(err.with_detail(place).into()));
        }
    }
    if let Some(suffix) = suffix {
        out.extend_from_slice(suffix);
    }
    Ok(Ok(end.saturating_sub(start)))
}

/// [`encode_rows_into`] for a result of the one row `row` (not an array of rows): the usual
/// small result (a lookup by key), two N-API calls fewer.
pub fn encode_row_into(
    js: Js,
    plan: &RowPlan,
    row: Raw,
    prefix: Option<&[u8]>,
    suffix: Option<&[u8]>,
    out: &mut BytesMut,
) -> Result<std::result::Result<u32, EncodeFailure>> {
    one_row(plan, prefix, suffix, out, |out| data_row(js, plan, row, out, &mut None))
}

/// [`encode_row_into`] for a row whose values JS passed one by one (`values`, one per field):
/// N-API reads an argument for nothing, an array element for a good part of a small query.
pub fn encode_values_into(
    js: Js,
    plan: &RowPlan,
    values: &[Raw],
    prefix: Option<&[u8]>,
    suffix: Option<&[u8]>,
    out: &mut BytesMut,
) -> Result<std::result::Result<u32, EncodeFailure>> {
    one_row(plan, prefix, suffix, out, |out| {
        if values.len() != plan.columns.len() {
            return Ok(Err((wrong_width(values.len(), plan), None)));
        }
        let start = begin_row(plan, out);
        cells_into(js, plan, Cells::Given(values), out, start)
    })
}

type RowOutcome<'p> = Result<std::result::Result<(), (PgError, Option<&'p str>)>>;

fn one_row<'p>(
    plan: &'p RowPlan,
    prefix: Option<&[u8]>,
    suffix: Option<&[u8]>,
    out: &mut BytesMut,
    row: impl FnOnce(&mut BytesMut) -> RowOutcome<'p>,
) -> Result<std::result::Result<u32, EncodeFailure>> {
    out.reserve(8 + plan.columns.len() * 12 + prefix.map_or(0, <[u8]>::len) + suffix.map_or(0, <[u8]>::len));
    if let Some(prefix) = prefix {
        out.extend_from_slice(prefix);
    }
    if let Err((err, field)) = row(out)? {
        let place = match field {
            Some(name) => format!("in field \"{name}\", in row 1 of the result"),
            None => "in row 1 of the result".to_string(),
        };
        return Ok(Err(err.with_detail(place).into()));
    }
    if let Some(suffix) = suffix {
        out.extend_from_slice(suffix);
    }
    Ok(Ok(1))
}

/// Where a row's values are: an array's elements, an object's properties by field name, or
/// values JS passed as arguments.
enum Cells<'a> {
    Array(Raw),
    Named(Raw),
    Given(&'a [Raw]),
}

fn wrong_width(len: usize, plan: &RowPlan) -> PgError {
    PgError::error(
        SqlState::INTERNAL_ERROR,
        format!("a row has {len} values but the result has {} fields", plan.columns.len()),
    )
}

/// Starts a DataRow (its length is written by [`cells_into`]); returns where it starts.
fn begin_row(plan: &RowPlan, out: &mut BytesMut) -> usize {
    let start = out.len();
    out.put_u8(b'D');
    out.put_i32(0);
    out.put_i16(plan.columns.len() as i16);
    start
}

/// Appends one DataRow. The outer `Result` is an N-API failure, the inner one a value that does
/// not fit (with the name of its field).
fn data_row<'p>(
    js: Js,
    plan: &'p RowPlan,
    row: Raw,
    out: &mut BytesMut,
    array_constructor: &mut Option<Raw>,
) -> RowOutcome<'p> {
    let mut is_array = js.is_array(row)?;
    let mut proxied = false;
    if !is_array && js.type_of(row)? == sys::ValueType::napi_object {
        // A Proxy of an array (Vue's and MobX's reactive arrays) is no Array to N-API, but it
        // is one to JS (`Array.isArray`, `instanceof`), and read by name it would be all NULLs.
        let array = match *array_constructor {
            Some(array) => array,
            None => *array_constructor.insert(js.named(js.global()?, c"Array")?),
        };
        proxied = js.instance_of(row, array)?;
        is_array = proxied;
    }
    if is_array {
        // N-API's array length refuses a Proxy; its `length` property does not.
        let len = if proxied { js.u32_property(row, c"length")? } else { js.array_len(row)? };
        if len as usize != plan.columns.len() {
            return Ok(Err((wrong_width(len as usize, plan), None)));
        }
    } else if js.type_of(row)? != sys::ValueType::napi_object {
        return Ok(Err((PgError::error(SqlState::INTERNAL_ERROR, "a row must be an array or an object"), None)));
    }
    let start = begin_row(plan, out);
    cells_into(js, plan, if is_array { Cells::Array(row) } else { Cells::Named(row) }, out, start)
}

/// The values of a DataRow begun at `start`; on a value that does not fit, the row is taken out.
fn cells_into<'p>(js: Js, plan: &'p RowPlan, cells: Cells, out: &mut BytesMut, start: usize) -> RowOutcome<'p> {
    for (i, column) in plan.columns.iter().enumerate() {
        let cell = match cells {
            Cells::Array(row) => js.element(row, i as u32)?,
            Cells::Named(row) => js.named(row, &column.key)?,
            Cells::Given(values) => values[i],
        };
        let value = match cell_value(js, cell, column.ty)? {
            Ok(value) => value,
            Err(err) => {
                out.truncate(start);
                return Ok(Err((err, Some(&column.name))));
            }
        };
        if let Err(err) = types::encode(out, column.ty, column.binary, &value) {
            out.truncate(start);
            return Ok(Err((err, Some(&column.name))));
        }
    }
    let len = (out.len() - start - 1) as i32;
    out[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
    Ok(Ok(()))
}

fn not_convertible(ty: PgType, what: &str) -> PgError {
    PgError::error(
        SqlState::INVALID_TEXT_REPRESENTATION,
        format!("a JS {what} cannot be a value of type {}", ty.name()),
    )
}

/// A cell as a [`Value`] for a column of type `ty`.
fn cell_value(js: Js, v: Raw, ty: PgType) -> Result<std::result::Result<Value, PgError>> {
    use sys::ValueType as T;
    let json = matches!(ty.family, Family::Json | Family::Jsonb) && !ty.is_array();
    let t = js.type_of(v)?;
    Ok(Ok(match t {
        T::napi_undefined | T::napi_null => Value::Null,
        T::napi_string => Value::Text(js.string(v)?),
        _ if json => match js.json_stringify(v) {
            Ok(Some(text)) => Value::Text(text),
            Ok(None) | Err(_) => return Ok(Err(not_convertible(ty, "value JSON.stringify refuses"))),
        },
        T::napi_boolean => Value::Bool(js.bool(v)?),
        T::napi_number => Value::Number(js.f64(v)?),
        T::napi_bigint => match js.bigint(v)? {
            Some(n) => Value::BigInt(n),
            None => {
                return Ok(Err(PgError::error(
                    SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
                    format!("a bigint out of range for type {}", ty.name()),
                )))
            }
        },
        T::napi_object => {
            if let Some(ms) = js.date(v)? {
                Value::Date(ms)
            } else if let Some(bytes) = js.bytes(v)? {
                Value::Bytes(bytes)
            } else if js.is_array(v)? {
                if !ty.is_array() {
                    return Ok(Err(not_convertible(ty, "array")));
                }
                let element = ty.element_type();
                let len = js.array_len(v)?;
                let mut items = Vec::with_capacity(len as usize);
                for i in 0..len {
                    let item = js.element(v, i)?;
                    if js.is_array(item)? {
                        return Ok(Err(PgError::error(
                            SqlState::FEATURE_NOT_SUPPORTED,
                            "only one-dimensional arrays are supported",
                        )));
                    }
                    match cell_value(js, item, element)? {
                        Ok(value) => items.push(value),
                        Err(err) => return Ok(Err(err)),
                    }
                }
                Value::Array(items)
            } else if ty.family == Family::Interval {
                match js.interval(v)? {
                    Some(interval) => Value::Interval(interval),
                    None => return Ok(Err(not_convertible(ty, "object without interval fields"))),
                }
            } else {
                return Ok(Err(not_convertible(ty, "object")));
            }
        }
        _ => return Ok(Err(not_convertible(ty, "function or symbol"))),
    }))
}

/// The command word of SQL (`SELECT`, `INSERT` ...), for default command tags.
#[napi(catch_unwind)]
pub fn sql_command_word(sql: String) -> String {
    crate::session::query::command_word(&sql)
}

/// The top-level statements of a simple Query's SQL (as the session splits them).
#[napi(catch_unwind)]
pub fn sql_statements(sql: String) -> Vec<String> {
    crate::session::query::split_statements(&sql).into_iter().map(str::to_string).collect()
}

/// Bind parameters on their way to JS, converted on the JS thread.
pub struct ParamValues(pub Arc<Vec<Value>>);

impl ToNapiValue for ParamValues {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        let js = Js { env };
        let mut array = std::ptr::null_mut();
        let status = unsafe { sys::napi_create_array_with_length(env, val.0.len(), &mut array) };
        if status != sys::Status::napi_ok {
            return Err(Error::new(Status::GenericFailure, "could not make the parameters array"));
        }
        for (i, value) in val.0.iter().enumerate() {
            let element = js.value(value)?;
            unsafe { sys::napi_set_element(env, array, i as u32, element) };
        }
        Ok(array)
    }
}

impl TypeName for ParamValues {
    fn type_name() -> &'static str {
        "unknown[]"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl FromNapiValue for ParamValues {
    unsafe fn from_napi_value(_env: sys::napi_env, _value: sys::napi_value) -> Result<Self> {
        Err(Error::new(Status::InvalidArg, "parameters only go from Rust to JS"))
    }
}

/// The OID of field `index` of a plan (how JS turns a type name into an OID).
#[napi(catch_unwind)]
pub fn plan_type_oid(plan: &External<RowPlan>, index: u32) -> u32 {
    plan.columns.get(index as usize).map(|c| c.ty.oid).unwrap_or(0)
}

/// One column of a batch of rows, gathered by JS into one typed array (or one string): the
/// whole batch crosses in a handful of N-API calls instead of several per value.
#[napi(object)]
pub struct ColumnBatch {
    /// 1 numbers, 2 strings, 3 dates (milliseconds), 4 bigints, 5 booleans, 6 all NULL.
    pub kind: u32,
    pub numbers: Option<Float64Array>,
    /// The strings joined with NUL, which no text value may hold (PostgreSQL's text cannot).
    pub text: Option<String>,
    pub bigints: Option<BigInt64Array>,
    pub flags: Option<Uint8Array>,
    /// 1 where the value is NULL; absent when none is.
    pub nulls: Option<Uint8Array>,
}

const KIND_NUMBER: u32 = 1;
const KIND_STRING: u32 = 2;
const KIND_DATE: u32 = 3;
const KIND_BIGINT: u32 = 4;
const KIND_BOOL: u32 = 5;
const KIND_NULL: u32 = 6;

/// DataRows for `count` rows given column by column (see [`ColumnBatch`]); `first_row` numbers
/// them in error messages. The fast path of `encodeRows`.
// `row` indexes every column of the batch, not one slice: the range loop is the clear form.
#[allow(clippy::needless_range_loop)]
#[napi(catch_unwind)]
pub fn encode_columns<'env>(
    env: &'env Env,
    plan: &External<RowPlan>,
    count: u32,
    columns: Vec<ColumnBatch>,
    first_row: u32,
) -> Result<Either<BufferSlice<'env>, EncodeFailure>> {
    let count = count as usize;
    if columns.len() != plan.columns.len() {
        return Err(Error::new(Status::InvalidArg, "one batch column per field"));
    }
    // Each column's strings, split once.
    let mut texts: Vec<Vec<&str>> = Vec::with_capacity(columns.len());
    for column in &columns {
        let pieces: Vec<&str> = match (&column.text, column.kind) {
            (Some(text), KIND_STRING) => text.split('\0').collect(),
            _ => Vec::new(),
        };
        if column.kind == KIND_STRING && pieces.len() != count {
            let err = PgError::error(
                SqlState::CHARACTER_NOT_IN_REPERTOIRE,
                "invalid byte sequence for encoding \"UTF8\": 0x00",
            );
            return Ok(Either::B(err.into()));
        }
        texts.push(pieces);
    }
    let width = plan.columns.len();
    let mut out = BytesMut::with_capacity((count * (8 + width * 12)).min(1 << 20));
    for row in 0..count {
        let start = out.len();
        out.put_u8(b'D');
        out.put_i32(0);
        out.put_i16(width as i16);
        for (j, (column, batch)) in plan.columns.iter().zip(&columns).enumerate() {
            let is_null = batch.nulls.as_ref().is_some_and(|n| n.get(row).copied().unwrap_or(0) != 0);
            let cell = if is_null || batch.kind == KIND_NULL {
                types::Cell::Null
            } else {
                let missing = || Error::new(Status::InvalidArg, "a batch column lacks its values");
                match batch.kind {
                    KIND_NUMBER => {
                        types::Cell::Number(*batch.numbers.as_ref().and_then(|v| v.get(row)).ok_or_else(missing)?)
                    }
                    KIND_DATE => {
                        types::Cell::Date(*batch.numbers.as_ref().and_then(|v| v.get(row)).ok_or_else(missing)?)
                    }
                    KIND_STRING => types::Cell::Text(texts[j][row]),
                    KIND_BIGINT => {
                        types::Cell::BigInt(*batch.bigints.as_ref().and_then(|v| v.get(row)).ok_or_else(missing)?)
                    }
                    KIND_BOOL => {
                        types::Cell::Bool(*batch.flags.as_ref().and_then(|v| v.get(row)).ok_or_else(missing)? != 0)
                    }
                    _ => return Err(Error::new(Status::InvalidArg, "unknown batch column kind")),
                }
            };
            if let Err(err) = types::encode_cell(&mut out, column.ty, column.binary, &cell) {
                out.truncate(start);
                let err = err.with_detail(format!(
                    "in field \"{}\", in row {} of the result",
                    column.name,
                    first_row as usize + row + 1
                ));
                return Ok(Either::B(err.into()));
            }
        }
        let len = (out.len() - start - 1) as i32;
        out[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
    }
    Ok(Either::A(BufferSlice::copy_from(env, out)?))
}
