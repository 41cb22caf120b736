//! Codec throughput: framing plus typed decoding of what pgbench -M extended sends, and
//! encoding of the backend messages every query answer needs. `cargo bench --bench codec`.
//! (No harness crate: std's Instant, several runs, the best one reported.)

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pg_gateway_native::protocol::backend::{self, TransactionStatus};
use pg_gateway_native::protocol::frame::typed_frame_len;
use pg_gateway_native::protocol::{FrontendMessage, PgError, SqlState};

fn typed(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend(((body.len() + 4) as i32).to_be_bytes());
    v.extend(body);
    v
}

/// Best of several timed runs of `f`, which processes `units` items of `bytes` bytes.
fn measure(name: &str, units: u64, bytes: u64, mut f: impl FnMut()) {
    let mut best = Duration::MAX;
    for _ in 0..7 {
        let started = Instant::now();
        f();
        best = best.min(started.elapsed());
    }
    let secs = best.as_secs_f64();
    println!("{name:<44} {:>8.1} M msgs/s {:>8.0} MB/s", units as f64 / secs / 1e6, bytes as f64 / secs / 1e6);
}

fn main() {
    // One pgbench -M extended transaction: Parse, Bind, Describe, Execute, Sync.
    let batch = [
        typed(b'P', b"\0SELECT 1;\0\0\0"),
        typed(b'B', b"\0\0\0\0\0\0\0\0"),
        typed(b'D', b"P\0"),
        typed(b'E', b"\0\0\0\0\0"),
        typed(b'S', b""),
    ]
    .concat();
    let repeats = 100_000;
    let input: Vec<u8> = batch.iter().copied().cycle().take(batch.len() * repeats).collect();
    measure("decode: frame + typed decode (P/B/D/E/S)", 5 * repeats as u64, input.len() as u64, || {
        let mut rest = &input[..];
        while let Ok(Some(len)) = typed_frame_len(rest, |_| 1 << 30) {
            black_box(FrontendMessage::decode(&rest[..len]).ok());
            rest = &rest[len..];
        }
    });
    let query = typed(b'Q', b"SELECT abalance FROM pgbench_accounts WHERE aid = 12345;\0");
    let queries: Vec<u8> = query.iter().copied().cycle().take(query.len() * repeats).collect();
    measure("decode: frame + typed decode (Query)", repeats as u64, queries.len() as u64, || {
        let mut rest = &queries[..];
        while let Ok(Some(len)) = typed_frame_len(rest, |_| 1 << 30) {
            black_box(FrontendMessage::decode(&rest[..len]).ok());
            rest = &rest[len..];
        }
    });
    let mut out = BytesMut::with_capacity(8 << 20);
    let error = PgError::error(SqlState::FEATURE_NOT_SUPPORTED, "Queries not yet implemented").with_hint("a hint");
    let mut sample = BytesMut::new();
    backend::error_response(&mut sample, &error);
    backend::ready_for_query(&mut sample, TransactionStatus::Idle);
    measure("encode: ErrorResponse + ReadyForQuery", 2 * repeats as u64, (sample.len() * repeats) as u64, || {
        out.clear();
        for _ in 0..repeats {
            backend::error_response(&mut out, &error);
            backend::ready_for_query(&mut out, TransactionStatus::Idle);
        }
        black_box(&out);
    });
    let mut greeting = BytesMut::new();
    backend::authentication_ok(&mut greeting);
    backend::parameter_status(&mut greeting, "server_version", "16.3");
    backend::backend_key_data(&mut greeting, 42, &[1, 2, 3, 4]);
    backend::ready_for_query(&mut greeting, TransactionStatus::Idle);
    measure(
        "encode: AuthOk + ParameterStatus + Key + Ready",
        4 * repeats as u64,
        (greeting.len() * repeats) as u64,
        || {
            out.clear();
            for _ in 0..repeats {
                backend::authentication_ok(&mut out);
                backend::parameter_status(&mut out, "server_version", "16.3");
                backend::backend_key_data(&mut out, 42, &[1, 2, 3, 4]);
                backend::ready_for_query(&mut out, TransactionStatus::Idle);
            }
            black_box(&out);
        },
    );

    // What `server.stats()` adds per hook call on the tokio driver: the clock read when the
    // hook is called, the one when it settles, and the connection's two counters. Compare with
    // the server CPU per transaction of `npm run bench -- --only stats` (one hook call per
    // transaction there): this is the part of it that stats cost.
    let counters = pg_gateway_native::server::HookCounters::default();
    let started = Instant::now();
    for _ in 0..repeats {
        let called = Instant::now();
        counters.hook_done(black_box(called).elapsed());
    }
    let per_call = started.elapsed().as_secs_f64() / repeats as f64 * 1e9;
    println!("{:<44} {per_call:>8.1} ns per hook call", "stats: time and count a hook call");
}
