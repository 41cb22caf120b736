//! Stateless helpers exported as pg-gateway has them.

use bytes::BytesMut;
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::auth::md5;
use crate::protocol::StartupMessage;

/// `"md5" + md5hex(md5hex(password + user) + salt)`, as libpq sends it.
#[napi(catch_unwind)]
pub fn hash_md5_password_sync(user: String, password: String, salt: BufferSlice) -> String {
    md5::hash_md5_password(&user, &password, &salt)
}

/// A SCRAM-SHA-256 verifier in PostgreSQL's `rolpassword` format (the JS wrapper checks the
/// arguments and picks a random salt).
#[napi(catch_unwind)]
pub fn create_scram_sha256_secret(password: String, salt: BufferSlice, iterations: u32) -> String {
    crate::auth::ScramSecret::from_password(&password, &salt, iterations.clamp(1, i32::MAX as u32)).verifier()
}

/// Why a SCRAM verifier string cannot be used, or null when it can (the one parser is Rust's).
#[napi(catch_unwind)]
pub fn scram_verifier_problem(verifier: String) -> Option<String> {
    crate::auth::ScramSecret::parse(&verifier).err().map(|reason| format!("getScramSecret: {reason}"))
}

/// A StartupMessage (no type byte), e.g. to replay a client's startup to an upstream.
#[napi(catch_unwind)]
pub fn encode_startup_message(major: u32, minor: u32, parameters: Vec<String>) -> Buffer {
    let message = StartupMessage {
        major: major as u16,
        minor: minor as u16,
        parameters: parameters.chunks(2).filter_map(|p| Some((p[0].clone(), p.get(1)?.clone()))).collect(),
    };
    let mut out = BytesMut::new();
    message.encode(&mut out);
    out.to_vec().into()
}
