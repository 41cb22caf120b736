//! The harness the session fuzz targets share: a fake driver that pumps a whole [`Session`]
//! with the fuzz input as the client's byte stream, answers its hooks, plays a client that
//! reads its output slowly or not at all, and moves a fake clock.
//!
//! Input layout (both session targets): an 8-byte header, then the client's bytes.
//!
//! - `header[0]`: the server. Bits 0-1 auth mode (none, cleartextPassword, md5Password,
//!   certificate); bits 2-3 TLS (off, fixed configuration, chosen by the `tls` callback hook,
//!   fixed and asking for client certificates); bit 4 tiny message limits; bit 5 no
//!   `writeTimeout`; bit 6 server parameter overrides; bit 7 a client that reads its output
//!   slowly.
//! - `header[1]`: bits 0-4 which hooks exist (onMessage, onStartup, validateCredentials,
//!   onAuthenticated, onTlsUpgrade); bit 5 TLS 1.2 only (`session_tls`) and getScramSecret;
//!   bit 6 direct TLS without SSLRequest (`session_tls`) and onCancel (with bit 7: onDescribe);
//!   bit 7 the client presents a certificate (`session_tls`) and onQuery.
//! - `header[2..8]`: the seed of the generator that cuts the stream into reads and decides
//!   hook answers, clock moves and the driver's other calls.
//!
//! Everything is deterministic for one input except the TLS randoms (ciphertexts differ from
//! run to run; the code paths do not).

use std::io::{Read, Write};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use pg_gateway_native::auth::{AuthMode, ScramSecret, SecretSource};
use pg_gateway_native::protocol::backend::ColumnDescription;
use pg_gateway_native::protocol::{FrameLimits, PgError, Severity, SqlState};
use pg_gateway_native::session::query::{Description, QueryOutcome};
use pg_gateway_native::session::{
    HookAnswer, HookRequest, HookResult, HookSet, ScramAnswer, Secrets, Session, SessionConfig, Step, TlsSettings, OUTPUT_HIGH_WATER,
};
use pg_gateway_native::tls::{TlsMaterial, TlsServer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

pub const HEADER_LEN: usize = 8;

const CA: &[u8] = include_bytes!("../certs/ca-cert.pem");
const SERVER_CERT: &[u8] = include_bytes!("../certs/server-cert.pem");
const SERVER_KEY: &[u8] = include_bytes!("../certs/server-key.pem");
const CLIENT_CERT: &[u8] = include_bytes!("../certs/client-cert.pem");
const CLIENT_KEY: &[u8] = include_bytes!("../certs/client-key.pem");

const SSL_REQUEST: &[u8] = b"\x00\x00\x00\x08\x04\xd2\x16\x2f";
const SECRETS: Secrets = Secrets { md5_salt: [1, 2, 3, 4], process_id: 42, secret_key: [9, 9, 9, 9], scram_nonce: [5; 18] };

/// TLS configurations built once per process (building them is far slower than a run).
struct Fixture {
    /// `tls: { key, cert }`.
    plain: Arc<TlsServer>,
    /// `tls: { key, cert, ca }` with `authMode: 'certificate'`: asks for client certificates.
    client_auth: Arc<TlsServer>,
    /// Clients trusting the CA, by (TLS 1.2 only, with a client certificate).
    clients: [[Arc<ClientConfig>; 2]; 2],
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let material = |ca: bool| TlsMaterial {
            key: SERVER_KEY.to_vec(),
            cert: SERVER_CERT.to_vec(),
            ca: ca.then(|| CA.to_vec()),
            passphrase: None,
        };
        let plain = Arc::new(TlsServer::new(&material(false), false).expect("fuzz server certificate"));
        let client_auth = Arc::new(TlsServer::new(&material(true), true).expect("fuzz CA"));
        let client = |tls12: bool, cert: bool| {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(CA) {
                roots.add(c.unwrap()).unwrap();
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let builder = ClientConfig::builder_with_provider(provider);
            let builder = if tls12 {
                builder.with_protocol_versions(&[&rustls::version::TLS12]).unwrap()
            } else {
                builder.with_safe_default_protocol_versions().unwrap()
            };
            let builder = builder.with_root_certificates(roots);
            let mut config = if cert {
                let chain = CertificateDer::pem_slice_iter(CLIENT_CERT).collect::<Result<Vec<_>, _>>().unwrap();
                let key = PrivateKeyDer::from_pem_slice(CLIENT_KEY).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            } else {
                builder.with_no_client_auth()
            };
            config.alpn_protocols = vec![b"postgresql".to_vec()];
            // No resumption: a run must not depend on the runs before it.
            config.resumption = rustls::client::Resumption::disabled();
            Arc::new(config)
        };
        Fixture {
            plain,
            client_auth,
            clients: [[client(false, false), client(false, true)], [client(true, false), client(true, true)]],
        }
    })
}

