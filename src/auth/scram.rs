//! SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677; channel binding
//! `tls-server-end-point` of RFC 5929), as PostgreSQL's server runs them (`auth-scram.c`): the
//! same messages, the same checks in the same order, the same SQLSTATEs, and a mock exchange
//! for unknown users that fails exactly like a wrong password.
//!
//! The exchange: AuthenticationSASL (mechanisms) -> SASLInitialResponse (client-first) ->
//! the secret is looked up (`getScramSecret`) -> AuthenticationSASLContinue (server-first) ->
//! SASLResponse (client-final) -> AuthenticationSASLFinal (server-final) + AuthenticationOk.

use std::sync::atomic::{AtomicU64, Ordering};

use base64ct::{Base64, Encoding};
use subtle::ConstantTimeEq;

use super::scram_secret::{hmac_sha256, sha256, ScramSecret, DEFAULT_ITERATIONS, DEFAULT_SALT_LEN};
use super::{password_failed, AuthRequest, AuthStep};
use crate::protocol::{PgError, SqlState};

pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
pub const SCRAM_SHA_256_PLUS: &str = "SCRAM-SHA-256-PLUS";
/// PostgreSQL reads each SASL message with a limit of 1,024 bytes (`PG_MAX_SASL_MESSAGE_LENGTH`,
/// compared with the length field, which counts itself: so 1,020 bytes of body), and a longer
/// one fails authentication (`28P01`). It also bounds every nonce and attribute.
pub const MAX_SASL_MESSAGE: usize = 1020;
/// How many users' password-derived secrets a server remembers (see [`ScramServer`]).
const DERIVED_CACHE_LIMIT: usize = 1024;
/// Random bytes in the server's nonce part, as in PostgreSQL (`SCRAM_RAW_NONCE_LEN`).
pub const SERVER_NONCE_LEN: usize = 18;
/// The only channel binding type PostgreSQL (and this server) supports.
const CHANNEL_BINDING_TYPE: &str = "tls-server-end-point";

/// SCRAM state shared by all sessions of the process ([`ScramServer::process`]).
///
/// Unknown users get a mock secret whose salt comes from a per-server random key and the user
/// name (the same on every attempt), and whose iteration count and salt length are those of the
/// first real secret this server served (PostgreSQL's defaults until then). Fixed once seen, so
/// that an attacker cannot make the mock's shape follow whatever user was looked up last.
///
/// A `{ password }` secret needs a key derivation (PBKDF2, `iterations` rounds), which
/// PostgreSQL never runs during a login: its result is remembered per user (the password
/// compared in constant time), so that repeated logins, and a flood of them, do not pay it again.
pub struct ScramServer {
    mock_key: [u8; 32],
    /// iterations (low 32 bits) | salt length (high 32); 0 until the first real secret.
    shape: AtomicU64,
    derived: std::sync::Mutex<std::collections::HashMap<String, (Vec<u8>, ScramSecret)>>,
}

impl std::fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScramServer { .. }")
    }
}

impl ScramServer {
    pub fn new(mock_key: [u8; 32]) -> Self {
        Self { mock_key, shape: AtomicU64::new(0), derived: Default::default() }
    }

    /// The one instance of the process, with a random key made on first use. Shared by every
    /// server and connection (the JS-thread driver builds a configuration per connection, and a
    /// mock salt must be the same on every attempt).
    pub fn process(random_key: impl FnOnce() -> [u8; 32]) -> std::sync::Arc<Self> {
        static PROCESS: std::sync::OnceLock<std::sync::Arc<ScramServer>> = std::sync::OnceLock::new();
        PROCESS.get_or_init(|| std::sync::Arc::new(Self::new(random_key()))).clone()
    }

    /// The secret of a user who has a plaintext password: a salt that stays the same for that
    /// user on this server (a retrying client sees what a stored secret would show).
    pub fn from_password(&self, user: &str, password: &str) -> ScramSecret {
        let mut cache = self.derived.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((known, secret)) = cache.get(user) {
            if known.as_slice().ct_eq(password.as_bytes()).unwrap_u8() == 1 {
                return secret.clone();
            }
        }
        let salt = ScramSecret::mock(&self.mock_key, user, DEFAULT_ITERATIONS, DEFAULT_SALT_LEN).salt;
        let secret = ScramSecret::from_password(password, &salt, DEFAULT_ITERATIONS);
        if cache.len() >= DERIVED_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(user.to_string(), (password.as_bytes().to_vec(), secret.clone()));
        secret
    }

