//! TLS inside the session. Wire bytes go into `raw_in`; rustls turns them into the plaintext
//! `input` the protocol reads; plaintext `output` becomes TLS records in `wire_out`. The
//! handshake itself is a short state machine: read the ClientHello (SNI known), get a
//! configuration (fixed, or from the `tls` callback hook), finish the handshake, then
//! `onTlsUpgrade`. See "SSL Session Encryption" in
//! <https://www.postgresql.org/docs/current/protocol-flow.html>.

use std::io::{Read, Write};
use std::sync::Arc;

use bytes::{Buf, BufMut, BytesMut};
use rustls::server::{Accepted, Acceptor};
use rustls::ServerConnection;

use super::{CloseReason, HookRequest, Phase, Session, Step, TlsInfo};
use crate::auth::certificate::ClientCertificate;
use crate::tls::{TlsServer, POSTGRESQL_ALPN};

pub(super) enum TlsState {
    /// No TLS (yet).
    Plain,
    /// Reading the ClientHello. `direct`: the client started TLS without an SSLRequest.
    Accepting {
        acceptor: Box<Acceptor>,
        direct: bool,
    },
    /// ClientHello read; waiting for the `tls` callback to choose a configuration.
    AwaitingConfig {
        accepted: Box<Accepted>,
        direct: bool,
    },
    Active {
        connection: Box<ServerConnection>,
        server: Arc<TlsServer>,
        direct: bool,
        handshake_done: bool,
    },
    /// The TLS connection failed; nothing more can be sent or read.
    Failed,
}

impl Session {
    pub(super) fn tls_is_plain(&self) -> bool {
        matches!(self.tls, TlsState::Plain)
    }

    /// Switches to TLS after an SSLRequest was answered 'S' (or at once for direct TLS, whose
    /// ClientHello is already in `input`).
    pub(super) fn start_tls(&mut self, direct: bool) {
        if let Phase::Startup { ssl_tried, .. } = &mut self.phase {
            *ssl_tried = true;
        }
        // The 'S' goes out in plaintext, before any TLS record.
        let answered = self.output.split();
        self.wire_out.put_slice(&answered);
        let received = self.input.split();
        self.raw_in.put_slice(&received);
        self.tls = TlsState::Accepting { acceptor: Box::default(), direct };
    }

    /// The `tls` callback chose a configuration.
    pub(super) fn tls_configured(&mut self, server: Arc<TlsServer>) {
        match std::mem::replace(&mut self.tls, TlsState::Failed) {
            TlsState::AwaitingConfig { accepted, direct } => self.begin_handshake(*accepted, server, direct),
            other => self.tls = other,
        }
    }

    fn begin_handshake(&mut self, accepted: Accepted, server: Arc<TlsServer>, direct: bool) {
        match accepted.into_connection(server.config.clone()) {
            Ok(connection) => {
                self.tls = TlsState::Active { connection: Box::new(connection), server, direct, handshake_done: false };
            }
            Err((err, mut alert)) => {
                let _ = alert.write_all(&mut (&mut self.wire_out).writer());
                self.problem = Some(tls_problem(&err));
                self.close_tls_failed();
            }
        }
    }

    pub(super) fn close_tls_failed(&mut self) {
        self.tls = TlsState::Failed;
        self.output.clear();
        self.set_phase(Phase::Closed(CloseReason::Closed));
    }

    /// Moves TLS forward with the bytes received. Returns a step when the driver must act
    /// (more input, a hook, close) before the protocol can go on.
    #[inline]
    pub(super) fn pump_tls(&mut self) -> Option<Step> {
        // Every poll passes here. The TLS work needs a stack frame of some 20 KiB, whose page
        // probes alone cost a plaintext session more than the rest of a poll: out of line.
        if matches!(self.tls, TlsState::Plain) {
            return None;
        }
        self.pump_tls_state()
    }

