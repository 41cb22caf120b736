//! The JS-thread driver's per-request calls, registered as raw N-API callbacks.
//!
//! A `#[napi]` function pays for napi-rs's argument machinery on every call (a borrow scope
//! opened and closed, each `External` looked up in a process-wide registry under a mutex):
//! about 130 ns, against 55 ns for the same work through a raw callback. A request/response
//! query makes three or four of these calls, so they are written here by hand: each reads its
//! arguments with checked N-API calls, runs the function of `session_handle.rs` that does the
//! work, and turns an error or a panic into a thrown JS exception, as `#[napi(catch_unwind)]`
//! does.

use std::cell::RefCell;
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
const MAX_ARGS: usize = 16;

/// Where `sessionQueryRows` finds a row's values passed one by one, and how many it may take.
const VALUE_ARGS: usize = 8;
pub const MAX_VALUE_ARGS: usize = MAX_ARGS - VALUE_ARGS;

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

/// Externals of one type that napi-rs's registry has vouched for on this thread, as pairs of
/// the External's address and its object's, in a small direct-mapped table: the registry is a
/// mutex and a SipHash lookup, a good part of a call. An object forgets its entry when it is
/// dropped (`forget`), so an entry always names a live External of the table's type.
type Vouched = RefCell<[(usize, usize); 64]>;

thread_local! {
    static SESSIONS: Vouched = const { RefCell::new([(0, 0); 64]) };
    static PLANS: Vouched = const { RefCell::new([(0, 0); 64]) };
}

/// The types `external` takes, each with its table.
pub(super) trait Vouchable: 'static {
    const TABLE: &'static std::thread::LocalKey<Vouched>;
}

impl Vouchable for SessionHandle {
    const TABLE: &'static std::thread::LocalKey<Vouched> = &SESSIONS;
}

impl Vouchable for RowPlan {
    const TABLE: &'static std::thread::LocalKey<Vouched> = &PLANS;
}

fn slot(address: usize) -> usize {
    (address >> 4) & 63
}

/// The native object behind an `External` napi-rs made. A function takes its references only
/// around code that cannot run JS: a getter that runs JS may call into this binding again.
fn external<'a, T: Vouchable>(js: Js, value: Raw) -> Result<&'a mut T> {
    // SAFETY: see `external_ptr`; the JS thread runs one call at a time, and this reference
    // is not held across JS.
    external_ptr::<T>(js, value).map(|object| unsafe { &mut *object })
}

/// A shared reference to the native object behind an `External`, for objects that are only
/// read (row plans): it may be held while JS runs, and JS may take another one meanwhile.
fn external_ref<'a, T: Vouchable>(js: Js, value: Raw) -> Result<&'a T> {
    // SAFETY: see `external_ptr`; nothing takes a `&mut` to a type read this way.
    external_ptr::<T>(js, value).map(|object| unsafe { &*object })
}

/// The address of the native object behind an `External` napi-rs made.
fn external_ptr<T: Vouchable>(js: Js, value: Raw) -> Result<*mut T> {
    let mut data: *mut c_void = ptr::null_mut();
    ok(unsafe { sys::napi_get_value_external(js.env, value, &mut data) }, "expected a handle")?;
    let address = data as usize;
    let known = T::TABLE.with(|table| {
        let (external, object) = table.borrow()[slot(address)];
        (address != 0 && external == address).then_some(object)
    });
    if let Some(object) = known {
        // The table holds only live Externals of type T (see `Vouched`).
        return Ok(object as *mut T);
    }
    // SAFETY: `inner_from_raw_mut` checks that `data` is a live `External<T>`.
    let object: *mut T =
        unsafe { External::<T>::inner_from_raw_mut(data) }.ok_or_else(|| fail("expected a handle of another type"))?;
    T::TABLE.with(|table| table.borrow_mut()[slot(address)] = (address, object as usize));
    Ok(object)
}

