//! TLS options from JS -> [`TlsServer`], with a cache: a `tls` callback usually returns the
//! same PEM bytes for every connection of a name, and building a configuration (PEM parsing,
//! key loading) costs far more than hashing them.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::tls::{TlsMaterial, TlsServer};

/// pg-gateway's `TlsOptions`.
#[napi(object)]
pub struct TlsOptionsInput {
    pub key: Buffer,
    pub cert: Buffer,
    pub ca: Option<Buffer>,
    pub passphrase: Option<String>,
}

impl TlsOptionsInput {
    fn material(&self) -> TlsMaterial {
        TlsMaterial {
            key: self.key.to_vec(),
            cert: self.cert.to_vec(),
            ca: self.ca.as_ref().map(|ca| ca.to_vec()),
            passphrase: self.passphrase.clone(),
        }
    }
}

const CACHE_LIMIT: usize = 256;

type Cache = Mutex<HashMap<u64, Vec<(TlsMaterial, bool, Arc<TlsServer>)>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Cache::default)
}

/// The configuration for these options, built once per distinct set of options.
pub fn tls_server(options: &TlsOptionsInput, request_client_certificate: bool) -> Result<Arc<TlsServer>> {
    let material = options.material();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (&material, request_client_certificate).hash(&mut hasher);
    let key = hasher.finish();
    let mut cache = cache().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(found) = cache.get(&key).and_then(|entries| {
        entries.iter().find(|(m, r, _)| *m == material && *r == request_client_certificate).map(|(_, _, s)| s.clone())
    }) {
        return Ok(found);
    }
    let server = Arc::new(
        TlsServer::new(&material, request_client_certificate)
            .map_err(|err| Error::new(Status::InvalidArg, err.to_string()))?,
    );
    if cache.len() >= CACHE_LIMIT {
        cache.clear();
    }
    cache.entry(key).or_default().push((material, request_client_certificate, server.clone()));
    Ok(server)
}
