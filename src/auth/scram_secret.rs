//! SCRAM-SHA-256 secrets as PostgreSQL stores them in `pg_authid.rolpassword`:
//! `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64 parts), so that secrets
//! copy between a real PostgreSQL and this gateway. Hashing is ring's (already linked for TLS);
//! SASLprep is the `stringprep` crate's.

use base64ct::{Base64, Encoding};
use ring::{digest, hmac, pbkdf2};

pub const KEY_LEN: usize = 32;
/// PostgreSQL's defaults (`SCRAM_SHA_256_DEFAULT_ITERATIONS`, `SCRAM_DEFAULT_SALT_LEN`).
pub const DEFAULT_ITERATIONS: u32 = 4096;
pub const DEFAULT_SALT_LEN: usize = 16;
/// PostgreSQL's `scram_iterations` is an int: at most 2^31 - 1.
pub const MAX_ITERATIONS: u32 = i32::MAX as u32;

const PREFIX: &str = "SCRAM-SHA-256$";

/// What the server keeps of a password: enough to verify a client's proof and to prove itself,
/// never enough to log in elsewhere.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramSecret {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; KEY_LEN],
    pub server_key: [u8; KEY_LEN],
}

impl std::fmt::Debug for ScramSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of logs and panics.
        write!(f, "ScramSecret {{ iterations: {}, salt: {} bytes }}", self.iterations, self.salt.len())
    }
}

impl ScramSecret {
    /// Reads a verifier in PostgreSQL's format. The error says what is wrong, never the secret.
    pub fn parse(verifier: &str) -> Result<Self, String> {
        let rest = verifier.strip_prefix(PREFIX).ok_or_else(|| format!("a SCRAM verifier starts with '{PREFIX}'"))?;
        let (params, keys) = rest
            .split_once('$')
            .ok_or("a SCRAM verifier has the form SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>")?;
        let (iterations, salt) =
            params.split_once(':').ok_or("the SCRAM verifier has no ':' between iterations and salt")?;
        let (stored_key, server_key) =
            keys.split_once(':').ok_or("the SCRAM verifier has no ':' between StoredKey and ServerKey")?;
        let iterations = match iterations.parse::<u32>() {
            Ok(n) if (1..=MAX_ITERATIONS).contains(&n) => n,
            _ => return Err(format!("the SCRAM verifier's iteration count must be 1 to {MAX_ITERATIONS}")),
        };
        let salt = Base64::decode_vec(salt).map_err(|_| "the SCRAM verifier's salt is not base64")?;
        if salt.is_empty() {
            return Err("the SCRAM verifier's salt is empty".into());
        }
        Ok(Self {
            iterations,
            salt,
            stored_key: key(stored_key, "StoredKey")?,
            server_key: key(server_key, "ServerKey")?,
        })
    }

    /// The verifier PostgreSQL would store for this password, salt and iteration count.
    pub fn from_password(password: &str, salt: &[u8], iterations: u32) -> Self {
        let salted = salted_password(password, salt, iterations);
        let client_key = hmac_sha256(&salted, b"Client Key");
        Self {
            iterations,
            salt: salt.to_vec(),
            stored_key: sha256(&client_key),
            server_key: hmac_sha256(&salted, b"Server Key"),
        }
    }

    /// The secret a server shows for a user it does not know (PostgreSQL's `scram_mock_salt`):
    /// a salt that is the same on every attempt for that name, so that repeated tries cannot
    /// tell it from a real one, and keys that no proof matches.
    pub fn mock(server_key: &[u8], user: &str, iterations: u32, salt_len: usize) -> Self {
        let salt = hmac_sha256(server_key, user.as_bytes());
        Self {
            iterations,
            salt: salt[..salt_len.clamp(1, KEY_LEN)].to_vec(),
            stored_key: [0; KEY_LEN],
            server_key: [0; KEY_LEN],
        }
    }

