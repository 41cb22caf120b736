//! TLS conversations with the session, in memory: a rustls client on one side, the session on
//! the other, bytes shuttled by hand.

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use super::*;
use crate::auth::AuthMode;
use crate::protocol::startup::StartupMessage;
use crate::tls::{TlsMaterial, TlsServer};

const CA: &[u8] = include_bytes!("../tls/testdata/ca-cert.pem");
const CERT: &[u8] = include_bytes!("../tls/testdata/server-cert.pem");
const KEY: &[u8] = include_bytes!("../tls/testdata/server-key.pem");
const SSL_REQUEST: &[u8] = b"\x00\x00\x00\x08\x04\xd2\x16\x2f";

fn tls_session(hooks: HookSet) -> Session {
    let material = TlsMaterial { key: KEY.to_vec(), cert: CERT.to_vec(), ca: None, passphrase: None };
    let server = Arc::new(TlsServer::new(&material, false).expect("test certificate"));
    let config = SessionConfig {
        auth_mode: AuthMode::None,
        hooks,
        tls: Some(TlsSettings { fixed: Some(server) }),
        ..SessionConfig::default()
    };
    Session::new(
        Arc::new(config),
        Secrets { md5_salt: [1, 2, 3, 4], process_id: 1, secret_key: [0; 4], scram_nonce: [5; 18] },
        std::time::Instant::now(),
    )
}

fn client(alpn: &[&[u8]]) -> ClientConnection {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(CA) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap()).unwrap()
}

/// Shuttles bytes between client and session until neither has anything to say; returns the
/// plaintext the client received and whether the session closed.
fn shuttle(client: &mut ClientConnection, session: &mut Session) -> (Vec<u8>, bool) {
    let mut plaintext = Vec::new();
    let mut closed = false;
    for _ in 0..50 {
        let mut to_server = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut to_server).unwrap();
        }
        session.receive(&to_server);
        let step = session.poll();
        let to_client = session.take_output();
        if let Step::Hook(_) = step {
            session.hook_done(HookResult::Done);
        }
        closed |= step == Step::Close;
        let mut wire = &to_client[..];
        while !wire.is_empty() {
            client.read_tls(&mut wire).unwrap();
        }
        if client.process_new_packets().is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        while let Ok(n) = client.reader().read(&mut buf) {
            if n == 0 {
                break;
            }
            plaintext.extend_from_slice(&buf[..n]);
        }
        if to_server.is_empty() && to_client.is_empty() {
            break;
        }
    }
    (plaintext, closed)
}

fn startup_bytes(user: &str) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    StartupMessage { major: 3, minor: 0, parameters: vec![("user".into(), user.into())] }.encode(&mut out);
    out.to_vec()
}

#[test]
fn ssl_request_then_handshake_then_the_whole_startup_inside_tls() {
    let hooks = HookSet { on_tls_upgrade: true, ..HookSet::default() };
    let mut session = tls_session(hooks);
    session.receive(SSL_REQUEST);
    assert_eq!(session.poll(), Step::Wait);
    assert_eq!(&session.take_output()[..], b"S");
    let mut client = client(&[b"postgresql"]);
    shuttle(&mut client, &mut session);
    assert!(!client.is_handshaking());
    let info = session.state().tls_info.clone().expect("tls info after the handshake");
    assert_eq!(info.sni_server_name.as_deref(), Some("localhost"));
    assert_eq!(info.alpn_protocol.as_deref(), Some("postgresql"));
    client.writer().write_all(&startup_bytes("alice")).unwrap();
    let (plaintext, closed) = shuttle(&mut client, &mut session);
    assert!(!closed);
    assert_eq!(plaintext[0], b'R');
    assert_eq!(&plaintext[plaintext.len() - 6..], b"Z\x00\x00\x00\x05I");
    assert!(session.state().is_authenticated);
}

#[test]
fn plaintext_behind_the_ssl_request_is_refused() {
    let mut session = tls_session(HookSet::default());
    session.receive(&[SSL_REQUEST, &startup_bytes("mallory")].concat());
    assert_eq!(session.poll(), Step::Close);
    let out = session.take_output();
    assert_eq!(out[0], b'S');
    assert!(String::from_utf8_lossy(&out).contains("received unencrypted data after SSL request"));
}

#[test]
fn a_plaintext_startup_is_refused_when_tls_is_configured() {
    let mut session = tls_session(HookSet::default());
    session.receive(&startup_bytes("bob"));
    assert_eq!(session.poll(), Step::Close);
    assert!(String::from_utf8_lossy(&session.take_output()).contains("SSL connection is required"));
}

#[test]
fn direct_tls_needs_alpn_postgresql() {
    let mut session = tls_session(HookSet::default());
    let mut with_alpn = client(&[b"postgresql"]);
    shuttle(&mut with_alpn, &mut session);
    assert!(!with_alpn.is_handshaking(), "direct TLS with ALPN postgresql completes");

    let mut session = tls_session(HookSet::default());
    let mut without = client(&[]);
    let (_, closed) = shuttle(&mut without, &mut session);
    assert!(closed, "direct TLS without ALPN is refused");
}

#[test]
fn garbage_after_s_closes_without_panicking() {
    // Not TLS at all: closed as soon as it is read, whatever follows.
    for garbage in [&b"\x16\x03\x01\x00\x05hello"[..], b"GET / HTTP/1.1\r\n\r\n", &[0x16; 64]] {
        let mut session = tls_session(HookSet::default());
        session.receive(SSL_REQUEST);
        session.poll();
        session.take_output();
        session.receive(garbage);
        assert_eq!(session.poll(), Step::Close, "{garbage:?}");
        assert!(!session.state().has_started, "{garbage:?}: nothing was taken as a startup");
    }
    // Too short to judge: the session waits, and closes at EOF.
    let mut session = tls_session(HookSet::default());
    session.receive(SSL_REQUEST);
    session.poll();
    session.take_output();
    session.receive(b"\x16\x03\x01");
    assert_eq!(session.poll(), Step::Wait);
    session.receive_eof(Instant::now());
    assert_eq!(session.poll(), Step::Close);
}