    fn observe(&self, secret: &ScramSecret) {
        let shape = u64::from(secret.iterations) | (secret.salt.len() as u64) << 32;
        let _ = self.shape.compare_exchange(0, shape, Ordering::Relaxed, Ordering::Relaxed);
    }

    fn mock(&self, user: &str) -> ScramSecret {
        let (iterations, salt_len) = match self.shape.load(Ordering::Relaxed) {
            0 => (DEFAULT_ITERATIONS, DEFAULT_SALT_LEN),
            shape => (shape as u32, (shape >> 32) as usize),
        };
        ScramSecret::mock(&self.mock_key, user, iterations, salt_len)
    }
}

/// Where a user's secret came from (the answer of `getScramSecret`).
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    Verifier(ScramSecret),
    Password(String),
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Passwords stay out of logs and error messages.
        match self {
            Self::Verifier(secret) => write!(f, "Verifier({secret:?})"),
            Self::Password(_) => f.write_str("Password(..)"),
        }
    }
}

#[derive(Debug)]
struct ClientFirst {
    /// `n`, `y` or `p`.
    cbind_flag: u8,
    bare: String,
    nonce: String,
}

#[derive(Debug)]
enum Stage {
    /// AuthenticationSASL sent; waiting for the SASLInitialResponse.
    Initial,
    /// The client chose a mechanism but sent no initial response; the client-first-message
    /// comes in a SASLResponse.
    FirstInResponse {
        plus: bool,
    },
    /// Waiting for the user's secret.
    Secret {
        plus: bool,
        first: ClientFirst,
    },
    /// server-first sent; waiting for the client-final-message.
    Final {
        plus: bool,
        first: ClientFirst,
        server_first: String,
        secret: ScramSecret,
        doomed: bool,
    },
    Done,
}

#[derive(Debug)]
pub struct ScramExchange {
    user: String,
    /// The `tls-server-end-point` hash when `-PLUS` is offered (TLS ends in this server).
    channel_binding: Option<Vec<u8>>,
    server_nonce: String,
    stage: Stage,
}

impl ScramExchange {
    /// Starts an exchange. `channel_binding`: the certificate hash when TLS ends here (then
    /// `-PLUS` is offered too). `random`: fresh bytes from the OS CSPRNG for the server nonce.
    pub fn start(user: &str, channel_binding: Option<Vec<u8>>, random: &[u8; SERVER_NONCE_LEN]) -> (Self, AuthStep) {
        let plus = channel_binding.is_some();
        let exchange = Self {
            user: user.to_string(),
            channel_binding,
            server_nonce: Base64::encode_string(random),
            stage: Stage::Initial,
        };
        (exchange, AuthStep::Request(AuthRequest::Sasl { plus }))
    }

