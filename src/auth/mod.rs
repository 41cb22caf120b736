//! Authentication helpers. The exchanges themselves are driven by the session; secrets are
//! checked by the user's `validateCredentials` hook, as in pg-gateway.

pub mod md5;

/// How clients authenticate, named as pg-gateway's `authMode` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// `none`: no password; AuthenticationOk right after startup.
    None,
    /// `cleartextPassword`: AuthenticationCleartextPassword, the password in plain text.
    CleartextPassword,
    /// `md5Password` (the default, as in pg-gateway 0.2.4).
    Md5Password,
    /// `certificate`: a verified TLS client certificate whose CN is the user.
    Certificate,
}

impl AuthMode {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "none" => Self::None,
            "cleartextPassword" => Self::CleartextPassword,
            "md5Password" => Self::Md5Password,
            "certificate" => Self::Certificate,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::CleartextPassword => "cleartextPassword",
            Self::Md5Password => "md5Password",
            Self::Certificate => "certificate",
        }
    }
}
