//! The few raw N-API calls the query API's hot paths make (reading row cells, making
//! parameter values), each checked. napi-rs's typed conversions allocate or re-check more than
//! a per-cell loop can afford; these stay on the JS thread that called the binding.

use std::ffi::CStr;
use std::ptr;

use napi::sys;
use napi::{Error, Result, Status};

use crate::protocol::types::{Interval, Value};

/// A raw JS value of the current call.
pub type Raw = sys::napi_value;

/// The environment of the current call.
#[derive(Clone, Copy)]
pub struct Js {
    pub env: sys::napi_env,
}

fn check(status: sys::napi_status, what: &str) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::new(Status::GenericFailure, format!("N-API call failed: {what} ({status})")))
    }
}

impl Js {
    pub fn type_of(self, v: Raw) -> Result<sys::napi_valuetype> {
        let mut t = 0;
        check(unsafe { sys::napi_typeof(self.env, v, &mut t) }, "typeof")?;
        Ok(t)
    }

    pub fn is_array(self, v: Raw) -> Result<bool> {
        let mut b = false;
        check(unsafe { sys::napi_is_array(self.env, v, &mut b) }, "is_array")?;
        Ok(b)
    }

    pub fn array_len(self, v: Raw) -> Result<u32> {
        let mut n = 0;
        check(unsafe { sys::napi_get_array_length(self.env, v, &mut n) }, "array length")?;
        Ok(n)
    }

    pub fn element(self, v: Raw, i: u32) -> Result<Raw> {
        let mut out = ptr::null_mut();
        check(unsafe { sys::napi_get_element(self.env, v, i, &mut out) }, "get element")?;
        Ok(out)
    }

    pub fn global(self) -> Result<Raw> {
        let mut out = ptr::null_mut();
        check(unsafe { sys::napi_get_global(self.env, &mut out) }, "get global")?;
        Ok(out)
    }

    /// A property read as a u32 (0 if it is not a number).
    pub fn u32_property(self, v: Raw, key: &CStr) -> Result<u32> {
        let value = self.named(v, key)?;
        let mut n = 0;
        let status = unsafe { sys::napi_get_value_uint32(self.env, value, &mut n) };
        Ok(if status == sys::Status::napi_ok { n } else { 0 })
    }

    pub fn instance_of(self, v: Raw, constructor: Raw) -> Result<bool> {
        let mut b = false;
        check(unsafe { sys::napi_instanceof(self.env, v, constructor, &mut b) }, "instanceof")?;
        Ok(b)
    }

    pub fn named(self, v: Raw, key: &CStr) -> Result<Raw> {
        let mut out = ptr::null_mut();
        check(unsafe { sys::napi_get_named_property(self.env, v, key.as_ptr(), &mut out) }, "get property")?;
        Ok(out)
    }

    pub fn f64(self, v: Raw) -> Result<f64> {
        let mut n = 0.0;
        check(unsafe { sys::napi_get_value_double(self.env, v, &mut n) }, "number")?;
        Ok(n)
    }

    pub fn bool(self, v: Raw) -> Result<bool> {
        let mut b = false;
        check(unsafe { sys::napi_get_value_bool(self.env, v, &mut b) }, "boolean")?;
        Ok(b)
    }

    /// A bigint's value, `None` if it does not fit in 64 bits.
    pub fn bigint(self, v: Raw) -> Result<Option<i64>> {
        let mut n = 0;
        let mut lossless = false;
        check(unsafe { sys::napi_get_value_bigint_int64(self.env, v, &mut n, &mut lossless) }, "bigint")?;
        Ok(lossless.then_some(n))
    }