    /// The body of a client `p` message (SASLInitialResponse or SASLResponse).
    pub fn receive(&mut self, body: &[u8]) -> AuthStep {
        if body.len() > MAX_SASL_MESSAGE {
            // PostgreSQL: "invalid message length" to its log, then the usual failure.
            self.stage = Stage::Done;
            return AuthStep::Fail(password_failed(&self.user));
        }
        let result = match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Initial => self.initial_response(body),
            Stage::FirstInResponse { plus } => self.client_first(plus, body),
            Stage::Final { plus, first, server_first, secret, doomed } => {
                self.client_final(plus, &first, &server_first, &secret, doomed, body)
            }
            Stage::Secret { .. } | Stage::Done => Err(protocol_violation(
                "unexpected SASL response: authentication is not waiting for one".to_string(),
                None,
            )),
        };
        result.unwrap_or_else(AuthStep::Fail)
    }

    /// The user's secret (`None`: no such user). Unknown users get a mock secret and go on as
    /// if known; their proof can never match.
    pub fn secret(&mut self, found: Option<SecretSource>, server: &ScramServer) -> AuthStep {
        let Stage::Secret { plus, first } = std::mem::replace(&mut self.stage, Stage::Done) else {
            return AuthStep::Fail(protocol_violation("unexpected SCRAM secret".into(), None));
        };
        let (secret, doomed) = match found {
            Some(SecretSource::Verifier(secret)) => {
                server.observe(&secret);
                (secret, false)
            }
            Some(SecretSource::Password(password)) => {
                let secret = server.from_password(&self.user, &password);
                server.observe(&secret);
                (secret, false)
            }
            None => (server.mock(&self.user), true),
        };
        let server_first = format!(
            "r={}{},s={},i={}",
            first.nonce,
            self.server_nonce,
            Base64::encode_string(&secret.salt),
            secret.iterations
        );
        let step = AuthStep::Request(AuthRequest::SaslContinue(server_first.clone().into_bytes()));
        self.stage = Stage::Final { plus, first, server_first, secret, doomed };
        step
    }

    /// SASLInitialResponse: the mechanism, then the client-first-message (length -1: none).
    fn initial_response(&mut self, body: &[u8]) -> Result<AuthStep, PgError> {
        let mut reader = crate::protocol::reader::Reader::new(body);
        let mechanism = reader.cbytes("SASL mechanism").map_err(invalid_message)?;
        let plus = if mechanism == SCRAM_SHA_256_PLUS.as_bytes() && self.channel_binding.is_some() {
            true
        } else if mechanism == SCRAM_SHA_256.as_bytes() {
            false
        } else {
            return Err(protocol_violation("client selected an invalid SASL authentication mechanism".into(), None));
        };
        let len = reader.i32("SASL initial response length").map_err(invalid_message)?;
        if len == -1 {
            // No initial response: an empty challenge asks for it (RFC 4422, section 5).
            if !reader.is_empty() {
                return Err(invalid_message(()));
            }
            self.stage = Stage::FirstInResponse { plus };
            return Ok(AuthStep::Request(AuthRequest::SaslContinue(Vec::new())));
        }
        // A negative length other than -1, or one past the end: PostgreSQL's
        // `pq_getmsgbytes` check (the PgBouncer CVE-2026-6664 shape: no arithmetic on it).
        let data = usize::try_from(len)
            .ok()
            .and_then(|len| reader.bytes(len, "SASL initial response").ok())
            .ok_or_else(|| protocol_violation("insufficient data left in message".into(), None))?;
        if !reader.is_empty() {
            return Err(invalid_message(()));
        }
        self.client_first(plus, data)
    }

    fn client_first(&mut self, plus: bool, data: &[u8]) -> Result<AuthStep, PgError> {
        let input = sasl_text(data)?;
        let first = read_client_first(input, plus, self.channel_binding.is_some())?;
        self.stage = Stage::Secret { plus, first };
        Ok(AuthStep::LookupSecret)
    }

    fn client_final(
        &mut self,
        plus: bool,
        first: &ClientFirst,
        server_first: &str,
        secret: &ScramSecret,
        doomed: bool,
        data: &[u8],
    ) -> Result<AuthStep, PgError> {
        let input = sasl_text(data)?;
        let mut attrs = Attributes::new(input);
        let channel_binding = attrs.expect('c')?;
        if plus {
            let mut expected = format!("p={CHANNEL_BINDING_TYPE},,").into_bytes();
            expected.extend_from_slice(self.channel_binding.as_deref().unwrap_or_default());
            if channel_binding.as_bytes().ct_eq(Base64::encode_string(&expected).as_bytes()).unwrap_u8() != 1 {
                return Err(PgError::fatal(
                    SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
                    "SCRAM channel binding check failed",
                ));
            }
        } else if !(channel_binding == "biws" && first.cbind_flag == b'n'
            || channel_binding == "eSws" && first.cbind_flag == b'y')
        {
            return Err(protocol_violation(
                "unexpected SCRAM channel-binding attribute in client-final-message".into(),
                None,
            ));
        }
        let final_nonce = attrs.expect('r')?;
        // Extensions may follow; the proof is last.
        let (without_proof, proof) = loop {
            let before = attrs.consumed();
            let (name, value) = attrs.any()?;
            if name == 'p' {
                break (&input[..before.saturating_sub(1)], value);
            }
        };
        let proof: [u8; 32] = Base64::decode_vec(proof)
            .ok()
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| malformed("Malformed proof in client-final-message."))?;
        if !attrs.at_end() {
            return Err(malformed("Garbage found at the end of client-final-message."));
        }
        let expected_nonce = format!("{}{}", first.nonce, self.server_nonce);
        if final_nonce.as_bytes().ct_eq(expected_nonce.as_bytes()).unwrap_u8() != 1 {
            return Err(protocol_violation("invalid SCRAM response".into(), Some("Nonce does not match.")));
        }
        let auth_message = format!("{},{},{}", first.bare, server_first, without_proof);
        // The proof is checked even when doomed, so that a mock costs what a real one does.
        let client_signature = hmac_sha256(&secret.stored_key, auth_message.as_bytes());
        let mut client_key = proof;
        for (k, s) in client_key.iter_mut().zip(client_signature) {
            *k ^= s;
        }
        let matches = sha256(&client_key).ct_eq(&secret.stored_key).unwrap_u8() == 1;
        if !matches || doomed {
            return Err(password_failed(&self.user));
        }
        let server_signature = hmac_sha256(&secret.server_key, auth_message.as_bytes());
        let server_final = format!("v={}", Base64::encode_string(&server_signature));
        Ok(AuthStep::SaslOk(server_final.into_bytes()))
    }
}

