//! The two certificate facts we need: the subject's common name (`certificate` authentication)
//! and the `tls-server-end-point` hash (SCRAM channel binding). A minimal DER walk over the fixed X.509 layout (RFC 5280 §4.1), bounds-checked at every
//! step, instead of a general X.509 parser.

/// One DER element: (tag, contents, rest).
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
/// 2.5.4.3, id-at-commonName.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// The subject CN of a DER certificate, if it has one (the last CN if several).
pub fn subject_common_name(der: &[u8]) -> Option<String> {
    let (tag, certificate, _) = element(der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, mut tbs, _) = element(certificate)?;
    if tag != SEQUENCE {
        return None;
    }
    // version [0] EXPLICIT (optional), serialNumber, signature, issuer, validity, subject
    let (tag, _, rest) = element(tbs)?;
    if tag == 0xa0 {
        tbs = rest;
        tbs = element(tbs)?.2; // serialNumber
    } else {
        tbs = rest; // that was the serialNumber
    }
    for _ in 0..3 {
        tbs = element(tbs)?.2; // signature, issuer, validity
    }
    let (tag, mut subject, _) = element(tbs)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut common_name = None;
    while !subject.is_empty() {
        let (tag, mut set, rest) = element(subject)?;
        subject = rest;
        if tag != SET {
            return None;
        }
        while !set.is_empty() {
            let (tag, attribute, rest) = element(set)?;
            set = rest;
            if tag != SEQUENCE {
                return None;
            }
            let (tag, oid, value) = element(attribute)?;
            if tag == OID && oid == COMMON_NAME {
                let (string_tag, bytes, _) = element(value)?;
                common_name = Some(match string_tag {
                    // BMPString: UTF-16BE.
                    0x1e => String::from_utf16_lossy(
                        &bytes.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect::<Vec<_>>(),
                    ),
                    _ => String::from_utf8_lossy(bytes).into_owned(),
                });
            }
        }
    }
    common_name
}

/// The `tls-server-end-point` channel binding data of RFC 5929, section 4.1: the certificate
/// hashed with the hash of its signature algorithm, SHA-256 for MD5 and SHA-1. `None` when the
/// algorithm names no hash (Ed25519, RSASSA-PSS): PostgreSQL cannot bind to those either.
pub fn tls_server_end_point(der: &[u8]) -> Option<Vec<u8>> {
    use ring::digest::{digest, SHA256, SHA384, SHA512};
    let (tag, certificate, _) = element(der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (_tbs_tag, _tbs, rest) = element(certificate)?;
    let (tag, algorithm, _) = element(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, oid, _) = element(algorithm)?;
    if tag != OID {
        return None;
    }
    let hash = match oid {
        // 1.2.840.113549.1.1.{4,5,11,12,13}: md5, sha1, sha256, sha384, sha512 WithRSAEncryption.
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, n] => match n {
            4 | 5 | 11 => &SHA256,
            12 => &SHA384,
            13 => &SHA512,
            _ => return None,
        },
        // 1.2.840.10045.4.1: ecdsa-with-SHA1.
        [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01] => &SHA256,
        // 1.2.840.10045.4.3.{2,3,4}: ecdsa-with-SHA256/384/512.
        [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, n] => match n {
            2 => &SHA256,
            3 => &SHA384,
            4 => &SHA512,
            _ => return None,
        },
        _ => return None,
    };
    Some(digest(hash, der).as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal certificate-shaped DER with the given subject CN.
    fn fake_certificate(cn: &str) -> Vec<u8> {
        fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
            let mut out = vec![tag];
            if body.len() < 0x80 {
                out.push(body.len() as u8);
            } else {
                out.extend([0x82, (body.len() >> 8) as u8, body.len() as u8]);
            }
            out.extend(body);
            out
        }
        let name = |cn: &str| {
            tlv(SEQUENCE, &tlv(SET, &tlv(SEQUENCE, &[tlv(OID, COMMON_NAME), tlv(0x0c, cn.as_bytes())].concat())))
        };
        let tbs = [
            tlv(0xa0, &tlv(0x02, &[2])),
            tlv(0x02, &[1, 2, 3]),
            tlv(SEQUENCE, &tlv(OID, &[1, 2])),
            name("Issuer CA"),
            tlv(SEQUENCE, &[]),
            name(cn),
        ]
        .concat();
        tlv(SEQUENCE, &[tlv(SEQUENCE, &tbs), tlv(SEQUENCE, &[]), tlv(0x03, &[0])].concat())
    }

    #[test]
    fn reads_the_subject_not_the_issuer() {
        assert_eq!(subject_common_name(&fake_certificate("alice")).as_deref(), Some("alice"));
        let long = "x".repeat(300);
        assert_eq!(subject_common_name(&fake_certificate(&long)), Some(long));
    }

    #[test]
    fn truncated_or_garbage_der_is_none_not_a_panic() {
        let good = fake_certificate("bob");
        for cut in 0..good.len() {
            let _ = subject_common_name(&good[..cut]);
        }
        assert_eq!(subject_common_name(&[]), None);
        assert_eq!(subject_common_name(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(subject_common_name(b"not a certificate"), None);
    }
}