/// splitmix64: the fuzzer controls the seed, so every choice below is still the input's.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: &[u8]) -> Self {
        let mut s = 0u64;
        for &b in seed {
            s = (s << 8) | u64::from(b);
        }
        Self(s)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.next() % n == 0
    }
}

/// The server configuration `header[0]` and `header[1]` describe.
pub fn session_config(h0: u8, h1: u8) -> Arc<SessionConfig> {
    let auth_mode = match (h0 & 3, h0 & 128 != 0) {
        (_, true) => AuthMode::ScramSha256,
        (0, _) => AuthMode::None,
        (1, _) => AuthMode::CleartextPassword,
        (2, _) => AuthMode::Md5Password,
        _ => AuthMode::Certificate,
    };
    let f = fixture();
    let tls = match (h0 >> 2) & 3 {
        0 => None,
        1 => Some(TlsSettings { fixed: Some(f.plain.clone()) }),
        2 => Some(TlsSettings { fixed: None }),
        _ => Some(TlsSettings { fixed: Some(f.client_auth.clone()) }),
    };
    let hooks = HookSet {
        on_message: h1 & 1 != 0,
        on_startup: h1 & 2 != 0,
        validate_credentials: h1 & 4 != 0,
        on_authenticated: h1 & 8 != 0,
        on_tls_upgrade: h1 & 16 != 0,
        get_scram_secret: h1 & 32 != 0,
        on_cancel: h1 & 64 != 0,
        // onQuery puts the session's own query protocol under the fuzzer; with onMessage too,
        // messages the hook declines reach it.
        on_query: h1 & 128 != 0,
        on_describe: h1 & 128 != 0 && h1 & 64 != 0,
    };
    let limits = if h0 & 16 != 0 { FrameLimits { large: 64 } } else { FrameLimits::default() };
    let server_parameters = if h0 & 64 != 0 {
        vec![("server_version".into(), "9.6".into()), ("custom".into(), String::new())]
    } else {
        Vec::new()
    };
    Arc::new(SessionConfig {
        auth_mode,
        hooks,
        limits,
        tls,
        server_parameters,
        auth_timeout: Duration::from_secs(60),
        write_timeout: if h0 & 32 != 0 { None } else { Some(Duration::from_secs(5)) },
        ..SessionConfig::default()
    })
}

fn random_error(rng: &mut Rng) -> PgError {
    const SEVERITIES: [Severity; 8] = [
        Severity::Error,
        Severity::Fatal,
        Severity::Panic,
        Severity::Warning,
        Severity::Notice,
        Severity::Debug,
        Severity::Info,
        Severity::Log,
    ];
    const CODES: [SqlState; 4] =
        [SqlState::INTERNAL_ERROR, SqlState::INVALID_PASSWORD, SqlState::PROTOCOL_VIOLATION, SqlState::ADMIN_SHUTDOWN];
    let err = PgError::new(SEVERITIES[rng.below(8)], CODES[rng.below(4)], "fuzz hook error");
    if rng.one_in(2) {
        err.with_detail("detail").with_hint("hint")
    } else {
        err
    }
}