/// PostgreSQL's checks on any SASL message: not empty, no NUL inside, and (ours) UTF-8, which
/// every valid SCRAM message is.
fn sasl_text(data: &[u8]) -> Result<&str, PgError> {
    if data.is_empty() {
        return Err(malformed("The message is empty."));
    }
    if data.contains(&0) {
        return Err(malformed("Message length does not match input length."));
    }
    std::str::from_utf8(data).map_err(|_| malformed("The message is not valid UTF-8."))
}

fn read_client_first(input: &str, plus: bool, plus_offered: bool) -> Result<ClientFirst, PgError> {
    let bytes = input.as_bytes();
    let flag = bytes[0];
    let rest = match flag {
        b'n' | b'y' => {
            if plus {
                return Err(malformed(
                    "The client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not include channel binding data.",
                ));
            }
            if flag == b'y' && plus_offered {
                // The client can bind but thinks we cannot: someone removed -PLUS on the way.
                return Err(PgError::fatal(
                    SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
                    "SCRAM channel binding negotiation error",
                )
                .with_detail(
                    "The client supports SCRAM channel binding but thinks the server does not.  However, this server does support channel binding.",
                ));
            }
            let rest = &input[1..];
            rest.strip_prefix(',').ok_or_else(|| {
                malformed(&format!("Comma expected, but found character {}.", describe(rest.chars().next())))
            })?
        }
        b'p' => {
            if !plus {
                return Err(malformed(
                    "The client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes channel binding data.",
                ));
            }
            let mut attrs = Attributes::new(input);
            let cb_type = attrs.expect('p')?;
            if cb_type != CHANNEL_BINDING_TYPE {
                return Err(protocol_violation(
                    format!("unsupported SCRAM channel-binding type \"{}\"", sanitize(cb_type)),
                    None,
                ));
            }
            &input[attrs.consumed()..]
        }
        _ => return Err(malformed(&format!("Unexpected channel-binding flag {}.", describe(input.chars().next())))),
    };
    if rest.starts_with('a') {
        return Err(PgError::fatal(
            SqlState::FEATURE_NOT_SUPPORTED,
            "client uses authorization identity, but it is not supported",
        ));
    }
    let bare = rest.strip_prefix(',').ok_or_else(|| {
        malformed(&format!("Unexpected attribute {} in client-first-message.", describe(rest.chars().next())))
    })?;
    if bare.starts_with('m') {
        return Err(PgError::fatal(SqlState::FEATURE_NOT_SUPPORTED, "client requires an unsupported SCRAM extension"));
    }
    let mut attrs = Attributes::new(bare);
    // The user name here is ignored: the StartupMessage's counts (libpq sends it empty).
    attrs.expect('n')?;
    let nonce = attrs.expect('r')?;
    if !nonce.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',') {
        return Err(protocol_violation("non-printable characters in SCRAM nonce".into(), None));
    }
    // Optional extensions: read and ignored.
    while !attrs.at_end() {
        attrs.any()?;
    }
    Ok(ClientFirst { cbind_flag: flag, bare: bare.to_string(), nonce: nonce.to_string() })
}

/// A cursor over `attr=value,attr=value`.
struct Attributes<'a> {
    input: &'a str,
    at: usize,
}

impl<'a> Attributes<'a> {
    fn new(input: &'a str) -> Self {
        Self { input, at: 0 }
    }

    fn consumed(&self) -> usize {
        self.at
    }

