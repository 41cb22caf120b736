//! The JS-thread driver's per-request calls, registered as raw N-API callbacks.
//!
//! A `#[napi]` function pays for napi-rs's argument machinery on every call (a borrow scope
//! opened and closed, each `External` looked up in a process-wide registry under a mutex):
//! about 130 ns, against 55 ns for the same work through a raw callback. A request/response
//! query makes three or four of these calls, so they are written here by hand: each reads its
//! arguments with checked N-API calls, runs the function of `session_handle.rs` that does the
//! work, and turns an error or a panic into a thrown JS exception, as `#[napi(catch_unwind)]`
//! does.

use std::ffi::{c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use napi::bindgen_prelude::{External, FromNapiValue, ToNapiValue};
use napi::{sys, Env, Error, JsValue, Result, Status};
use napi_derive::napi;

use super::errors::BackendErrorInput;
use super::js::{Js, Raw};
use super::query::RowPlan;
use super::session_handle::{self as handle, SessionHandle};

/// The most arguments a function here takes.
const MAX_ARGS: usize = 8;

type Body = fn(Js, &[Raw; MAX_ARGS]) -> Result<Raw>;

fn fail(what: &str) -> Error {
    Error::new(Status::InvalidArg, format!("pg-gateway-native: bad argument: {what}"))
}

fn ok(status: sys::napi_status, what: &str) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(fail(what))
    }
}

/// Every function's entry: `data` is its body. Missing arguments read as `undefined`.
unsafe extern "C" fn trampoline(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let mut argc = MAX_ARGS;
    let mut argv = [ptr::null_mut(); MAX_ARGS];
    let mut data: *mut c_void = ptr::null_mut();
    let status = unsafe { sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), &mut data) };
    if status != sys::Status::napi_ok || data.is_null() {
        return throw(env, "pg-gateway-native: could not read the call's arguments");
    }
    let mut undefined = ptr::null_mut();
    unsafe { sys::napi_get_undefined(env, &mut undefined) };
    for arg in argv.iter_mut().skip(argc.min(MAX_ARGS)) {
        *arg = undefined;
    }
    // SAFETY: `data` is the `Body` `raw_exports` registered with this function.
    let body: Body = unsafe { std::mem::transmute::<*mut c_void, Body>(data) };
    match catch_unwind(AssertUnwindSafe(|| body(Js { env }, &argv))) {
        Ok(Ok(value)) => value,
        Ok(Err(err)) => throw(env, &err.reason),
        Err(_) => throw(env, "pg-gateway-native: panic in native code"),
    }
}

fn throw(env: sys::napi_env, message: &str) -> sys::napi_value {
    let message = std::ffi::CString::new(message.replace('\0', " ")).unwrap_or_default();
    unsafe { sys::napi_throw_error(env, ptr::null(), message.as_ptr()) };
    ptr::null_mut()
}

/// The native object behind an `External` napi-rs made (its registry proves the type).
fn external<'a, T: 'static>(js: Js, value: Raw) -> Result<&'a mut T> {
    let mut data: *mut c_void = ptr::null_mut();
    ok(unsafe { sys::napi_get_value_external(js.env, value, &mut data) }, "expected a handle")?;
    // SAFETY: `inner_from_raw_mut` checks that `data` is a live `External<T>`; the JS thread
    // runs one call at a time, so the reference is the only one while this call runs.
    unsafe { External::<T>::inner_from_raw_mut(data) }.ok_or_else(|| fail("expected a handle of another type"))
}

/// The bytes of a Buffer or other TypedArray, with its element type.
fn typed_array<'a>(js: Js, value: Raw) -> Result<(sys::napi_typedarray_type, &'a mut [u8])> {
    let mut kind = 0;
    let mut length = 0;
    let mut data: *mut c_void = ptr::null_mut();
    let mut buffer = ptr::null_mut();
    let mut offset = 0;
    ok(
        unsafe {
            sys::napi_get_typedarray_info(js.env, value, &mut kind, &mut length, &mut data, &mut buffer, &mut offset)
        },
        "expected a Buffer or TypedArray",
    )?;
    let bytes = match kind {
        sys::TypedarrayType::uint32_array => length * 4,
        sys::TypedarrayType::int8_array
        | sys::TypedarrayType::uint8_array
        | sys::TypedarrayType::uint8_clamped_array => length,
        _ => return Err(fail("expected a Uint8Array or Uint32Array")),
    };
    if bytes == 0 || data.is_null() {
        return Ok((kind, &mut []));
    }
    // SAFETY: N-API reports `data` as the start of `bytes` bytes of the array's memory, which
    // stays in place while the array is reachable (it is an argument of this call).
    Ok((kind, unsafe { std::slice::from_raw_parts_mut(data.cast::<u8>(), bytes) }))
}

fn bytes<'a>(js: Js, value: Raw) -> Result<&'a mut [u8]> {
    typed_array(js, value).map(|(_, bytes)| bytes)
}

fn u32s<'a>(js: Js, value: Raw) -> Result<&'a mut [u32]> {
    let (kind, bytes) = typed_array(js, value)?;
    if kind != sys::TypedarrayType::uint32_array {
        return Err(fail("expected a Uint32Array"));
    }
    // SAFETY: a Uint32Array's memory is 4-aligned and `bytes` is a whole number of u32s.
    Ok(unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<u32>(), bytes.len() / 4) })
}