/// A hook's answer, mostly of the kind the request expects, sometimes not (a driver bug the
/// session must survive too).
fn answer(request: &HookRequest, rng: &mut Rng) -> HookResult {
    if rng.one_in(2) {
        // What JS answered, turned into a result by the table both drivers use.
        return request.kind().result(js_answer(request, rng));
    }
    let r = rng.byte();
    if r < 8 {
        // The wrong kind of answer, or a failure, whatever the hook.
        return match r % 4 {
            0 => HookResult::Done,
            1 => HookResult::Bool(r & 4 != 0),
            2 => HookResult::Failed(random_error(rng)),
            _ => HookResult::Messages { handled: rng.below(3), paused: false, error: None },
        };
    }
    match request {
        HookRequest::Messages { count } => {
            let handled = match rng.below(4) {
                0 => 0,
                1 => *count,
                2 => rng.below(count + 2),
                _ => rng.below(*count + 1),
            };
            let paused = rng.one_in(6);
            let error = rng.one_in(6).then(|| random_error(rng));
            if rng.one_in(20) {
                HookResult::Failed(random_error(rng))
            } else {
                HookResult::Messages { handled, paused, error }
            }
        }
        HookRequest::Startup | HookRequest::ValidateCredentials(_) => match rng.below(8) {
            0 => HookResult::Failed(random_error(rng)),
            1 => HookResult::Done,
            2 | 3 | 4 => HookResult::Bool(true),
            _ => HookResult::Bool(false),
        },
        HookRequest::Authenticated | HookRequest::TlsUpgrade => match rng.below(8) {
            0 => HookResult::Failed(random_error(rng)),
            1 => HookResult::Bool(true),
            _ => HookResult::Done,
        },
        HookRequest::ScramSecret { .. } => match rng.below(6) {
            0 => HookResult::Failed(random_error(rng)),
            1 => HookResult::ScramSecret(None),
            2 => HookResult::ScramSecret(Some(SecretSource::Password("pencil".into()))),
            _ => HookResult::ScramSecret(Some(SecretSource::Verifier(ScramSecret::from_password("pencil", b"salt", 1)))),
        },
        HookRequest::TlsConfig { .. } => match rng.below(8) {
            0 => HookResult::Failed(random_error(rng)),
            1 => HookResult::Tls(fixture().client_auth.clone()),
            _ => HookResult::Tls(fixture().plain.clone()),
        },
        HookRequest::Query(_) => match rng.below(8) {
            0 => HookResult::Failed(random_error(rng)),
            _ => HookResult::Query(QueryOutcome {
                completed: rng.below(3),
                suspended: rng.one_in(4),
                error: rng.one_in(5).then(|| random_error(rng)),
                data: rng.one_in(3).then(|| vec![b'D', 0, 0, 0, 6, 0, 0]),
            }),
        },
        HookRequest::Describe(_) => match rng.below(4) {
            0 => HookResult::Failed(random_error(rng)),
            _ => HookResult::Described(Description {
                param_types: (0..rng.below(3)).map(|_| 23).collect(),
                columns: (0..rng.below(3))
                    .map(|i| ColumnDescription { name: format!("c{i}"), type_oid: 25, type_size: -1, format: 0 })
                    .collect(),
            }),
        },
    }
}

/// A JS hook's answer as the drivers receive it.
fn js_answer(request: &HookRequest, rng: &mut Rng) -> HookAnswer {
    let value = match (request, rng.below(4)) {
        (HookRequest::Messages { count }, 0..=2) => rng.below(count + 2) as u32,
        (_, 0) => u32::MAX,
        _ => rng.below(2) as u32,
    };
    let paused = rng.one_in(6);
    let error = rng.one_in(6).then(|| random_error(rng));
    let tls = match rng.below(8) {
        0 => None,
        1 => Some(Err(random_error(rng))),
        2 => Some(Ok(fixture().client_auth.clone())),
        _ => Some(Ok(fixture().plain.clone())),
    };
    let scram = match rng.below(5) {
        0 => None,
        1 => Some(ScramAnswer::Password("pencil".into())),
        2 => Some(ScramAnswer::Verifier("SCRAM-SHA-256$1:c2FsdA==$AAAA:AAAA".into())),
        _ => Some(ScramAnswer::Verifier(ScramSecret::from_password("pencil", b"salt", 1).verifier())),
    };
    let completed = rng.below(2);
    HookAnswer { value, paused, error, tls, scram, completed, data: None, description: None }
}

