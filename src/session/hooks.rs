//! The hooks a session asks its driver to run, and their answers. [`HookKind`] is the one table
//! of hook kinds: the name JS dispatches on (`lib/hooks.js` holds the JS half of the table) and
//! what an answer means. Both drivers turn what JS answered ([`HookAnswer`]) into a
//! [`HookResult`] through [`HookKind::result`], so they cannot disagree.

use std::sync::Arc;

use crate::auth::Credentials;
use crate::protocol::{PgError, SqlState};
use crate::tls::TlsServer;

/// A hook the session wants to run.
#[derive(Debug, PartialEq, Eq)]
pub enum HookRequest {
    /// `onMessage` for each of `count` whole messages, back to back in `Session::offered`.
    Messages { count: usize },
    /// `onStartup(state)`.
    Startup,
    /// `validateCredentials(credentials, state)`.
    ValidateCredentials(Credentials),
    /// `onAuthenticated(state)`.
    Authenticated,
    /// The `tls` callback: choose a configuration for this server name.
    TlsConfig { sni_server_name: Option<String> },
    /// `onTlsUpgrade(state)`, after the handshake and before the StartupMessage.
    TlsUpgrade,
}

impl HookRequest {
    pub fn kind(&self) -> HookKind {
        match self {
            Self::Messages { .. } => HookKind::Message,
            Self::Startup => HookKind::Startup,
            Self::ValidateCredentials(_) => HookKind::Validate,
            Self::Authenticated => HookKind::Authenticated,
            Self::TlsConfig { .. } => HookKind::Tls,
            Self::TlsUpgrade => HookKind::TlsUpgrade,
        }
    }
}

/// Every kind of hook call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookKind {
    Message,
    Startup,
    Validate,
    Authenticated,
    Tls,
    TlsUpgrade,
}

impl HookKind {
    /// The event kind JS dispatches on.
    pub fn name(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::Startup => "startup",
            Self::Validate => "validate",
            Self::Authenticated => "authenticated",
            Self::Tls => "tls",
            Self::TlsUpgrade => "tlsUpgrade",
        }
    }

    /// What an answer from JS means for this kind of hook.
    pub fn result(self, answer: HookAnswer) -> HookResult {
        let HookAnswer { value, paused, error, tls } = answer;
        if self == Self::Message {
            return HookResult::Messages { handled: value as usize, paused, error };
        }
        if let Some(error) = error {
            return HookResult::Failed(error);
        }
        match self {
            Self::Message => unreachable!("answered above"),
            Self::Startup | Self::Validate => HookResult::Bool(value != 0),
            Self::Authenticated | Self::TlsUpgrade => HookResult::Done,
            Self::Tls => match tls {
                Some(Ok(server)) => HookResult::Tls(server),
                Some(Err(error)) => HookResult::Failed(error),
                None => {
                    HookResult::Failed(PgError::fatal(SqlState::INTERNAL_ERROR, "the tls callback returned no options"))
                }
            },
        }
    }
}

/// What JS answered, the same for every kind and both drivers.
#[derive(Debug, Default)]
pub struct HookAnswer {
    /// Messages handled (`message`), or 1/0 (`startup`, `validate`); ignored otherwise.
    pub value: u32,
    /// `message`: the batch stopped early because output is backed up; the messages not offered
    /// yet are offered once the client has read.
    pub paused: bool,
    /// What the hook threw (for `message`: the message after the handled ones).
    pub error: Option<PgError>,
    /// `tls`: the configuration the callback chose, or why none could be built.
    pub tls: Option<Result<Arc<TlsServer>, PgError>>,
}

/// A hook's answer, as the session takes it.
#[derive(Debug)]
pub enum HookResult {
    /// For `Messages`: how many leading messages were handled; whether the batch was paused for
    /// backpressure; and the error of the message after them if its hook threw (that message
    /// then counts as consumed).
    Messages { handled: usize, paused: bool, error: Option<PgError> },
    /// For `Startup` (true = handled) and `ValidateCredentials` (true = valid).
    Bool(bool),
    /// For hooks whose value is ignored.
    Done,
    /// For `TlsConfig`: the configuration to finish the handshake with.
    Tls(Arc<TlsServer>),
    /// The hook threw or rejected.
    Failed(PgError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_table_turns_answers_into_results() {
        let answer = |value| HookAnswer { value, ..HookAnswer::default() };
        assert!(matches!(HookKind::Startup.result(answer(1)), HookResult::Bool(true)));
        assert!(matches!(HookKind::Validate.result(answer(0)), HookResult::Bool(false)));
        assert!(matches!(HookKind::Authenticated.result(answer(7)), HookResult::Done));
        assert!(matches!(
            HookKind::Message.result(HookAnswer { value: 2, paused: true, ..HookAnswer::default() }),
            HookResult::Messages { handled: 2, paused: true, error: None }
        ));
        let failed = HookAnswer { error: Some(PgError::error(SqlState::INTERNAL_ERROR, "boom")), ..answer(1) };
        assert!(matches!(HookKind::Startup.result(failed), HookResult::Failed(_)));
        assert!(matches!(HookKind::Tls.result(answer(0)), HookResult::Failed(_)), "tls without options");
    }
}
