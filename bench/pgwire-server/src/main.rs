//! Minimal reference PostgreSQL server built on the `pgwire` crate: the
//! "no-JS ceiling" for the pg-gateway-native benchmark.
//!
//! Usage: `pgwire-server <port>`; prints `ready` once listening.
//! A simple query containing `rows` streams `ROWS` (default 1,000,000) rows of
//! (int4, int8, text, float8, timestamptz); any other query returns `SELECT 1`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use futures::{stream, StreamExt};
use pgwire::api::query::SimpleQueryHandler;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response};
use pgwire::api::{ClientInfo, PgWireServerHandlers, Type};
use pgwire::error::PgWireResult;
use pgwire::tokio::process_socket;
use tokio::net::TcpListener;

/// timestamptz as PostgreSQL prints it (DateStyle ISO, whole seconds, UTC).
const PG_TSTZ: &str = "%Y-%m-%d %H:%M:%S%:::z";

struct Handler {
    rows: i64,
}

fn field(name: &str, ty: Type) -> FieldInfo {
    FieldInfo::new(name.into(), None, None, ty, FieldFormat::Text)
}

/// Formats into a reused scratch buffer (no String allocation per field).
fn text<'a>(buf: &'a mut String, args: std::fmt::Arguments) -> &'a str {
    buf.clear();
    buf.write_fmt(args).unwrap();
    buf
}

#[async_trait]
impl SimpleQueryHandler for Handler {
    async fn do_query<C>(&self, _client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        if !query.contains("rows") {
            let schema = Arc::new(vec![field("?column?", Type::INT4)]);
            let mut encoder = DataRowEncoder::new(schema.clone());
            encoder.encode_field(&1i32)?;
            let row = stream::once(async move { Ok(encoder.take_row()) });
            return Ok(vec![Response::Query(QueryResponse::new(schema, row))]);
        }

        let schema = Arc::new(vec![
            field("a", Type::INT4),
            field("b", Type::INT8),
            field("c", Type::TEXT),
            field("d", Type::FLOAT8),
            field("e", Type::TIMESTAMPTZ),
        ]);
        let epoch: DateTime<Utc> = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        // One encoder reused for every row; rows are produced lazily as
        // pgwire pulls them from the stream while writing to the socket.
        let mut encoder = DataRowEncoder::new(schema.clone());
        let mut buf = String::with_capacity(32);
        let rows = stream::iter(0..self.rows).map(move |i| {
            encoder.encode_field(&(i as i32))?;
            encoder.encode_field(&(i * 1000))?;
            encoder.encode_field(&text(&mut buf, format_args!("name {i}")))?;
            // pgwire's own f64 / chrono text encoders print `1.0` and
            // `00:00:01.000000+00`; PostgreSQL prints `1` and `00:00:01+00`.
            // Rust's `{}` for f64 is shortest round-trip without a trailing
            // `.0` (matches PG's extra_float_digits=1 in this value range),
            // and chrono formats the timestamp with a PG-style pattern.
            encoder.encode_field(&text(&mut buf, format_args!("{}", i as f64 / 3.0)))?;
            let ts = epoch + TimeDelta::seconds(i);
            encoder.encode_field(&text(&mut buf, format_args!("{}", ts.format(PG_TSTZ))))?;
            Ok(encoder.take_row())
        });
        Ok(vec![Response::Query(QueryResponse::new(schema, rows))])
    }
}

impl PgWireServerHandlers for Handler {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::new(Handler { rows: self.rows })
    }
    // startup_handler: the trait default is pgwire's no-op (trust) handler.
}

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).expect("usage: pgwire-server <port>");
    let rows = std::env::var("ROWS").ok().and_then(|r| r.parse().ok()).unwrap_or(1_000_000);
    let handlers = Arc::new(Handler { rows });

    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    println!("ready");
    std::io::stdout().flush().unwrap();

    loop {
        let (socket, _) = listener.accept().await.unwrap();
        let handlers = handlers.clone();
        tokio::spawn(async move { process_socket(socket, None, handlers).await });
    }
}