    fn at_end(&self) -> bool {
        self.at >= self.input.len()
    }

    /// The value of the next attribute, which must be `name`.
    fn expect(&mut self, name: char) -> Result<&'a str, PgError> {
        let found = self.input[self.at..].chars().next();
        if found != Some(name) {
            return Err(malformed(&format!("Expected attribute \"{name}\" but found {}.", describe(found))));
        }
        self.value(name)
    }

    /// The next attribute, whatever its name (a letter).
    fn any(&mut self) -> Result<(char, &'a str), PgError> {
        match self.input[self.at..].chars().next() {
            Some(c) if c.is_ascii_alphabetic() => Ok((c, self.value(c)?)),
            None => Err(malformed("Attribute expected, but found end of string.")),
            Some(c) => {
                Err(malformed(&format!("Attribute expected, but found invalid character {}.", describe(Some(c)))))
            }
        }
    }

    fn value(&mut self, name: char) -> Result<&'a str, PgError> {
        let rest = &self.input[self.at + name.len_utf8()..];
        let Some(rest) = rest.strip_prefix('=') else {
            return Err(malformed(&format!("Expected character \"=\" for attribute \"{name}\".")));
        };
        let end = rest.find(',').unwrap_or(rest.len());
        let value = &rest[..end];
        // Past the value and its comma, if any.
        self.at = self.input.len() - rest.len() + end + usize::from(end < rest.len());
        Ok(value)
    }
}

fn malformed(detail: &str) -> PgError {
    protocol_violation("malformed SCRAM message".into(), Some(detail))
}

fn protocol_violation(message: String, detail: Option<&str>) -> PgError {
    let err = PgError::fatal(SqlState::PROTOCOL_VIOLATION, message);
    match detail {
        Some(detail) => err.with_detail(detail),
        None => err,
    }
}

fn invalid_message<E>(_: E) -> PgError {
    protocol_violation("invalid message format".into(), None)
}

fn describe(c: Option<char>) -> String {
    match c {
        None => "end of string".into(),
        Some(c) if c.is_ascii_graphic() => format!("\"{c}\""),
        Some(c) => format!("0x{:02x}", c as u32),
    }
}

fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scram_secret::salted_password;

    const NONCE: [u8; SERVER_NONCE_LEN] = [7; SERVER_NONCE_LEN];

    fn server() -> ScramServer {
        ScramServer::new([9; 32])
    }

    fn initial(mechanism: &str, data: &[u8]) -> Vec<u8> {
        let mut body = mechanism.as_bytes().to_vec();
        body.push(0);
        body.extend_from_slice(&(data.len() as i32).to_be_bytes());
        body.extend_from_slice(data);
        body
    }

    /// A client per RFC 5802, for the tests: its final message for a server-first.
    fn client_final(password: &str, client_first_bare: &str, server_first: &str, cbind: &str) -> String {
        let mut parts = server_first.split(',');
        let nonce = &parts.next().unwrap()[2..];
        let salt = Base64::decode_vec(&parts.next().unwrap()[2..]).unwrap();
        let iterations: u32 = parts.next().unwrap()[2..].parse().unwrap();
        let salted = salted_password(password, &salt, iterations);
        let client_key = hmac_sha256(&salted, b"Client Key");
        let without_proof = format!("c={cbind},r={nonce}");
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = hmac_sha256(&sha256(&client_key), auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(signature).map(|(a, b)| a ^ b).collect();
        format!("{without_proof},p={}", Base64::encode_string(&proof))
    }

    fn continue_data(step: AuthStep) -> String {
        match step {
            AuthStep::Request(AuthRequest::SaslContinue(data)) => String::from_utf8(data).unwrap(),
            other => panic!("expected SASLContinue, got {other:?}"),
        }
    }

    fn fail_code(step: AuthStep) -> String {
        match step {
            AuthStep::Fail(err) => err.code.to_string(),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn rfc_7677_test_vector() {
        // RFC 7677, section 3: user "user", password "pencil".
        let salt = Base64::decode_vec("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let secret = ScramSecret::from_password("pencil", &salt, 4096);
        let bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let final_without_proof = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let auth = format!("{bare},{server_first},{final_without_proof}");
        let client_signature = hmac_sha256(&secret.stored_key, auth.as_bytes());
        let salted = salted_password("pencil", &salt, 4096);
        let client_key = hmac_sha256(&salted, b"Client Key");
        let proof: Vec<u8> = client_key.iter().zip(client_signature).map(|(a, b)| a ^ b).collect();
        assert_eq!(Base64::encode_string(&proof), "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
        let server_signature = hmac_sha256(&secret.server_key, auth.as_bytes());
        assert_eq!(Base64::encode_string(&server_signature), "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    }

    fn run(password: &str, found: Option<SecretSource>) -> AuthStep {
        let (mut exchange, step) = ScramExchange::start("bob", None, &NONCE);
        assert_eq!(step, AuthStep::Request(AuthRequest::Sasl { plus: false }));
        let bare = "n=,r=clientnonce123";
        assert_eq!(exchange.receive(&initial(SCRAM_SHA_256, format!("n,,{bare}").as_bytes())), AuthStep::LookupSecret);
        let server_first = continue_data(exchange.secret(found, &server()));
        exchange.receive(client_final(password, bare, &server_first, "biws").as_bytes())
    }

    #[test]
    fn the_right_password_succeeds_with_the_server_signature() {
        let secret = ScramSecret::from_password("pw", b"0123456789abcdef", 4096);
        assert!(matches!(run("pw", Some(SecretSource::Verifier(secret))), AuthStep::SaslOk(v) if v.starts_with(b"v=")));
        assert!(matches!(run("pw", Some(SecretSource::Password("pw".into()))), AuthStep::SaslOk(_)));
    }

    #[test]
    fn wrong_password_and_unknown_user_fail_alike() {
        let secret = ScramSecret::from_password("pw", b"0123456789abcdef", 4096);
        let AuthStep::Fail(wrong) = run("nope", Some(SecretSource::Verifier(secret))) else { panic!() };
        let AuthStep::Fail(unknown) = run("pw", None) else { panic!() };
        assert_eq!(wrong, unknown);
        assert_eq!(wrong.code, "28P01");
        assert_eq!(wrong.message, "password authentication failed for user \"bob\"");
    }

    #[test]
    fn hostile_client_first_messages_get_postgres_sqlstates() {
        let cases: &[(&str, &[u8], &str)] = &[
            ("SCRAM-SHA-1", b"n,,n=,r=abc", "08P01"),
            (SCRAM_SHA_256_PLUS, b"p=tls-server-end-point,,n=,r=abc", "08P01"),
            (SCRAM_SHA_256, b"p=tls-server-end-point,,n=,r=abc", "08P01"),
            (SCRAM_SHA_256, b"", "08P01"),
            (SCRAM_SHA_256, b"n,,n=,r=a\0b", "08P01"),
            (SCRAM_SHA_256, b"x,,n=,r=abc", "08P01"),
            (SCRAM_SHA_256, b"n,a=bob,n=,r=abc", "0A000"),
            (SCRAM_SHA_256, b"n,,m=ext,n=,r=abc", "0A000"),
            (SCRAM_SHA_256, b"n,,r=abc", "08P01"),
            (SCRAM_SHA_256, b"n,,n=,r=a\x7fc", "08P01"),
            (SCRAM_SHA_256, b"n,,n=,r=abc,1=x", "08P01"),
            (SCRAM_SHA_256, b"n", "08P01"),
            (SCRAM_SHA_256, b"n,", "08P01"),
        ];
        for (mechanism, data, code) in cases {
            let (mut exchange, _) = ScramExchange::start("bob", None, &NONCE);
            assert_eq!(fail_code(exchange.receive(&initial(mechanism, data))), *code, "{mechanism} {data:?}");
        }
    }

    #[test]
    fn hostile_lengths_never_panic() {
        for len in [i32::MIN, -2, 5, 1 << 30, i32::MAX] {
            let mut body = b"SCRAM-SHA-256\0".to_vec();
            body.extend_from_slice(&len.to_be_bytes());
            body.extend_from_slice(b"n,,");
            let (mut exchange, _) = ScramExchange::start("bob", None, &NONCE);
            assert_eq!(fail_code(exchange.receive(&body)), "08P01", "{len}");
        }
        let (mut exchange, _) = ScramExchange::start("bob", None, &NONCE);
        assert_eq!(fail_code(exchange.receive(b"SCRAM-SHA-256")), "08P01", "no terminator");
        // Over PostgreSQL's SASL limit (a very long nonce): 28P01, as there.
        let long = format!("n,,n=,r={}", "x".repeat(2000));
        let (mut exchange, _) = ScramExchange::start("bob", None, &NONCE);
        assert_eq!(fail_code(exchange.receive(&initial(SCRAM_SHA_256, long.as_bytes()))), "28P01");
    }

    #[test]
    fn channel_binding_is_checked_and_downgrades_refused() {
        let hash = vec![0xab; 32];
        let (mut exchange, step) = ScramExchange::start("bob", Some(hash.clone()), &NONCE);
        assert_eq!(step, AuthStep::Request(AuthRequest::Sasl { plus: true }));
        assert_eq!(fail_code(exchange.receive(&initial(SCRAM_SHA_256, b"y,,n=,r=abc"))), "28000", "downgrade");
        let (mut exchange, _) = ScramExchange::start("bob", Some(hash.clone()), &NONCE);
        assert_eq!(fail_code(exchange.receive(&initial(SCRAM_SHA_256_PLUS, b"n,,n=,r=abc"))), "08P01");
        let (mut exchange, _) = ScramExchange::start("bob", Some(hash.clone()), &NONCE);
        assert_eq!(fail_code(exchange.receive(&initial(SCRAM_SHA_256_PLUS, b"p=tls-unique,,n=,r=abc"))), "08P01");

        let secret = ScramSecret::from_password("pw", b"0123456789abcdef", 4096);
        let bare = "n=,r=abc";
        let good = Base64::encode_string(&[b"p=tls-server-end-point,,".as_slice(), &hash].concat());
        for (cbind, ok) in
            [(good.as_str(), true), (Base64::encode_string(b"p=tls-server-end-point,,xx").as_str(), false)]
        {
            let (mut exchange, _) = ScramExchange::start("bob", Some(hash.clone()), &NONCE);
            let first = format!("p=tls-server-end-point,,{bare}");
            assert_eq!(exchange.receive(&initial(SCRAM_SHA_256_PLUS, first.as_bytes())), AuthStep::LookupSecret);
            let server_first = continue_data(exchange.secret(Some(SecretSource::Verifier(secret.clone())), &server()));
            let step = exchange.receive(client_final("pw", bare, &server_first, cbind).as_bytes());
            if ok {
                assert!(matches!(step, AuthStep::SaslOk(_)), "{step:?}");
            } else {
                assert_eq!(fail_code(step), "28000");
            }
        }
    }

    #[test]
    fn a_final_message_with_a_foreign_nonce_or_no_proof_fails() {
        let secret = ScramSecret::from_password("pw", b"0123456789abcdef", 4096);
        let bare = "n=,r=abc";
        for (final_message, code) in [
            ("c=biws,r=abcWRONG,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "08P01"),
            ("c=biws,r=abc", "08P01"),
            ("c=eSws,r=abc,p=AA==", "08P01"),
            ("r=abc", "08P01"),
        ] {
            let (mut exchange, _) = ScramExchange::start("bob", None, &NONCE);
            exchange.receive(&initial(SCRAM_SHA_256, format!("n,,{bare}").as_bytes()));
            exchange.secret(Some(SecretSource::Verifier(secret.clone())), &server());
            assert_eq!(fail_code(exchange.receive(final_message.as_bytes())), code, "{final_message}");
        }
    }

    #[test]
    fn the_mock_keeps_the_first_real_shape_and_passwords_derive_once() {
        let server = server();
        assert_eq!(server.mock("x").iterations, DEFAULT_ITERATIONS);
        server.observe(&ScramSecret::from_password("pw", &[1; 20], 10));
        server.observe(&ScramSecret::from_password("pw", &[1; 8], 99));
        let mock = server.mock("x");
        assert_eq!((mock.iterations, mock.salt.len()), (10, 20), "the first shape sticks");
        let first = server.from_password("bob", "pw");
        assert_eq!(server.from_password("bob", "pw"), first);
        assert_ne!(server.from_password("bob", "other"), first, "a changed password derives again");
    }

    #[test]
    fn an_initial_response_may_come_later() {
        let (mut exchange, _) = ScramExchange::start("bob", None, &NONCE);
        let mut body = b"SCRAM-SHA-256\0".to_vec();
        body.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(continue_data(exchange.receive(&body)), "");
        assert_eq!(exchange.receive(b"n,,n=,r=abc"), AuthStep::LookupSecret);
    }
}