/// `Session::offered` must hold exactly `count` whole messages, back to back: the drivers
/// cut them by their length fields and hand them to JS one by one.
fn check_offered(session: &Session, count: usize) {
    let offered = session.offered();
    assert!((1..=1024).contains(&count), "offered a batch of {count} messages");
    if !session.state().has_started {
        assert_eq!(count, 1, "startup packets are offered one at a time");
        assert!(offered.len() >= 8, "offered startup packet of {} bytes", offered.len());
        let len = i32::from_be_bytes([offered[0], offered[1], offered[2], offered[3]]);
        assert_eq!(len as usize, offered.len(), "offered startup packet's length field");
        return;
    }
    let mut rest = offered;
    let mut n = 0;
    while !rest.is_empty() {
        assert!(rest.len() >= 5, "offered a partial header: {rest:?}");
        let len = i32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
        assert!(len >= 4 && len as usize + 1 <= rest.len(), "offered a partial message (length {len})");
        rest = &rest[len as usize + 1..];
        n += 1;
    }
    assert_eq!(n, count, "offered {n} messages, announced {count}");
}

/// A well-formed backend message for `send()` (what a hook's `sendData` would queue).
fn backend_message(rng: &mut Rng) -> Vec<u8> {
    let mut out = vec![b"TDCZNI"[rng.below(6)]];
    let body: Vec<u8> = (0..rng.below(40)).map(|i| i as u8).collect();
    out.extend(((body.len() + 4) as i32).to_be_bytes());
    out.extend(body);
    out
}

/// The client on the other end: bytes as they are, or through a real TLS connection.
pub enum Client {
    Raw,
    Tls(Box<ClientConnection>),
}

pub struct Driver {
    pub session: Session,
    client: Client,
    rng: Rng,
    now: Instant,
    /// Output the client has not taken yet.
    to_client: Vec<u8>,
    sent: u64,
    slow_client: bool,
    /// A hook the driver has not answered yet, with what was offered with it.
    pending: Option<(HookRequest, Vec<u8>)>,
    eof: bool,
    ended: bool,
    /// The TLS client sent close_notify.
    client_closed: bool,
    /// The TLS client received close_notify.
    peer_closed: bool,
}

impl Driver {
    pub fn new(config: Arc<SessionConfig>, client: Client, seed: &[u8], slow_client: bool) -> Self {
        let now = Instant::now();
        Self {
            session: Session::new(config, SECRETS, now),
            client,
            rng: Rng::new(seed),
            now,
            to_client: Vec::new(),
            sent: 0,
            slow_client,
            pending: None,
            eof: false,
            ended: false,
            client_closed: false,
            peer_closed: false,
        }
    }

    /// Hands client bytes to the session, the two ways drivers do it.
    fn receive_wire(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.session.close_reason().is_none() && self.rng.one_in(2) {
            self.session.input_mut().extend_from_slice(bytes);
        } else {
            self.session.receive(bytes);
        }
    }

    /// The client sends `chunk` (plaintext; encrypted first over TLS).
    fn client_sends(&mut self, chunk: &[u8]) {
        let Client::Tls(conn) = &mut self.client else {
            self.receive_wire(chunk);
            return;
        };
        if !self.client_closed {
            // The client's plaintext buffer (64 KiB) never fills with inputs this size.
            let _ = conn.writer().write_all(chunk);
        }
        self.flush_client();
    }

    fn flush_client(&mut self) {
        let Client::Tls(conn) = &mut self.client else { return };
        let mut wire = Vec::new();
        while conn.wants_write() {
            if conn.write_tls(&mut wire).is_err() {
                break;
            }
        }
        self.receive_wire(&wire);
    }

