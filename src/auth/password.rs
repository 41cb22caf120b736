//! `cleartextPassword` and `md5Password`: one request, one PasswordMessage, one verdict from
//! `validateCredentials`. The md5 salt is chosen by the caller, once per connection (as in
//! PostgreSQL and pg-gateway 0.2.4), so a captured hash cannot be replayed on another one.

use super::{password_failed, AuthRequest, AuthStep, Credentials};
use crate::protocol::frontend;

#[derive(Debug)]
enum Method {
    Cleartext,
    Md5 { salt: [u8; 4] },
}

#[derive(Debug, PartialEq, Eq)]
enum Awaiting {
    /// The client's PasswordMessage.
    Password,
    /// The verdict of `validateCredentials`.
    Verdict,
    /// Nothing: the exchange is over.
    Nothing,
}

#[derive(Debug)]
pub struct PasswordExchange {
    method: Method,
    user: String,
    awaiting: Awaiting,
}

impl PasswordExchange {
    pub fn cleartext(user: &str) -> (Self, AuthStep) {
        Self::start(Method::Cleartext, user, AuthRequest::CleartextPassword)
    }

    pub fn md5(user: &str, salt: [u8; 4]) -> (Self, AuthStep) {
        Self::start(Method::Md5 { salt }, user, AuthRequest::Md5Password { salt })
    }

    fn start(method: Method, user: &str, request: AuthRequest) -> (Self, AuthStep) {
        (Self { method, user: user.to_string(), awaiting: Awaiting::Password }, AuthStep::Request(request))
    }

    /// The body of the client's `p` message.
    pub fn receive(&mut self, body: &[u8]) -> AuthStep {
        if self.awaiting != Awaiting::Password {
            return AuthStep::Fail(unexpected());
        }
        let password = match frontend::password(body) {
            Ok(password) => password.to_string(),
            Err(err) => return AuthStep::Fail(err.into()),
        };
        self.awaiting = Awaiting::Verdict;
        let user = self.user.clone();
        AuthStep::Validate(match self.method {
            Method::Cleartext => Credentials::Cleartext { user, password },
            Method::Md5 { salt } => Credentials::Md5 { user, hash: password, salt },
        })
    }

    /// What `validateCredentials` decided (false also when there is no such hook: pg-gateway
    /// 0.2.4 lets nobody in then).
    pub fn verdict(&mut self, valid: bool) -> AuthStep {
        if self.awaiting != Awaiting::Verdict {
            return AuthStep::Fail(unexpected());
        }
        self.awaiting = Awaiting::Nothing;
        if valid {
            AuthStep::Ok
        } else {
            AuthStep::Fail(password_failed(&self.user))
        }
    }
}

fn unexpected() -> crate::protocol::PgError {
    crate::protocol::PgError::fatal(
        crate::protocol::SqlState::PROTOCOL_VIOLATION,
        "unexpected password message: authentication is not waiting for one",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::SqlState;

    #[test]
    fn md5_asks_for_the_salted_hash_and_passes_it_on() {
        let (mut exchange, step) = PasswordExchange::md5("bob", [1, 2, 3, 4]);
        assert_eq!(step, AuthStep::Request(AuthRequest::Md5Password { salt: [1, 2, 3, 4] }));
        let step = exchange.receive(b"md5abc\0");
        assert_eq!(
            step,
            AuthStep::Validate(Credentials::Md5 { user: "bob".into(), hash: "md5abc".into(), salt: [1, 2, 3, 4] })
        );
        assert_eq!(exchange.verdict(true), AuthStep::Ok);
    }

    #[test]
    fn a_wrong_password_fails_with_28p01_and_postgres_wording() {
        let (mut exchange, _) = PasswordExchange::cleartext("bob");
        assert!(matches!(exchange.receive(b"secret\0"), AuthStep::Validate(Credentials::Cleartext { .. })));
        let AuthStep::Fail(err) = exchange.verdict(false) else { panic!("a failure") };
        assert_eq!(err.code, SqlState::INVALID_PASSWORD.code());
        assert_eq!(err.message, "password authentication failed for user \"bob\"");
    }

    #[test]
    fn a_malformed_or_out_of_order_message_fails() {
        let (mut exchange, _) = PasswordExchange::cleartext("bob");
        let AuthStep::Fail(err) = exchange.receive(b"no terminator") else { panic!("a failure") };
        assert_eq!(err.code, SqlState::PROTOCOL_VIOLATION.code());
        let (mut exchange, _) = PasswordExchange::cleartext("bob");
        let _ = exchange.receive(b"pw\0");
        assert!(matches!(exchange.receive(b"pw\0"), AuthStep::Fail(_)), "a second password while validating");
        let (mut fresh, _) = PasswordExchange::cleartext("bob");
        assert!(matches!(fresh.verdict(true), AuthStep::Fail(_)), "a verdict before any password");
    }
}
