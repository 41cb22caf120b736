//! The hooks a session asks its driver to run, and their answers. [`HookKind`] is the one table
//! of hook kinds: the name JS dispatches on (`lib/hooks.js` holds the JS half of the table) and
//! what an answer means. Both drivers turn what JS answered ([`HookAnswer`]) into a
//! [`HookResult`] through [`HookKind::result`], so they cannot disagree.

use std::sync::Arc;

use crate::auth::{Credentials, ScramSecret, SecretSource};
use crate::protocol::{PgError, SqlState};
use crate::tls::TlsServer;

use super::query::{DescribeCall, Description, QueryCall, QueryOutcome};

/// A hook the session wants to run.
#[derive(Debug, PartialEq, Eq)]
pub enum HookRequest {
    /// `onMessage` for each of `count` whole messages, back to back in `Session::offered`.
    Messages { count: usize },
    /// `onStartup(state)`.
    Startup,
    /// `validateCredentials(credentials, state)`.
    ValidateCredentials(Credentials),
    /// `getScramSecret({ user }, state)`.
    ScramSecret { user: String },
    /// `onAuthenticated(state)`.
    Authenticated,
    /// The `tls` callback: choose a configuration for this server name.
    TlsConfig { sni_server_name: Option<String> },
    /// `onTlsUpgrade(state)`, after the handshake and before the StartupMessage.
    TlsUpgrade,
    /// `onQuery(query, state)`: run a statement and write its results.
    Query(Box<QueryCall>),
    /// `onDescribe({ sql, paramTypes }, state)`: what a prepared statement takes and returns.
    Describe(Box<DescribeCall>),
}

impl HookRequest {
    pub fn kind(&self) -> HookKind {
        match self {
            Self::Messages { .. } => HookKind::Message,
            Self::Startup => HookKind::Startup,
            Self::ValidateCredentials(_) => HookKind::Validate,
            Self::ScramSecret { .. } => HookKind::ScramSecret,
            Self::Authenticated => HookKind::Authenticated,
            Self::TlsConfig { .. } => HookKind::Tls,
            Self::TlsUpgrade => HookKind::TlsUpgrade,
            Self::Query(_) => HookKind::Query,
            Self::Describe(_) => HookKind::Describe,
        }
    }
}

/// Every kind of hook call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookKind {
    Message,
    Startup,
    Validate,
    ScramSecret,
    Authenticated,
    Tls,
    TlsUpgrade,
    Query,
    Describe,
}

impl HookKind {
    /// The event kind JS dispatches on.
    pub fn name(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::Startup => "startup",
            Self::Validate => "validate",
            Self::ScramSecret => "scramSecret",
            Self::Authenticated => "authenticated",
            Self::Tls => "tls",
            Self::TlsUpgrade => "tlsUpgrade",
            Self::Query => "query",
            Self::Describe => "describe",
        }
    }

    /// What an answer from JS means for this kind of hook.
    pub fn result(self, answer: HookAnswer) -> HookResult {
        let HookAnswer { value, paused, error, tls, scram, completed, data, description } = answer;
        if self == Self::Message {
            return HookResult::Messages { handled: value as usize, paused, error };
        }
        if self == Self::Query {
            // A failed statement still reports the results it completed before failing.
            return HookResult::Query(QueryOutcome { completed, suspended: paused, error, data });
        }
        if let Some(error) = error {
            return HookResult::Failed(error);
        }
        match self {
            Self::Message | Self::Query => unreachable!("answered above"),
            Self::Describe => HookResult::Described(description.unwrap_or_default()),
            Self::Startup | Self::Validate => HookResult::Bool(value != 0),
            Self::Authenticated | Self::TlsUpgrade => HookResult::Done,
            Self::ScramSecret => match scram {
                None => HookResult::ScramSecret(None),
                Some(ScramAnswer::Password(password)) => {
                    HookResult::ScramSecret(Some(SecretSource::Password(password)))
                }
                // As PostgreSQL does with an invalid stored secret: the login fails like any
                // wrong password (JS has already warned the operator, see `scramSecretReply`).
                Some(ScramAnswer::Verifier(verifier)) => {
                    HookResult::ScramSecret(ScramSecret::parse(&verifier).ok().map(SecretSource::Verifier))
                }
            },
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
    /// `scramSecret`: what `getScramSecret` returned (`None`: no such user).
    pub scram: Option<ScramAnswer>,
    /// `query`: how many results completed (`paused`: PortalSuspended).
    pub completed: usize,
    /// `query`: result bytes JS did not write itself.
    pub data: Option<Vec<u8>>,
    /// `describe`: what `onDescribe` said.
    pub description: Option<Description>,
}

/// A secret as `getScramSecret` gives it (JS turns its object form into a verifier).
pub enum ScramAnswer {
    /// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
    Verifier(String),
    /// `{ password }`.
    Password(String),
}

impl std::fmt::Debug for ScramAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Verifier(_) => "Verifier(..)",
            Self::Password(_) => "Password(..)",
        })
    }
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
    /// For `ScramSecret`: the user's secret, `None` for an unknown user.
    ScramSecret(Option<SecretSource>),
    /// For `Query`.
    Query(QueryOutcome),
    /// For `Describe`.
    Described(Description),
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