fn is_nullish(js: Js, value: Raw) -> Result<bool> {
    let t = js.type_of(value)?;
    Ok(t == sys::ValueType::napi_undefined || t == sys::ValueType::napi_null)
}

fn number(js: Js, value: Raw) -> Result<f64> {
    let mut n = 0.0;
    ok(unsafe { sys::napi_get_value_double(js.env, value, &mut n) }, "expected a number")?;
    Ok(n)
}

fn opt_number(js: Js, value: Raw) -> Result<Option<f64>> {
    if is_nullish(js, value)? {
        return Ok(None);
    }
    number(js, value).map(Some)
}

fn opt_bool(js: Js, value: Raw) -> Result<Option<bool>> {
    if is_nullish(js, value)? {
        return Ok(None);
    }
    let mut b = false;
    ok(unsafe { sys::napi_get_value_bool(js.env, value, &mut b) }, "expected a boolean")?;
    Ok(Some(b))
}

fn opt_object<T: FromNapiValue>(js: Js, value: Raw) -> Result<Option<T>> {
    if is_nullish(js, value)? {
        return Ok(None);
    }
    unsafe { T::from_napi_value(js.env, value) }.map(Some)
}

fn make_number(js: Js, n: f64) -> Result<Raw> {
    let mut out = ptr::null_mut();
    ok(unsafe { sys::napi_create_double(js.env, n, &mut out) }, "number")?;
    Ok(out)
}

fn make_null(js: Js) -> Result<Raw> {
    let mut out = ptr::null_mut();
    ok(unsafe { sys::napi_get_null(js.env, &mut out) }, "null")?;
    Ok(out)
}

fn make_string(js: Js, s: &str) -> Result<Raw> {
    let mut out = ptr::null_mut();
    ok(unsafe { sys::napi_create_string_utf8(js.env, s.as_ptr().cast(), s.len() as isize, &mut out) }, "string")?;
    Ok(out)
}

/// `sessionFeed(handle, data)`.
fn session_feed(js: Js, args: &[Raw; MAX_ARGS]) -> Result<Raw> {
    let handle = external::<SessionHandle>(js, args[0])?;
    let data = bytes(js, args[1])?;
    make_number(js, f64::from(handle::feed(handle, data)))
}

/// `sessionMessagesDone(handle, handled, error, poll, backlog)`.
fn session_messages_done(js: Js, args: &[Raw; MAX_ARGS]) -> Result<Raw> {
    let handle = external::<SessionHandle>(js, args[0])?;
    let handled = number(js, args[1])? as u32;
    let error = opt_object::<BackendErrorInput>(js, args[2])?;
    let poll = opt_bool(js, args[3])?;
    let backlog = opt_number(js, args[4])?;
    make_number(js, f64::from(handle::messages_done(handle, handled, error, poll, backlog)))
}

/// `sessionTakeOutputInto(handle, slab, offset)`.
fn session_take_output_into(js: Js, args: &[Raw; MAX_ARGS]) -> Result<Raw> {
    let handle = external::<SessionHandle>(js, args[0])?;
    let slab = bytes(js, args[1])?;
    let offset = number(js, args[2])? as u32;
    make_number(js, handle.take_output_into_slab(slab, offset) as f64)
}

/// `sessionQueryCall(handle, registers)`.
fn session_query_call(js: Js, args: &[Raw; MAX_ARGS]) -> Result<Raw> {
    let handle = external::<SessionHandle>(js, args[0])?;
    let registers = u32s(js, args[1])?;
    match handle::query_call(handle, registers) {
        Some(sql) => make_string(js, &sql),
        None => make_null(js),
    }
}

/// `sessionQueryRows(handle, plan, rows, description, complete, poll)`.
fn session_query_rows(js: Js, args: &[Raw; MAX_ARGS]) -> Result<Raw> {
    let handle = external::<SessionHandle>(js, args[0])?;
    let plan = external::<RowPlan>(js, args[1])?;
    let description = if is_nullish(js, args[3])? { None } else { Some(&*bytes(js, args[3])?) };
    let complete = bytes(js, args[4])?;
    let poll = opt_bool(js, args[5])?;
    match handle::query_rows(js, handle, plan, args[2], description, complete, poll)? {
        Ok(step) => make_number(js, f64::from(step)),
        Err(failure) => unsafe { super::query::EncodeFailure::to_napi_value(js.env, failure) },
    }
}

const FUNCTIONS: [(&CStr, Body); 5] = [
    (c"sessionFeed", session_feed),
    (c"sessionMessagesDone", session_messages_done),
    (c"sessionTakeOutputInto", session_take_output_into),
    (c"sessionQueryCall", session_query_call),
    (c"sessionQueryRows", session_query_rows),
];

#[napi(module_exports)]
pub fn raw_exports(exports: napi::bindgen_prelude::Object, env: Env) -> Result<()> {
    for (name, body) in FUNCTIONS {
        let mut function = ptr::null_mut();
        ok(
            unsafe {
                sys::napi_create_function(
                    env.raw(),
                    name.as_ptr(),
                    -1, // NAPI_AUTO_LENGTH: `name` is NUL-terminated
                    Some(trampoline),
                    body as *mut c_void,
                    &mut function,
                )
            },
            "create function",
        )?;
        ok(unsafe { sys::napi_set_named_property(env.raw(), exports.raw(), name.as_ptr(), function) }, "export")?;
    }
    Ok(())
}