#[test]
fn a_burst_larger_than_the_tls_plaintext_buffer_is_read_in_one_go() {
    let mut session = tls_session(HookSet::default());
    let mut client = client(&[b"postgresql"]);
    shuttle(&mut client, &mut session);
    client.writer().write_all(&startup_bytes("alice")).unwrap();
    shuttle(&mut client, &mut session);
    assert!(session.state().is_authenticated);
    // A 200 KB query: far more than rustls buffers as plaintext. All of it arrives in one
    // read; the answer must come without waiting for more input.
    let sql = "x".repeat(200 * 1024);
    let mut query = vec![b'Q'];
    query.extend(((sql.len() + 5) as i32).to_be_bytes());
    query.extend(sql.as_bytes());
    query.push(0);
    client.set_buffer_limit(None);
    client.writer().write_all(&query).unwrap();
    let mut wire = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut wire).unwrap();
    }
    session.receive(&wire);
    assert_eq!(session.poll(), Step::Wait);
    let reply = session.take_output();
    let mut reply = &reply[..];
    while !reply.is_empty() {
        client.read_tls(&mut reply).unwrap();
    }
    client.process_new_packets().unwrap();
    let mut plaintext = Vec::new();
    let _ = client.reader().read_to_end(&mut plaintext);
    assert_eq!(plaintext.first(), Some(&b'E'), "the built-in answer to the whole query");
    assert_eq!(&plaintext[plaintext.len() - 6..], b"Z\x00\x00\x00\x05I");
}

/// Feeds TLS records to the client and returns all plaintext they carry, however much.
fn open_all(client: &mut ClientConnection, mut wire: &[u8]) -> Vec<u8> {
    let mut plaintext = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while !wire.is_empty() {
        client.read_tls(&mut wire).expect("records");
        client.process_new_packets().expect("valid records");
        while let Ok(n) = client.reader().read(&mut buf) {
            if n == 0 {
                break;
            }
            plaintext.extend_from_slice(&buf[..n]);
        }
    }
    plaintext
}

#[test]
fn an_answer_of_any_size_is_sealed_whole() {
    // rustls takes 64 KiB of plaintext at a time; everything beyond used to be dropped.
    for size in [60 * 1024, 300 * 1000, 1 << 20, 16 << 20] {
        let mut session = tls_session(HookSet::default());
        session.receive(SSL_REQUEST);
        session.poll();
        session.take_output();
        let mut client = client(&[b"postgresql"]);
        shuttle(&mut client, &mut session);
        client.writer().write_all(&startup_bytes("alice")).unwrap();
        shuttle(&mut client, &mut session);
        let answer: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        session.send(&answer);
        let wire = session.take_output();
        assert!(!session.has_output(), "{size}: everything was sealed in one go");
        let opened = open_all(&mut client, &wire);
        assert_eq!(opened.len(), answer.len(), "{size} bytes");
        assert!(opened == answer, "{size} bytes, in order");
    }
}

#[test]
fn a_fatal_error_then_close_notify_arrive_in_that_order() {
    let mut session = tls_session(HookSet::default());
    session.receive(SSL_REQUEST);
    session.poll();
    session.take_output();
    let mut client = client(&[b"postgresql"]);
    shuttle(&mut client, &mut session);
    client.writer().write_all(&startup_bytes("alice")).unwrap();
    shuttle(&mut client, &mut session);
    session.send(&[b'x'; 100_000]);
    session.end();
    assert_eq!(session.poll(), Step::Close);
    let wire = session.take_output();
    assert_eq!(open_all(&mut client, &wire).len(), 100_000, "all of it before the close");
    let mut buf = [0u8; 1];
    assert_eq!(client.reader().read(&mut buf).unwrap(), 0, "then close_notify");
}

#[test]
fn records_read_ahead_during_a_hook_are_opened_for_detach() {
    // The client sends its StartupMessage while onTlsUpgrade runs, and the hook detaches (or
    // proxies): the bytes read ahead are still TLS records, and must reach whoever takes over
    // as plaintext. Left sealed in the session, a proxied client waited forever.
    let mut session = tls_session(HookSet { on_tls_upgrade: true, ..HookSet::default() });
    session.receive(SSL_REQUEST);
    assert_eq!(session.poll(), Step::Wait);
    session.take_output();
    let mut client = client(&[b"postgresql"]);
    let mut hooked = false;
    for _ in 0..20 {
        let mut to_server = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut to_server).unwrap();
        }
        session.receive(&to_server);
        let step = session.poll();
        let to_client = session.take_output();
        let mut wire = &to_client[..];
        while !wire.is_empty() {
            client.read_tls(&mut wire).unwrap();
        }
        client.process_new_packets().unwrap();
        if step == Step::Hook(HookRequest::TlsUpgrade) {
            hooked = true;
            break;
        }
    }
    assert!(hooked, "onTlsUpgrade is asked for once the handshake is done");
    client.writer().write_all(&startup_bytes("alice")).unwrap();
    let mut to_server = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut to_server).unwrap();
    }
    session.receive(&to_server);
    assert_eq!(session.poll(), Step::Wait, "the hook still runs");
    assert_eq!(&session.detach()[..], &startup_bytes("alice")[..]);
}