    #[inline(never)]
    fn pump_tls_state(&mut self) -> Option<Step> {
        match std::mem::replace(&mut self.tls, TlsState::Failed) {
            TlsState::Plain => {
                self.tls = TlsState::Plain;
                None
            }
            TlsState::Failed => {
                self.set_phase(Phase::Closed(CloseReason::Closed));
                Some(Step::Close)
            }
            TlsState::Accepting { mut acceptor, direct } => {
                while !self.raw_in.is_empty() {
                    match acceptor.read_tls(&mut (&self.raw_in[..])) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => self.raw_in.advance(n),
                    }
                }
                match acceptor.accept() {
                    Ok(None) => {
                        self.tls = TlsState::Accepting { acceptor, direct };
                        Some(self.need_input())
                    }
                    Ok(Some(accepted)) => {
                        let hello = accepted.client_hello();
                        let offers_postgresql = hello.alpn().is_some_and(|mut a| a.any(|p| p == POSTGRESQL_ALPN));
                        if direct && !offers_postgresql {
                            // PostgreSQL: "received direct SSL connection request without ALPN
                            // protocol negotiation extension"; nothing can be sent in the clear.
                            self.problem = Some(
                                "TLS handshake refused: direct TLS (sslnegotiation=direct) without the ALPN protocol 'postgresql'"
                                    .into(),
                            );
                            self.close_tls_failed();
                            return Some(Step::Close);
                        }
                        self.tls_sni = hello.server_name().map(str::to_owned);
                        let fixed = self.config.tls.as_ref().and_then(|t| t.fixed.clone());
                        match fixed {
                            Some(server) => self.begin_handshake(accepted, server, direct),
                            None => {
                                self.tls = TlsState::AwaitingConfig { accepted: Box::new(accepted), direct };
                                self.queued = Some(HookRequest::TlsConfig { sni_server_name: self.tls_sni.clone() });
                            }
                        }
                        None
                    }
                    Err((err, mut alert)) => {
                        let _ = alert.write_all(&mut (&mut self.wire_out).writer());
                        self.problem = Some(tls_problem(&err));
                        self.close_tls_failed();
                        Some(Step::Close)
                    }
                }
            }
            state @ TlsState::AwaitingConfig { .. } => {
                self.tls = state;
                None
            }
            TlsState::Active { mut connection, server, direct, mut handshake_done } => {
                // Feed records and drain plaintext in turn: rustls stops accepting records while
                // its plaintext buffer is full, and ciphertext left unread here would wait for a
                // next read from the client that may never come.
                let mut chunk = [0u8; 16 * 1024];
                loop {
                    let mut progressed = false;
                    if !self.raw_in.is_empty() {
                        if let Ok(n) = connection.read_tls(&mut (&self.raw_in[..])) {
                            self.raw_in.advance(n);
                            progressed = n > 0;
                        }
                        if let Err(err) = connection.process_new_packets() {
                            // rustls queued an alert; send it and give up on this connection.
                            let _ = connection.write_tls(&mut (&mut self.wire_out).writer());
                            self.problem = Some(tls_problem(&err));
                            self.close_tls_failed();
                            return Some(Step::Close);
                        }
                    }
                    loop {
                        match connection.reader().read(&mut chunk) {
                            Ok(0) => {
                                self.eof = true; // close_notify: the client ended the conversation
                                break;
                            }
                            Ok(n) => {
                                self.input.put_slice(&chunk[..n]);
                                progressed = true;
                            }
                            Err(_) => break, // WouldBlock: no more plaintext for now
                        }
                    }
                    if !progressed || self.raw_in.is_empty() {
                        break;
                    }
                }
                if !handshake_done && !connection.is_handshaking() {
                    handshake_done = true;
                    let alpn = connection.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned());
                    let client_certificate = connection.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec());
                    self.state.tls_info = Some(Arc::new(TlsInfo {
                        sni_server_name: self.tls_sni.clone(),
                        alpn_protocol: alpn,
                        client_certificate,
                    }));
                    self.state_version += 1;
                    if self.config.hooks.on_tls_upgrade {
                        self.queued = Some(HookRequest::TlsUpgrade);
                    }
                }
                self.tls = TlsState::Active { connection, server, direct, handshake_done };
                None
            }
        }
    }

    /// Turns pending plaintext output into wire bytes. rustls takes plaintext only while its
    /// outgoing buffer has room (64 KiB): each round seals what fits and moves the records out,
    /// so an answer of any size goes out whole. What cannot be sealed yet (mid-handshake) stays
    /// in `output`; nothing is ever dropped here.
    pub(super) fn seal_output(&mut self) {
        let closed = matches!(self.phase, Phase::Closed(_));
        match &mut self.tls {
            TlsState::Active { connection, .. } => {
                loop {
                    while connection.wants_write() {
                        if connection.write_tls(&mut (&mut self.wire_out).writer()).is_err() {
                            break;
                        }
                    }
                    if self.output.is_empty() {
                        break;
                    }
                    match connection.writer().write(&self.output) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => self.output.advance(n),
                    }
                }
                // After what was queued, never before it (rustls sends nothing after it).
                if closed && self.output.is_empty() {
                    connection.send_close_notify();
                    while connection.wants_write() {
                        if connection.write_tls(&mut (&mut self.wire_out).writer()).is_err() {
                            break;
                        }
                    }
                }
            }
            TlsState::Plain => {
                if self.wire_out.is_empty() {
                    // A swap, not a split: nothing allocated, and neither buffer shared.
                    std::mem::swap(&mut self.wire_out, &mut self.output);
                } else {
                    self.wire_out.put_slice(&self.output);
                    self.output.clear();
                }
            }
            // Mid-handshake, nothing of the protocol may be sent yet.
            TlsState::Accepting { .. } | TlsState::AwaitingConfig { .. } => {}
            // After a failure, nothing at all.
            TlsState::Failed => self.output.clear(),
        }
    }

    pub(super) fn tls_wants_write(&self) -> bool {
        matches!(&self.tls, TlsState::Active { connection, .. } if connection.wants_write())
    }

    /// The `tls-server-end-point` channel binding data of this connection's certificate, when
    /// TLS ends here and the certificate's signature algorithm names a hash (RFC 5929).
    pub(super) fn channel_binding(&self) -> Option<Vec<u8>> {
        match &self.tls {
            TlsState::Active { server, .. } => server.end_point_hash().map(<[u8]>::to_vec),
            _ => None,
        }
    }

    /// The verifier-backed facts of the client certificate, for `certificate` authentication.
    pub(super) fn client_certificate(&self) -> ClientCertificate {
        let TlsState::Active { connection, server, .. } = &self.tls else {
            return ClientCertificate::NoTls;
        };
        let chain = connection.peer_certificates().unwrap_or_default();
        match server.verify_client_certificate(chain) {
            Ok(()) => ClientCertificate::Verified {
                common_name: chain.first().and_then(|c| crate::tls::subject_common_name(c)),
            },
            Err(reason) => ClientCertificate::Invalid(reason),
        }
    }

    /// For `detach()` after TLS: encrypts plaintext for the client.
    pub fn seal(&mut self, plaintext: &[u8]) -> BytesMut {
        self.output.put_slice(plaintext);
        self.seal_output();
        self.wire_out.split()
    }

    /// For `detach()` after TLS: decrypts what the client sent; `None` once the TLS
    /// connection failed or the client closed it.
    pub fn open(&mut self, wire: &[u8]) -> Option<BytesMut> {
        if self.tls_is_plain() {
            return Some(BytesMut::from(wire));
        }
        self.raw_in.put_slice(wire);
        let step = self.pump_tls();
        let plaintext = self.input.split();
        if plaintext.is_empty() && (step.is_some() || self.eof) {
            return None;
        }
        Some(plaintext)
    }

    /// For `detach()` after TLS: close_notify, when the detached stream ends.
    pub fn seal_close(&mut self) -> BytesMut {
        if let TlsState::Active { connection, .. } = &mut self.tls {
            connection.send_close_notify();
        }
        self.seal_output();
        self.wire_out.split()
    }

    pub fn is_tls(&self) -> bool {
        !self.tls_is_plain()
    }
}

/// A TLS failure in words an operator can act on.
fn tls_problem(err: &rustls::Error) -> String {
    format!("TLS handshake failed: {}", crate::tls::certificate_error(err))
}