/// `object` is being dropped: its table entry goes (see `Vouched`).
pub(super) fn forget<T: Vouchable>(object: &T) {
    let object = object as *const T as usize;
    // During thread teardown the table may be gone already: nothing to forget then.
    let _ = T::TABLE.try_with(|table| {
        for entry in table.borrow_mut().iter_mut() {
            if entry.1 == object {
                *entry = (0, 0);
            }
        }
    });
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

/// The bytes of a Buffer (or other Uint8Array).
fn bytes<'a>(js: Js, value: Raw) -> Result<&'a mut [u8]> {
    let (kind, bytes) = typed_array(js, value)?;
    if kind != sys::TypedarrayType::uint8_array && kind != sys::TypedarrayType::uint8_clamped_array {
        return Err(fail("expected a Buffer"));
    }
    Ok(bytes)
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
    // A boolean first (the usual argument): one N-API call, not two.
    let mut b = false;
    if unsafe { sys::napi_get_value_bool(js.env, value, &mut b) } == sys::Status::napi_ok {
        return Ok(Some(b));
    }
    if is_nullish(js, value)? {
        return Ok(None);
    }
    Err(fail("expected a boolean"))
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
    let handled = number(js, args[1])? as u32;
    // Read before the session is: the error's getters are JS.
    let error = opt_object::<BackendErrorInput>(js, args[2])?;
    let poll = opt_bool(js, args[3])?;
    let backlog = opt_number(js, args[4])?;
    let handle = external::<SessionHandle>(js, args[0])?;
    make_number(js, f64::from(handle::messages_done(handle, handled, error, poll, backlog)))
}

thread_local! {
    /// How many times output was copied into a JS slab (the js driver's output pool): JS then
    /// moves its offset on, and an offset read before is stale.
    static SLAB_TAKES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// `sessionTakeOutputInto(handle, slab, offset)`.
fn session_take_output_into(js: Js, args: &[Raw; MAX_ARGS]) -> Result<Raw> {
    let handle = external::<SessionHandle>(js, args[0])?;
    let slab = bytes(js, args[1])?;
    let offset = number(js, args[2])? as u32;
    let taken = handle.take_output_into_slab(slab, offset);
    if taken > 0 {
        SLAB_TAKES.set(SLAB_TAKES.get().wrapping_add(1));
    }
    make_number(js, taken as f64)
}

/// `sessionQueryCall(handle, registers)`.
fn session_query_call(js: Js, args: &[Raw; MAX_ARGS]) -> Result<Raw> {
    let handle = external::<SessionHandle>(js, args[0])?;
    let registers = u32s(js, args[1])?;
    if registers.len() < handle::QUERY_REGISTERS as usize {
        return Err(fail("the registers array is too short"));
    }
    match handle::query_call(handle, registers) {
        Some(sql) => make_string(js, &sql),
        None => make_null(js),
    }
}

thread_local! {
    /// Where `sessionQueryRows` encodes, kept between calls (taken out while in use).
    static SCRATCH: std::cell::Cell<bytes::BytesMut> = std::cell::Cell::new(bytes::BytesMut::new());
}

/// `sessionQueryRows(handle, plan, rows, flags, complete, poll, slab, offset, ...values)`: with
/// `QUERY_ROWS_DESCRIBE` in `flags`, the plan's RowDescription goes first; with `QUERY_ROWS_ONE`,
/// `rows` is the result's one row; with `QUERY_ROWS_VALUES` the one row's values follow
/// `offset`, one per field (at most `MAX_VALUE_ARGS`). `complete` is the CommandComplete
/// message, or null for `SELECT <rows>` (the usual tag, made here: a Buffer argument costs more
/// than the message).
///
/// Returns the next step; when the session then waits with output that fits `slab` from
/// `offset` on, the output is copied there as by `sessionTakeOutputInto` (a call saved per
/// query) and its length is added times 2^32 (JS: `step = result >>> 0`).
fn session_query_rows(js: Js, args: &[Raw; MAX_ARGS]) -> Result<Raw> {
    let flags = number(js, args[3])? as u32;
    let describe = flags & handle::QUERY_ROWS_DESCRIBE != 0;
    let complete = if is_nullish(js, args[4])? { None } else { Some(&*bytes(js, args[4])?) };
    let poll = opt_bool(js, args[5])?;
    let takes = SLAB_TAKES.get();
    // The rows are encoded before the session is touched: reading them may run JS (getters,
    // `toJSON`), and that JS may write to this very connection.
    let mut scratch = SCRATCH.take();
    scratch.clear();
    let plan = external_ref::<RowPlan>(js, args[1])?;
    let description = describe.then(|| plan.row_description());
    let encoded = if flags & handle::QUERY_ROWS_VALUES != 0 {
        let count = plan.columns_len().min(MAX_VALUE_ARGS);
        super::query::encode_values_into(
            js,
            plan,
            &args[VALUE_ARGS..VALUE_ARGS + count],
            description,
            complete,
            &mut scratch,
        )?
    } else if flags & handle::QUERY_ROWS_ONE != 0 {
        super::query::encode_row_into(js, plan, args[2], description, complete, &mut scratch)?
    } else {
        super::query::encode_rows_into(js, plan, args[2], 0, u32::MAX, description, complete, &mut scratch)?
    };
    if let (Ok(rows), None) = (&encoded, complete) {
        crate::protocol::backend::command_complete_select(&mut scratch, *rows);
    }
    let handle = external::<SessionHandle>(js, args[0])?;
    let answer = handle::query_rows(handle, encoded.map(|_| ()), &scratch, description, poll);
    if scratch.capacity() <= SCRATCH_KEPT {
        SCRATCH.set(scratch);
    }
    match answer {
        // Only if no JS took from the slab while the rows were read (a getter that wrote to
        // a connection): `offset` would then be stale. The slab is read only now, for a getter
        // may have detached it.
        Ok(step) if SLAB_TAKES.get() == takes => {
            let slab = bytes(js, args[6])?;
            let offset = number(js, args[7])? as u32;
            let (step, taken) = handle.take_waiting_output(step, slab, offset);
            if taken > 0 {
                SLAB_TAKES.set(takes.wrapping_add(1));
            }
            make_number(js, f64::from(step) + f64::from(taken) * 4_294_967_296.0)
        }
        Ok(step) => make_number(js, f64::from(step)),
        Err(failure) => unsafe { super::query::EncodeFailure::to_napi_value(js.env, failure) },
    }
}

/// The most scratch space kept between calls (small results are what this path serves).
const SCRATCH_KEPT: usize = 64 * 1024;

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
