//! Framing and `onMessage`: cut the next message off the input, offer it (with every complete
//! message behind it) to the hook, and give the built-ins the first one the hook did not handle.

use bytes::Buf;

use super::{fatal, AuthenticatedBy, Authentication, HookRequest, Pending, Phase, Session, Step};
use crate::protocol::{backend, frame, DecodeError, FrontendMessage, PgError, Severity};

/// At most this many messages go to JS in one `onMessage` crossing.
const MAX_BATCH: usize = 1024;

impl Session {
    pub(super) fn next_startup_packet(&mut self) -> Option<Step> {
        // Direct TLS (PostgreSQL 17 `sslnegotiation=direct`): a ClientHello (0x16) instead of
        // a startup packet, whose first byte would be the top of a length and so always 0.
        let ssl_tried = matches!(self.phase, Phase::Startup { ssl_tried: true, .. });
        if self.config.tls.is_some() && self.tls_is_plain() && !ssl_tried && self.input.first() == Some(&0x16) {
            self.start_tls(true);
            return None;
        }
        let len = match frame::startup_frame_len(&self.input) {
            Err(err) => return self.fail_decode(err),
            Ok(None) => return Some(self.need_input()),
            Ok(Some(len)) => len,
        };
        if self.config.hooks.on_message && !self.front_offered && !self.cancels_a_live_connection(len) {
            return Some(self.offer(vec![len]));
        }
        self.front_offered = false;
        let packet = self.input.split_to(len);
        self.startup_packet(&packet);
        None
    }

    /// Whether the first `len` bytes are a CancelRequest for a live connection of this process:
    /// those are ours to deliver (a `proxy()` gave the client our key), not `onMessage`'s.
    /// Other CancelRequests still reach `onMessage`, for proxies that forward upstream keys.
    fn cancels_a_live_connection(&self, len: usize) -> bool {
        let Some(is_live) = self.config.live_cancel_key else { return false };
        match crate::protocol::StartupPacket::decode(&self.input[..len]) {
            Ok(crate::protocol::StartupPacket::CancelRequest { process_id, secret_key }) => {
                is_live(process_id, secret_key)
            }
            _ => false,
        }
    }

    pub(super) fn next_typed(&mut self) -> Option<Step> {
        let past_authentication = self.past_authentication();
        let limits = self.config.limits;
        let sasl = matches!(self.phase, Phase::Authenticating(Authentication::Scram(_)));
        let max_len = |tag| match tag {
            // PostgreSQL reads SASL messages with their own, much smaller limit.
            b'p' if sasl => crate::auth::scram::MAX_SASL_MESSAGE,
            _ => limits.max_len(tag, past_authentication),
        };
        let first = match frame::typed_frame_len(&self.input, max_len) {
            Err(err) => return self.fail_decode(err),
            Ok(None) => return Some(self.need_input()),
            Ok(Some(len)) => len,
        };
        if self.config.hooks.on_message && !self.front_offered {
            let mut ends = vec![first];
            let mut end = first;
            // Later frames join the batch only if complete and valid now; anything else is
            // judged when it reaches the front, in whatever phase the session is in by then.
            while ends.len() < MAX_BATCH {
                match frame::typed_frame_len(&self.input[end..], max_len) {
                    Ok(Some(len)) => {
                        end += len;
                        ends.push(end);
                    }
                    _ => break,
                }
            }
            return Some(self.offer(ends));
        }
        self.front_offered = false;
        if first < self.input.len() {
            let message = self.input.split_to(first);
            self.typed_message(&message);
            return None;
        }
        // The input is exactly this message (a request/response client): taken whole, it needs
        // no shared split, and its buffer takes the next read.
        let mut message = std::mem::take(&mut self.input);
        self.typed_message(&message);
        if self.input.is_empty() && self.input.capacity() == 0 {
            message.clear();
            self.input = message;
        }
        None
    }

    /// Offers the first messages of `input` (ending at `ends`) to `onMessage`. Nothing is
    /// copied: drivers read them from [`Session::offered`] while the hook is pending.
    fn offer(&mut self, ends: Vec<usize>) -> Step {
        let count = ends.len();
        self.pending = Some(Pending::Messages { ends });
        Step::Hook(HookRequest::Messages { count })
    }

    /// `onMessage` handled the first `handled` offered messages. Unless the batch was `paused`
    /// (output backed up: the rest is offered again later), the next one was declined and goes
    /// to the built-ins, or threw `error`.
    pub(super) fn messages_done(
        &mut self,
        ends: &[usize],
        handled: usize,
        paused: bool,
        error: Option<crate::protocol::PgError>,
    ) {
        let handled = handled.min(ends.len());
        let failed = error.is_some() && handled < ends.len();
        let consumed = handled + usize::from(failed);
        let start_of = |i: usize| if i == 0 { 0 } else { ends[i - 1] };
        let failed_tag = if failed { self.input.get(start_of(handled)).copied() } else { None };
        // A startup packet whose hook threw hands authentication to nobody: the error is FATAL.
        if handled > 0 && !self.state.has_started {
            // pg-gateway 0.2.4: a startup packet handled by `onMessage` still switches framing
            // to typed messages, except for SSLRequest; the hook then owns authentication.
            let code = crate::protocol::startup::SSL_REQUEST_CODE.to_be_bytes();
            if self.input.get(4..8) != Some(&code[..]) {
                self.state.has_started = true;
                self.state_version += 1;
                self.authenticated_by(AuthenticatedBy::Hook { client_info: false });
            }
        }
        if consumed > 0 {
            // Clamped: a detach() during the hook may already have taken the input.
            let consumed_bytes = start_of(consumed).min(self.input.len());
            self.input.advance(consumed_bytes);
        }
        if handled < ends.len() && error.is_none() && !paused {
            self.front_offered = true;
        }
        if let Some(err) = error {
            self.hook_error_after_message(err, failed_tag);
        }
    }

    /// A hook threw while handling a message: FATAL before authentication; after it, the
    /// error and what the protocol needs so the client is not left waiting.
    fn hook_error_after_message(&mut self, err: PgError, tag: Option<u8>) {
        if !self.past_authentication() || err.severity.ends_session() {
            return self.fail(fatal(err));
        }
        let err = if err.severity == Severity::Error { err } else { PgError { severity: Severity::Error, ..err } };
        self.error_then_recover(&err, tag);
    }

    /// An ERROR after authentication, then what PostgreSQL does next: after a message of the
    /// extended protocol, skip to Sync; otherwise ReadyForQuery.
    pub(super) fn error_then_recover(&mut self, err: &PgError, tag: Option<u8>) {
        backend::error_response(&mut self.output, err);
        self.transaction_failed();
        match tag {
            Some(tag) if FrontendMessage::is_extended(tag) => {
                if let Phase::Ready { skip_to_sync, .. } = &mut self.phase {
                    *skip_to_sync = true;
                }
            }
            _ => backend::ready_for_query(&mut self.output, self.state.transaction_status),
        }
    }

    /// A message that cannot be framed: PostgreSQL closes without a word for impossible
    /// lengths (see [`DecodeError::closes_silently`]) and sends FATAL 08P01 otherwise.
    fn fail_decode(&mut self, err: DecodeError) -> Option<Step> {
        if matches!(self.phase, Phase::Authenticating(Authentication::Scram(_))) && self.input.first() == Some(&b'p') {
            // PostgreSQL reads SASL messages with a small limit and fails authentication on
            // any longer one (it checks the message type first).
            self.fail(crate::auth::password_failed(self.user()));
        } else if err.closes_silently() {
            self.close_silently();
        } else {
            self.fail(err.into());
        }
        None
    }
}