    /// The client takes (part of) the output: TLS records go through the client, which must
    /// always accept what the session sealed.
    fn client_reads(&mut self, all: bool) {
        let n = if all || !self.slow_client { self.to_client.len() } else { self.rng.below(self.to_client.len() + 1) };
        let mut taken = n;
        if let Client::Tls(conn) = &mut self.client {
            let mut wire = &self.to_client[..n];
            while !wire.is_empty() {
                // Plaintext out first, so that the client has room for more records.
                drain_plaintext(conn);
                match conn.read_tls(&mut wire) {
                    // After close_notify the client reads nothing more (and rustls sends
                    // nothing after it): whatever follows is dropped.
                    Ok(0) if self.peer_closed => {
                        wire = &[];
                        break;
                    }
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let state = conn.process_new_packets();
                // Our own rustls client must accept every record the session writes: anything
                // else is a corrupt TLS stream (or an alert the session sent for no reason).
                let state = state.unwrap_or_else(|err| panic!("TLS client rejected the session's output: {err}"));
                if state.peer_has_closed() {
                    self.peer_closed = true;
                }
            }
            drain_plaintext(conn);
            // What the client could not take yet stays queued, in order.
            taken = n - wire.len();
        }
        self.to_client.drain(..taken);
        self.sent += taken as u64;
        let unsent = self.to_client.len();
        self.session.handle_backlog(self.now, unsent, self.sent);
    }

    fn advance_clock(&mut self) {
        let step = match self.rng.below(4) {
            0 => Duration::from_millis(self.rng.below(50) as u64),
            1 => Duration::from_millis(self.rng.below(2_000) as u64),
            2 => Duration::from_secs(self.rng.below(10) as u64),
            _ => Duration::from_secs(self.rng.below(90) as u64),
        };
        self.now += step;
        self.session.handle_timeout(self.now);
    }

    fn answer_pending(&mut self) {
        let Some((request, offered)) = self.pending.take() else { return };
        if self.session.close_reason().is_none() {
            // Still waiting: what was offered has not moved, whatever arrived since.
            assert!(self.session.offered() == &offered[..], "offered messages changed while the hook ran");
        }
        if self.rng.one_in(16) && !matches!(request, HookRequest::TlsConfig { .. }) {
            // The hook sent AuthenticationOk itself, or some data, before returning.
            self.session.authenticated_by_hook();
        }
        if self.rng.one_in(8) {
            let message = backend_message(&mut self.rng);
            self.session.send(&message);
        }
        let result = answer(&request, &mut self.rng);
        self.session.hook_done(result);
    }

    /// Polls until the session waits for something, answering hooks at once or leaving them
    /// pending. Returns false once the session has ended.
    fn drive(&mut self) -> bool {
        for _ in 0..256 {
            let step = self.session.poll();
            let out = self.session.take_output();
            self.to_client.extend_from_slice(&out);
            let _ = self.session.has_output();
            match step {
                Step::Wait => return true,
                Step::Close | Step::Abort => {
                    if step == Step::Abort {
                        self.to_client.clear();
                    }
                    self.ended = true;
                    return false;
                }
                Step::Hook(request) => {
                    if let HookRequest::Messages { count } = request {
                        check_offered(&self.session, count);
                    }
                    let offered = self.session.offered().to_vec();
                    assert!(self.pending.is_none(), "a hook was asked for while another is pending");
                    self.pending = Some((request, offered));
                    if self.rng.one_in(4) {
                        return true; // answered later
                    }
                    self.answer_pending();
                }
            }
        }
        // poll() kept asking for hooks that were answered at once: not a hang as such (every
        // answer let it progress), so keep going from the main loop.
        true
    }

    /// Cuts the next read off `data` and feeds it, as far as the session wants input.
    fn feed(&mut self, data: &[u8], pos: &mut usize) {
        if *pos >= data.len() {
            return;
        }
        let limit = self.session.read_limit();
        if limit == 0 && !self.ended {
            return;
        }
        let left = data.len() - *pos;
        let n = match self.rng.below(8) {
            0..=3 => 1 + self.rng.below(16),
            4 | 5 => 1 + self.rng.below(256),
            6 => 1 + self.rng.below(4096),
            _ => left,
        }
        .min(left)
        .min(limit.max(1));
        let chunk = &data[*pos..*pos + n];
        *pos += n;
        self.client_sends(chunk);
    }

    fn misc(&mut self) {
        match self.rng.below(16) {
            0 => {
                let message = backend_message(&mut self.rng);
                self.session.send(&message);
            }
            1 if self.rng.one_in(8) => self.session.end(),
            2 if self.rng.one_in(4) => {
                let deadline = self.now + Duration::from_millis(self.rng.below(3_000) as u64);
                self.session.shutdown(deadline);
            }
            // As the tokio driver (keeps nothing) and the js driver (keeps small buffers) do.
            3 => self.session.release_idle_buffers(if self.rng.one_in(2) { 0 } else { 512 }),
            4 => {
                let _ = self.session.take_timeout_changed();
                let _ = self.session.poll_timeout();
                let _ = (self.session.state(), self.session.state_version(), self.session.is_tls());
                let _ = (self.session.backlog_sent(), self.session.write_timeout(), self.session.wants_input());
            }
            // An answer larger than the output high-water mark (a big result set from a hook):
            // backpressure, paused batches and the write deadline.
            7 if self.rng.one_in(8) => {
                let mut big = vec![b'd'];
                big.extend(((OUTPUT_HIGH_WATER + 4) as i32).to_be_bytes());
                big.resize(OUTPUT_HIGH_WATER + 5, b'x');
                self.session.send(&big);
            }
            5 if self.rng.one_in(8) => {
                if let Client::Tls(conn) = &mut self.client {
                    conn.send_close_notify();
                    self.client_closed = true;
                    self.flush_client();
                }
            }
            6 if self.rng.one_in(4) => {
                if let Client::Tls(conn) = &mut self.client {
                    // TLS 1.3 KeyUpdate (an error for TLS 1.2 or mid-handshake: ignored).
                    if conn.refresh_traffic_keys().is_ok() {
                        self.flush_client();
                    }
                }
            }
            _ => {}
        }
    }

    /// After `detach()`: the driver only seals and opens records (a proxy's two pipes).
    fn detached(&mut self, data: &[u8], pos: &mut usize) {
        let rest = self.session.detach();
        assert_eq!(self.session.poll(), Step::Wait, "a detached session waits");
        drop(rest);
        for _ in 0..16 {
            if self.rng.one_in(2) {
                let out = self.session.seal(&backend_message(&mut self.rng));
                self.to_client.extend_from_slice(&out);
                self.client_reads(true);
            }
            if *pos < data.len() {
                let n = (1 + self.rng.below(512)).min(data.len() - *pos);
                let chunk = data[*pos..*pos + n].to_vec();
                *pos += n;
                let wire = match &mut self.client {
                    Client::Raw => chunk,
                    Client::Tls(conn) => {
                        if !self.client_closed {
                            let _ = conn.writer().write_all(&chunk);
                        }
                        let mut wire = Vec::new();
                        while conn.wants_write() {
                            if conn.write_tls(&mut wire).is_err() {
                                break;
                            }
                        }
                        wire
                    }
                };
                if self.session.open(&wire).is_none() {
                    break;
                }
            }
        }
        let out = self.session.seal_close();
        self.to_client.extend_from_slice(&out);
        self.client_reads(true);
    }

    /// Runs the whole conversation: `data` is what the client sends.
    pub fn run(mut self, data: &[u8]) {
        let mut pos = 0;
        let budget = 64 + data.len() * 4;
        for _ in 0..budget {
            if !self.drive() {
                break;
            }
            match self.rng.below(32) {
                0..=17 => self.feed(data, &mut pos),
                18..=20 => self.advance_clock(),
                21..=23 => self.client_reads(false),
                24..=25 => self.answer_pending(),
                26..=29 => self.misc(),
                30 if self.rng.one_in(64) => {
                    let _ = self.drive();
                    self.detached(data, &mut pos);
                    return;
                }
                _ if pos >= data.len() && !self.eof && self.rng.one_in(4) => {
                    self.eof = true;
                    self.session.receive_eof(self.now);
                }
                _ => {}
            }
            if pos >= data.len() && self.eof && self.pending.is_none() {
                break;
            }
        }
        // The end: the client reads everything and leaves, late hooks come back, and every
        // deadline passes.
        self.client_reads(true);
        self.session.receive_eof(self.now);
        self.eof = true;
        for _ in 0..8 {
            self.answer_pending();
            if !self.drive() {
                break;
            }
        }
        self.answer_pending();
        self.now += Duration::from_secs(600);
        self.session.handle_timeout(self.now);
        let _ = self.drive();
        self.client_reads(true);
        // Closed stays closed; late answers and bytes are ignored.
        if self.ended {
            self.session.receive(b"Q\x00\x00\x00\x05\x00");
            self.session.hook_done(HookResult::Done);
            let step = self.session.poll();
            assert!(matches!(step, Step::Close | Step::Abort), "a closed session woke up: {step:?}");
            let _ = self.session.take_output();
        }
    }
}

fn drain_plaintext(conn: &mut ClientConnection) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match conn.reader().read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

/// `session_stream`: the fuzz input is the raw wire (TLS records included when TLS is on).
pub fn session_stream(input: &[u8]) {
    if input.len() < HEADER_LEN {
        return;
    }
    let (header, data) = input.split_at(HEADER_LEN);
    let config = session_config(header[0], header[1]);
    Driver::new(config, Client::Raw, &header[2..], header[0] & 128 != 0).run(data);
}

/// `session_tls`: a real TLS handshake first (SSLRequest or direct), then the fuzz input is
/// the plaintext the client sends through it.
pub fn session_tls(input: &[u8]) {
    if input.len() < HEADER_LEN {
        return;
    }
    let (header, data) = input.split_at(HEADER_LEN);
    // TLS is always on here: "off" means a fixed configuration.
    let h0 = if header[0] & 12 == 0 { header[0] | 4 } else { header[0] };
    let config = session_config(h0, header[1]);
    let tls12 = header[1] & 32 != 0;
    let direct = header[1] & 64 != 0;
    let with_cert = header[1] & 128 != 0;
    let client_config = fixture().clients[usize::from(tls12)][usize::from(with_cert)].clone();
    let conn = ClientConnection::new(client_config, ServerName::try_from("localhost").unwrap()).unwrap();
    let mut driver = Driver::new(config, Client::Tls(Box::new(conn)), &header[2..], h0 & 128 != 0);
    if !direct {
        driver.session.receive(SSL_REQUEST);
        loop {
            match driver.session.poll() {
                // onMessage declines it: the built-in answer follows.
                Step::Hook(HookRequest::Messages { .. }) => {
                    driver.session.hook_done(HookResult::Messages { handled: 0, paused: false, error: None })
                }
                Step::Wait => break,
                step => panic!("SSLRequest with TLS on: {step:?}"),
            }
        }
        assert_eq!(&driver.session.take_output()[..], b"S", "SSLRequest with TLS on");
    }
    let client_auth = config_asks_client_cert(h0);
    handshake(&mut driver, client_auth);
    driver.run(data);
}

/// With the `tls` callback, the configuration `authMode: 'certificate'` servers would choose.
fn config_asks_client_cert(h0: u8) -> bool {
    h0 & 3 == 3
}

/// Shuttles the handshake through; it must complete.
fn handshake(driver: &mut Driver, client_auth: bool) {
    for _ in 0..32 {
        driver.flush_client();
        loop {
            match driver.session.poll() {
                Step::Hook(HookRequest::TlsConfig { sni_server_name }) => {
                    assert_eq!(sni_server_name.as_deref(), Some("localhost"));
                    let server = if client_auth { fixture().client_auth.clone() } else { fixture().plain.clone() };
                    driver.session.hook_done(HookResult::Tls(server));
                }
                Step::Hook(HookRequest::Messages { .. }) => {
                    driver.session.hook_done(HookResult::Messages { handled: 0, paused: false, error: None })
                }
                Step::Hook(_) => driver.session.hook_done(HookResult::Done),
                Step::Wait => break,
                step => panic!("the session ended a valid handshake: {step:?}"),
            }
        }
        let out = driver.session.take_output();
        driver.to_client.extend_from_slice(&out);
        driver.client_reads(true);
        let Client::Tls(conn) = &driver.client else { unreachable!() };
        if !conn.is_handshaking() && !conn.wants_write() {
            assert!(driver.session.state().tls_info.is_some(), "no TLS info after the handshake");
            return;
        }
    }
    panic!("the TLS handshake did not complete");
}
