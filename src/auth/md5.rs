//! PostgreSQL's nested MD5 password hash:
//! `"md5" + md5hex(md5hex(password + user) + salt)`, exactly what libpq sends.

use md5::{Digest, Md5};

/// Lowercase hex MD5 digest.
pub fn md5_hex(data: &[u8]) -> String {
    let digest = Md5::digest(data);
    let mut hex = String::with_capacity(32);
    for byte in digest.iter() {
        hex.push(char::from(b"0123456789abcdef"[(byte >> 4) as usize]));
        hex.push(char::from(b"0123456789abcdef"[(byte & 0xf) as usize]));
    }
    hex
}

/// The string a client sends in its PasswordMessage for md5 authentication.
pub fn hash_md5_password(user: &str, password: &str, salt: &[u8]) -> String {
    let inner = md5_hex([password.as_bytes(), user.as_bytes()].concat().as_slice());
    format!("md5{}", md5_hex([inner.as_bytes(), salt].concat().as_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_of_abc() {
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn matches_libpq() {
        // md5("postgrespostgres") = 3175bce1d3201d16594cebf9d7eb3f9d (the well-known pg_authid
        // hash of user postgres with password postgres), then salted with 01 02 03 04.
        assert_eq!(md5_hex(b"postgrespostgres"), "3175bce1d3201d16594cebf9d7eb3f9d");
        let expected = format!("md5{}", md5_hex(b"3175bce1d3201d16594cebf9d7eb3f9d\x01\x02\x03\x04"));
        assert_eq!(hash_md5_password("postgres", "postgres", &[1, 2, 3, 4]), expected);
    }
}
