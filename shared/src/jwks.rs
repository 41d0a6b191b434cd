//! Signing keys from a JWKS URL (a Cognito user pool's, an OIDC issuer's): fetched on
//! first use, then cached; a token naming a key id the cache lacks (the issuer
//! rotated its keys) refreshes it, at most once per [`REFRESH_INTERVAL`]; each fetch
//! gives up after [`FETCH_TIMEOUT`]. Init never touches the network: the HTTPS client
//! itself is built on the first fetch.

use crate::error::ApiError;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// A key set: (kid, key); a token's `kid` picks the key, or the only key when the
/// token names none.
pub type Keys = Vec<(Option<String>, DecodingKey)>;

/// Shortest time between two fetches caused by unknown key ids, by default
/// (JWT_JWKS_REFRESH_SECS).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// Shortest time between two tries while no key set was ever fetched (the answer's
/// Retry-After).
pub const RETRY_INTERVAL: Duration = Duration::from_secs(5);
/// One fetch, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest JWKS document read.
const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// The plain hyper client the crate's own HTTPS calls share (JWKS, S3 requests signed
/// by the SDK's signer): the platform's roots, HTTP/1.1, `http://` for local doubles.
pub(crate) type Https<B = Empty<Bytes>> = Client<hyper_rustls::HttpsConnector<HttpConnector>, B>;

/// Builds [`Https`]; callers build it on first use and keep it.
pub(crate) fn https_client<B>() -> Result<Https<B>, String>
where
    B: hyper::body::Body + Send,
    B::Data: Send,
{
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("no TLS roots: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// The usable keys of a JWKS document for `algorithm` (keys published for another
/// algorithm are skipped, never used).
pub fn keys_from_document(doc: &str, algorithm: Algorithm) -> Result<Keys, String> {
    let set: JwkSet = serde_json::from_str(doc).map_err(|e| format!("not a JWKS document: {e}"))?;
    let keys: Keys = set
        .keys
        .iter()
        .filter(|jwk| {
            jwk.common
                .key_algorithm
                .is_none_or(|a| format!("{a:?}") == format!("{algorithm:?}"))
        })
        .filter_map(|jwk| {
            DecodingKey::from_jwk(jwk)
                .ok()
                .map(|key| (jwk.common.key_id.clone(), key))
        })
        .collect();
    if keys.is_empty() {
        return Err(format!("no usable {algorithm:?} key"));
    }
    Ok(keys)
}

/// The key of a token from `keys`: the one its `kid` names, or the only key for a
/// token that names none. None when the set has no such key.
pub fn pick<'a>(keys: &'a Keys, kid: Option<&str>) -> Option<&'a DecodingKey> {
    match (kid, keys.as_slice()) {
        (Some(kid), keys) => keys
            .iter()
            .find(|(k, _)| k.as_deref() == Some(kid))
            .or_else(|| keys.first().filter(|(k, _)| k.is_none() && keys.len() == 1))
            .map(|(_, key)| key),
        (None, [(_, only)]) => Some(only),
        (None, _) => None,
    }
}

/// Keys behind a URL, cached.
pub struct RemoteKeys {
    url: String,
    algorithm: Algorithm,
    refresh: Duration,
    state: tokio::sync::Mutex<Cached>,
    client: OnceLock<Result<Https, String>>,
    fetches: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct Cached {
    keys: Option<Arc<Keys>>,
    /// When the last fetch was tried (successful or not).
    tried_at: Option<Instant>,
}

impl RemoteKeys {
    pub fn new(url: String, algorithm: Algorithm, refresh: Duration) -> Self {
        RemoteKeys {
            url,
            algorithm,
            refresh,
            state: tokio::sync::Mutex::new(Cached::default()),
            client: OnceLock::new(),
            fetches: Default::default(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Fetches made so far (each try counts).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The key set to verify a token naming `kid` with: the cached one, fetched first
    /// when there is none or it lacks `kid` (at most once per refresh interval).
    /// Unreachable keys with nothing cached are a 503 (the caller may retry); an
    /// unknown key with a fresh cache is the caller's answer to give (401).
    pub async fn keys_for(&self, kid: Option<&str>) -> Result<Arc<Keys>, ApiError> {
        let mut cached = self.state.lock().await;
        let known = cached
            .keys
            .as_ref()
            .is_some_and(|keys| pick(keys, kid).is_some());
        let interval = match cached.keys {
            Some(_) => self.refresh,
            None => RETRY_INTERVAL.min(self.refresh),
        };
        let may_fetch = cached.tried_at.is_none_or(|at| at.elapsed() >= interval);
        if !known && may_fetch {
            cached.tried_at = Some(Instant::now());
            match Box::pin(self.fetch()).await {
                Ok(keys) => cached.keys = Some(Arc::new(keys)),
                Err(why) => tracing::warn!(url = %self.url, why, "JWKS fetch failed"),
            }
        }
        cached.keys.clone().ok_or_else(|| ApiError::Unavailable {
            code: "auth_unavailable",
            message: "the identity provider's signing keys are unavailable, retry shortly".into(),
            retry_after_secs: RETRY_INTERVAL.as_secs() as u32,
        })
    }

    async fn fetch(&self) -> Result<Keys, String> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let client = self
            .client
            .get_or_init(https_client)
            .as_ref()
            .map_err(Clone::clone)?;
        let uri: hyper::Uri = self.url.parse().map_err(|e| format!("bad URL: {e}"))?;
        let get = async {
            let response = client.get(uri).await.map_err(|e| format!("request: {e}"))?;
            if !response.status().is_success() {
                return Err(format!("status {}", response.status()));
            }
            let body = Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
                .collect()
                .await
                .map_err(|e| format!("body: {e}"))?
                .to_bytes();
            let doc = String::from_utf8_lossy(&body);
            keys_from_document(&doc, self.algorithm)
        };
        tokio::time::timeout(FETCH_TIMEOUT, get)
            .await
            .map_err(|_| "timed out".to_owned())?
    }
}

impl std::fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeys")
            .field("url", &self.url)
            .finish()
    }
}