    /// A string's UTF-8 (lone surrogates become U+FFFD, as in `Buffer.from(string)`).
    pub fn string(self, v: Raw) -> Result<String> {
        let mut len = 0;
        check(unsafe { sys::napi_get_value_string_utf8(self.env, v, ptr::null_mut(), 0, &mut len) }, "string")?;
        let mut buf = vec![0u8; len + 1];
        let mut written = 0;
        check(
            unsafe { sys::napi_get_value_string_utf8(self.env, v, buf.as_mut_ptr().cast(), len + 1, &mut written) },
            "string",
        )?;
        buf.truncate(written);
        // N-API writes valid UTF-8.
        Ok(String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    pub fn date(self, v: Raw) -> Result<Option<f64>> {
        let mut is = false;
        check(unsafe { sys::napi_is_date(self.env, v, &mut is) }, "is_date")?;
        if !is {
            return Ok(None);
        }
        let mut ms = 0.0;
        check(unsafe { sys::napi_get_date_value(self.env, v, &mut ms) }, "date")?;
        Ok(Some(ms))
    }

    /// The bytes of a Buffer or Uint8Array.
    pub fn bytes(self, v: Raw) -> Result<Option<Vec<u8>>> {
        let mut is = false;
        check(unsafe { sys::napi_is_typedarray(self.env, v, &mut is) }, "is_typedarray")?;
        if !is {
            return Ok(None);
        }
        let mut kind = 0;
        let mut len = 0;
        let mut data = ptr::null_mut();
        check(
            unsafe {
                sys::napi_get_typedarray_info(
                    self.env,
                    v,
                    &mut kind,
                    &mut len,
                    &mut data,
                    ptr::null_mut(),
                    ptr::null_mut(),
                )
            },
            "typedarray",
        )?;
        if kind != sys::TypedarrayType::uint8_array || (data.is_null() && len > 0) {
            return Ok(None);
        }
        if len == 0 {
            return Ok(Some(Vec::new()));
        }
        Ok(Some(unsafe { std::slice::from_raw_parts(data as *const u8, len) }.to_vec()))
    }

    pub fn string_value(self, s: &str) -> Result<Raw> {
        let mut out = ptr::null_mut();
        check(
            unsafe { sys::napi_create_string_utf8(self.env, s.as_ptr().cast(), s.len() as isize, &mut out) },
            "string",
        )?;
        Ok(out)
    }

    /// `JSON.stringify(v)` (`None` when it gives undefined, e.g. for a function).
    pub fn json_stringify(self, v: Raw) -> Result<Option<String>> {
        let mut global = ptr::null_mut();
        check(unsafe { sys::napi_get_global(self.env, &mut global) }, "global")?;
        let json = self.named(global, c"JSON")?;
        let stringify = self.named(json, c"stringify")?;
        let mut out = ptr::null_mut();
        let args = [v];
        let status = unsafe { sys::napi_call_function(self.env, json, stringify, 1, args.as_ptr(), &mut out) };
        if status != sys::Status::napi_ok {
            // It threw (a cycle, a bigint): take the exception back, the caller reports it.
            let mut exception = ptr::null_mut();
            unsafe { sys::napi_get_and_clear_last_exception(self.env, &mut exception) };
            return Err(Error::new(Status::InvalidArg, "JSON.stringify failed"));
        }
        if self.type_of(out)? != sys::ValueType::napi_string {
            return Ok(None);
        }
        self.string(out).map(Some)
    }

    /// A parameter value as JS sees it.
    pub fn value(self, v: &Value) -> Result<Raw> {
        let env = self.env;
        let mut out = ptr::null_mut();
        let status = unsafe {
            match v {
                Value::Null => sys::napi_get_null(env, &mut out),
                Value::Bool(b) => sys::napi_get_boolean(env, *b, &mut out),
                Value::Number(n) => sys::napi_create_double(env, *n, &mut out),
                Value::BigInt(n) => sys::napi_create_bigint_int64(env, *n, &mut out),
                Value::Text(s) => sys::napi_create_string_utf8(env, s.as_ptr().cast(), s.len() as isize, &mut out),
                Value::Bytes(b) => {
                    sys::napi_create_buffer_copy(env, b.len(), b.as_ptr().cast(), ptr::null_mut(), &mut out)
                }
                Value::Date(ms) => sys::napi_create_date(env, *ms, &mut out),
                Value::Interval(i) => {
                    let mut text = String::new();
                    i.format(&mut text);
                    return self.string_value(&text);
                }
                Value::Array(items) => {
                    let status = sys::napi_create_array_with_length(env, items.len(), &mut out);
                    check(status, "array")?;
                    for (i, item) in items.iter().enumerate() {
                        let element = self.value(item)?;
                        check(sys::napi_set_element(env, out, i as u32, element), "set element")?;
                    }
                    sys::Status::napi_ok
                }
            }
        };
        check(status, "value")?;
        Ok(out)
    }

    /// An interval from `{ years, months, days, hours, minutes, seconds, milliseconds }` (the
    /// shape node-postgres's `postgres-interval` gives); absent fields are 0.
    pub fn interval(self, v: Raw) -> Result<Option<Interval>> {
        let mut acc = [0f64; 7];
        let keys = [c"years", c"months", c"days", c"hours", c"minutes", c"seconds", c"milliseconds"];
        let mut any = false;
        for (slot, key) in acc.iter_mut().zip(keys) {
            let field = self.named(v, key)?;
            if self.type_of(field)? == sys::ValueType::napi_number {
                *slot = self.f64(field)?;
                any = true;
            }
        }
        if !any {
            return Ok(None);
        }
        let [years, months, days, hours, minutes, seconds, millis] = acc;
        let months = years * 12.0 + months;
        let micros = ((hours * 60.0 + minutes) * 60.0 + seconds) * 1e6 + millis * 1e3;
        let fits = |v: f64, max: f64| v.is_finite() && v.fract() == 0.0 && v.abs() <= max;
        if !fits(months, i32::MAX as f64)
            || !fits(days, i32::MAX as f64)
            || !micros.is_finite()
            || micros.abs() > 9.2e18
        {
            return Ok(None);
        }
        Ok(Some(Interval { months: months as i32, days: days as i32, micros: micros.round() as i64 }))
    }
}
