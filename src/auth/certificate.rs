//! `certificate`: a client certificate that the configured CA vouches for, whose subject CN is
//! the user name. No message is exchanged: the verdict comes from what the TLS handshake
//! established. The failure answers and texts are pg-gateway 0.2.4's (`08000`).

use super::AuthStep;
use crate::protocol::{PgError, SqlState};

/// What TLS knows of the client certificate.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientCertificate {
    /// The connection is not encrypted.
    NoTls,
    /// The certificate was missing or did not verify, and why.
    Invalid(String),
    /// Verified; its subject CN, if it has one.
    Verified { common_name: Option<String> },
}

pub fn authenticate(user: &str, certificate: ClientCertificate) -> AuthStep {
    let failure = |message: String| AuthStep::Fail(PgError::fatal(SqlState::CONNECTION_EXCEPTION, message));
    match certificate {
        ClientCertificate::NoTls => failure("ssl connection required when auth mode is 'certificate'".into()),
        ClientCertificate::Invalid(reason) => AuthStep::Fail(
            PgError::fatal(SqlState::CONNECTION_EXCEPTION, "client certificate is invalid").with_detail(reason),
        ),
        ClientCertificate::Verified { common_name: Some(cn) } if cn == user => AuthStep::Ok,
        ClientCertificate::Verified { common_name } => {
            failure(format!("client certificate CN '{}' does not match user '{user}'", common_name.unwrap_or_default()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(step: AuthStep) -> String {
        match step {
            AuthStep::Fail(err) => format!("{} {}", err.code, err.message),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn verdicts_and_pg_gateway_texts() {
        assert_eq!(
            message(authenticate("bob", ClientCertificate::NoTls)),
            "08000 ssl connection required when auth mode is 'certificate'"
        );
        assert_eq!(
            message(authenticate("bob", ClientCertificate::Invalid("expired".into()))),
            "08000 client certificate is invalid"
        );
        let verified = |cn: &str| ClientCertificate::Verified { common_name: Some(cn.into()) };
        assert_eq!(authenticate("bob", verified("bob")), AuthStep::Ok);
        assert_eq!(
            message(authenticate("bob", verified("eve"))),
            "08000 client certificate CN 'eve' does not match user 'bob'"
        );
    }
}
