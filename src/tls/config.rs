//! rustls server configurations from pg-gateway's `tls` options (PEM key, certificate chain,
//! optional CA, optional passphrase).

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};

/// The ALPN protocol id PostgreSQL registered; required for direct TLS connections.
pub const POSTGRESQL_ALPN: &[u8] = b"postgresql";

/// pg-gateway's `TlsOptions`, as bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlsMaterial {
    pub key: Vec<u8>,
    pub cert: Vec<u8>,
    pub ca: Option<Vec<u8>>,
    pub passphrase: Option<String>,
}

/// Why TLS options could not be used; the message names the option at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsError(pub String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

/// A server configuration and, when client certificates are requested, the verifier that
/// judges them after the handshake.
#[derive(Debug)]
pub struct TlsServer {
    pub config: Arc<ServerConfig>,
    /// Present when the configuration asks clients for a certificate.
    verifier: Option<Arc<dyn ClientCertVerifier>>,
    /// SCRAM-SHA-256-PLUS channel binding data of the certificate this configuration presents.
    end_point_hash: Option<Vec<u8>>,
}

impl TlsServer {
    /// Builds a configuration; `request_client_certificate` for `certificate` authentication.
    pub fn new(material: &TlsMaterial, request_client_certificate: bool) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&material.cert)
            .collect::<Result<_, _>>()
            .map_err(|err| TlsError(format!("tls.cert: cannot read the PEM certificate chain: {err}")))?;
        if certs.is_empty() {
            return Err(TlsError("tls.cert: no certificate found (expected PEM 'BEGIN CERTIFICATE')".into()));
        }
        let key = private_key(material)?;
        let end_point_hash = super::cert::tls_server_end_point(&certs[0]);
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|err| TlsError(format!("TLS protocol versions: {err}")))?;
        let verifier = if request_client_certificate { Some(client_verifier(material, &provider)?) } else { None };
        let builder = match &verifier {
            Some(inner) => builder.with_client_cert_verifier(Arc::new(RecordingVerifier { inner: inner.clone() })),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|err| TlsError(format!("tls.key does not match tls.cert, or is unusable: {err}")))?;
        config.alpn_protocols = vec![POSTGRESQL_ALPN.to_vec()];
        Ok(Self { config: Arc::new(config), verifier, end_point_hash })
    }

    /// The `tls-server-end-point` hash of the certificate this configuration presents.
    pub fn end_point_hash(&self) -> Option<&[u8]> {
        self.end_point_hash.as_deref()
    }

    /// Whether this configuration asked the client for a certificate.
    pub fn requests_client_certificate(&self) -> bool {
        self.verifier.is_some()
    }

    /// Verifies a client's certificate chain against the CA, as the handshake would have.
    pub fn verify_client_certificate(&self, chain: &[CertificateDer<'_>]) -> Result<(), String> {
        let verifier = self.verifier.as_ref().ok_or("no client certificate was requested")?;
        let (end_entity, intermediates) = chain.split_first().ok_or("no client certificate was sent")?;
        verifier
            .verify_client_cert(end_entity, intermediates, UnixTime::now())
            .map(|_| ())
            .map_err(|err| certificate_error(&err))
    }
}

fn private_key(material: &TlsMaterial) -> Result<PrivateKeyDer<'static>, TlsError> {
    if String::from_utf8_lossy(&material.key).contains("BEGIN ENCRYPTED PRIVATE KEY") {
        return encrypted_private_key(material);
    }
    if String::from_utf8_lossy(&material.key).contains("Proc-Type: 4,ENCRYPTED") {
        return Err(TlsError(
            "tls.key is encrypted in the legacy OpenSSL format; convert it to PKCS#8: `openssl pkcs8 -topk8 -v2 aes-256-cbc`".into(),
        ));
    }
    PrivateKeyDer::from_pem_slice(&material.key)
        .map_err(|err| TlsError(format!("tls.key: cannot read the PEM private key (PKCS#8, PKCS#1 or SEC1): {err}")))
}

/// An encrypted PKCS#8 key (PBES2, as `openssl pkey -aes256` writes it), opened with
/// `tls.passphrase`.
fn encrypted_private_key(material: &TlsMaterial) -> Result<PrivateKeyDer<'static>, TlsError> {
    use pkcs8::der::{Decode, SecretDocument};
    let passphrase = material
        .passphrase
        .as_deref()
        .ok_or_else(|| TlsError("tls.key is encrypted: tls.passphrase is required".into()))?;
    let text = std::str::from_utf8(&material.key).map_err(|_| TlsError("tls.key: not a PEM text".into()))?;
    let (_, document) = SecretDocument::from_pem(text.trim())
        .map_err(|err| TlsError(format!("tls.key: cannot read the encrypted PEM private key: {err}")))?;
    let info = pkcs8::EncryptedPrivateKeyInfoOwned::from_der(document.as_bytes())
        .map_err(|err| TlsError(format!("tls.key: not an encrypted PKCS#8 key: {err}")))?;
    let key = info
        .decrypt(passphrase)
        .map_err(|_| TlsError("tls.key: cannot decrypt the private key: wrong tls.passphrase?".into()))?;
    Ok(PrivateKeyDer::Pkcs8(key.as_bytes().to_vec().into()))
}

fn client_verifier(
    material: &TlsMaterial,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    if let Some(ca) = &material.ca {
        for cert in CertificateDer::pem_slice_iter(ca) {
            let cert = cert.map_err(|err| TlsError(format!("tls.ca: cannot read the PEM certificates: {err}")))?;
            roots.add(cert).map_err(|err| TlsError(format!("tls.ca: unusable CA certificate: {err}")))?;
        }
    }
    if roots.is_empty() {
        return Err(TlsError("certificate authentication needs tls.ca: the CA that signs client certificates".into()));
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|err| TlsError(format!("tls.ca: {err}")))
}

/// Asks for a client certificate and checks the handshake signatures, but lets any chain
/// through the handshake; the session verifies the chain afterwards, so that a bad certificate
/// ends in a PostgreSQL error the client can show rather than an aborted handshake.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for RecordingVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A certificate verification failure in words an operator can act on. The usual puzzle gets
/// its own: OpenSSL 3.0's `openssl x509 -req` makes X.509 v1 certificates unless given
/// extensions, and webpki accepts only v3.
pub fn certificate_error(err: &rustls::Error) -> String {
    if format!("{err:?}").contains("UnsupportedCertVersion") {
        return "the certificate is X.509 v1, and only v3 is accepted: sign it with an extension, e.g. \
                openssl x509 -req ... -extfile <(printf 'basicConstraints=CA:FALSE')"
            .into();
    }
    err.to_string()
}