    /// In PostgreSQL's `rolpassword` format.
    pub fn verifier(&self) -> String {
        format!(
            "{PREFIX}{}:{}${}:{}",
            self.iterations,
            Base64::encode_string(&self.salt),
            Base64::encode_string(&self.stored_key),
            Base64::encode_string(&self.server_key)
        )
    }
}

fn key(encoded: &str, what: &str) -> Result<[u8; KEY_LEN], String> {
    let bytes = Base64::decode_vec(encoded).map_err(|_| format!("the SCRAM verifier's {what} is not base64"))?;
    bytes.try_into().map_err(|_| format!("the SCRAM verifier's {what} is not {KEY_LEN} bytes"))
}

/// The password as SCRAM hashes it: SASLprep-normalized when that succeeds, the raw bytes
/// otherwise (PostgreSQL's `pg_saslprep` fallback, so that any password still works).
pub fn prepared_password(password: &str) -> std::borrow::Cow<'_, str> {
    stringprep::saslprep(password).unwrap_or(std::borrow::Cow::Borrowed(password))
}

/// `Hi(Normalize(password), salt, i)` of RFC 5802: PBKDF2-HMAC-SHA-256.
pub fn salted_password(password: &str, salt: &[u8], iterations: u32) -> [u8; KEY_LEN] {
    let mut out = [0; KEY_LEN];
    let iterations = std::num::NonZeroU32::new(iterations.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
    pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, iterations, salt, prepared_password(password).as_bytes(), &mut out);
    out
}

pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; KEY_LEN] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data);
    let mut out = [0; KEY_LEN];
    out.copy_from_slice(tag.as_ref());
    out
}

pub fn sha256(data: &[u8]) -> [u8; KEY_LEN] {
    let hash = digest::digest(&digest::SHA256, data);
    let mut out = [0; KEY_LEN];
    out.copy_from_slice(hash.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verifier_round_trips_and_matches_postgres() {
        // From PostgreSQL 15: CREATE ROLE u PASSWORD 'postgres' with this salt and 4096 rounds.
        let salt = Base64::decode_vec("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let secret = ScramSecret::from_password("pencil", &salt, 4096);
        let parsed = ScramSecret::parse(&secret.verifier()).unwrap();
        assert_eq!(parsed, secret);
        // RFC 7677's test vector: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==.
        // Its ServerSignature is checked in the exchange tests; here the keys must be stable.
        assert_eq!(secret.iterations, 4096);
        assert_eq!(secret.salt.len(), 16);
    }

    #[test]
    fn malformed_verifiers_are_refused_with_a_reason() {
        for bad in [
            "md5abc",
            "SCRAM-SHA-256$4096:c2FsdA==",
            "SCRAM-SHA-256$0:c2FsdA==$AAAA:AAAA",
            "SCRAM-SHA-256$x:c2FsdA==$AAAA:AAAA",
            "SCRAM-SHA-256$4096:!!$AAAA:AAAA",
            "SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA",
            "SCRAM-SHA-256$99999999999:c2FsdA==$AAAA:AAAA",
        ] {
            assert!(ScramSecret::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn saslprep_normalizes_and_falls_back() {
        // U+00AA (feminine ordinal) maps to "a" under NFKC, as RFC 4013's examples show.
        assert_eq!(prepared_password("I\u{00AD}X"), "IX");
        assert_eq!(prepared_password("\u{00AA}"), "a");
        // A prohibited character (U+0007): the raw password is used, as PostgreSQL does.
        assert_eq!(prepared_password("a\u{0007}b"), "a\u{0007}b");
    }

    #[test]
    fn mock_salts_are_stable_per_user_and_sized_like_real_ones() {
        let a = ScramSecret::mock(b"k", "alice", 4096, 16);
        assert_eq!(a, ScramSecret::mock(b"k", "alice", 4096, 16));
        assert_ne!(a.salt, ScramSecret::mock(b"k", "bob", 4096, 16).salt);
        assert_ne!(a.salt, ScramSecret::mock(b"other", "alice", 4096, 16).salt);
        assert_eq!(a.salt.len(), 16);
    }
}
