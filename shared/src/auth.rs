//! Bearer-token verification: the algorithm is pinned by configuration, `exp` is
//! required, `iss`/`aud` are checked and required when configured, and the tenant, user and role
//! come only from verified claims.

use crate::error::ApiError;
use crate::ids::{OrgId, Role, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use std::fmt;

/// Who is calling: user, tenant and role, all from the verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: UserId,
    pub org: OrgId,
    pub role: Role,
}

impl Principal {
    /// The tenant's retention sweep, acting as an admin of `org` (its events name it).
    pub fn retention(org: &OrgId) -> Principal {
        Principal::system(org, crate::store::RETENTION_ACTOR)
    }

    /// One of the stack's own jobs (`actor`, a `system:` name), acting as an admin of
    /// `org`; its events name it.
    pub fn system(org: &OrgId, actor: &str) -> Principal {
        Principal {
            user: UserId::parse(actor).expect("a valid user id"),
            org: org.clone(),
            role: Role::Admin,
        }
    }
}

pub enum KeySource {
    Secret(Vec<u8>),
    /// A JWKS JSON document.
    Jwks(String),
    /// A JWKS document's URL, fetched on first use and refreshed on an unknown key
    /// id at most once per `refresh` (crate::jwks).
    JwksUrl {
        url: String,
        refresh: std::time::Duration,
    },
}

/// Where the verification keys are.
#[derive(Clone)]
enum Keys {
    Known(crate::jwks::Keys),
    Remote(std::sync::Arc<crate::jwks::RemoteKeys>),
}

#[derive(Clone)]
pub struct AuthConfig {
    pub algorithm: Algorithm,
    keys: Keys,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    validation: Validation,
    claim_sub: String,
    claim_org: String,
    claim_role: String,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("algorithm", &self.algorithm)
            .field(
                "keys",
                &match &self.keys {
                    Keys::Known(keys) => format!("{} known", keys.len()),
                    Keys::Remote(remote) => remote.url().to_owned(),
                },
            )
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl AuthConfig {
    pub fn new(
        algorithm: Algorithm,
        keys: KeySource,
        issuer: Option<String>,
        audience: Option<String>,
        [claim_sub, claim_org, claim_role]: [String; 3],
    ) -> Result<Self, String> {
        let keys = match keys {
            KeySource::Secret(secret) => {
                Keys::Known(vec![(None, DecodingKey::from_secret(&secret))])
            }
            KeySource::Jwks(doc) => Keys::Known(
                crate::jwks::keys_from_document(&doc, algorithm)
                    .map_err(|e| format!("JWT_JWKS: {e}"))?,
            ),
            KeySource::JwksUrl { url, refresh } => Keys::Remote(std::sync::Arc::new(
                crate::jwks::RemoteKeys::new(url, algorithm, refresh),
            )),
        };
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.leeway = 30;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // jsonwebtoken checks `aud`/`iss` only when the token carries them: a configured
        // audience or issuer is also a required claim, so leaving it out is no way past.
        let mut required = vec!["exp"];
        match &audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        Ok(AuthConfig {
            algorithm,
            keys,
            issuer,
            audience,
            validation,
            claim_sub,
            claim_org,
            claim_role,
        })
    }

    /// Verifies an `Authorization` header value and returns the principal, fetching
    /// the issuer's keys first when they come from a JWKS URL.
    pub async fn verify(&self, authorization: Option<&str>) -> Result<Principal, ApiError> {
        let (token, header) = bearer_token(authorization)?;
        match &self.keys {
            Keys::Known(keys) => self.verify_with(token, &header, keys),
            Keys::Remote(remote) => {
                // Boxed: the fetch's future is large, and every request's future would
                // otherwise carry it.
                let keys = Box::pin(remote.keys_for(header.kid.as_deref())).await?;
                self.verify_with(token, &header, &keys)
            }
        }
    }

    /// [`Self::verify`] for keys known at init (a secret or an inline JWKS).
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, ApiError> {
        let (token, header) = bearer_token(authorization)?;
        match &self.keys {
            Keys::Known(keys) => self.verify_with(token, &header, keys),
            Keys::Remote(_) => Err(ApiError::internal(
                "authenticate",
                "keys from a JWKS URL are verified with AuthConfig::verify",
            )),
        }
    }

    /// The JWKS URL's fetches so far (None with known keys).
    pub fn key_fetches(&self) -> Option<u64> {
        match &self.keys {
            Keys::Known(_) => None,
            Keys::Remote(remote) => Some(remote.fetches()),
        }
    }

    fn verify_with(
        &self,
        token: &str,
        header: &jsonwebtoken::Header,
        keys: &crate::jwks::Keys,
    ) -> Result<Principal, ApiError> {
        let unauthenticated = |why: &str| ApiError::Unauthenticated(why.to_owned());
        if header.alg != self.algorithm {
            return Err(unauthenticated("token algorithm not accepted"));
        }
        // A token naming a key must get that key (rotation); a token naming none may
        // only use a sole key.
        let key = crate::jwks::pick(keys, header.kid.as_deref()).ok_or_else(|| {
            unauthenticated(match header.kid {
                Some(_) => "unknown signing key",
                None => "token has no key id",
            })
        })?;
        let data =
            jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, key, &self.validation)
                .map_err(|e| {
                    use jsonwebtoken::errors::ErrorKind;
                    match e.kind() {
                        ErrorKind::ExpiredSignature => unauthenticated("token expired"),
                        ErrorKind::ImmatureSignature => unauthenticated("token not yet valid"),
                        ErrorKind::InvalidAudience => {
                            unauthenticated("token audience not accepted")
                        }
                        ErrorKind::InvalidIssuer => unauthenticated("token issuer not accepted"),
                        ErrorKind::MissingRequiredClaim(_) => {
                            unauthenticated("token lacks a required claim")
                        }
                        _ => unauthenticated("invalid token"),
                    }
                })?;
        self.principal(&data.claims)
    }

    fn principal(&self, claims: &serde_json::Map<String, Value>) -> Result<Principal, ApiError> {
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        let user = text(&self.claim_sub)
            .and_then(|s| UserId::parse(s).ok())
            .ok_or_else(|| ApiError::Unauthenticated("token has no valid subject".into()))?;
        let org = text(&self.claim_org)
            .and_then(|s| OrgId::parse(s).ok())
            .ok_or_else(|| ApiError::Unauthenticated("token has no valid tenant".into()))?;
        let role = role_from_claim(claims.get(&self.claim_role))
            .ok_or_else(|| ApiError::Unauthenticated("token has no valid role".into()))?;
        Ok(Principal { user, org, role })
    }
}

/// The bearer token of an `Authorization` header, and its header (unverified).
fn bearer_token(authorization: Option<&str>) -> Result<(&str, jsonwebtoken::Header), ApiError> {
    let unauthenticated = |why: &str| ApiError::Unauthenticated(why.to_owned());
    let token = authorization
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unauthenticated("missing bearer token"))?;
    let header =
        jsonwebtoken::decode_header(token).map_err(|_| unauthenticated("malformed token"))?;
    Ok((token, header))
}

/// A role claim is a string, or a list such as `cognito:groups`: the strongest known
/// role in the list wins.
fn role_from_claim(value: Option<&Value>) -> Option<Role> {
    match value? {
        Value::String(s) => Role::parse(s),
        Value::Array(items) => {
            let roles: Vec<Role> = items
                .iter()
                .filter_map(Value::as_str)
                .filter_map(Role::parse)
                .collect();
            [Role::Admin, Role::Agent, Role::Customer]
                .into_iter()
                .find(|r| roles.contains(r))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &[u8] = b"unit-test-secret-of-some-length";

    fn hs256(issuer: Option<&str>, audience: Option<&str>) -> AuthConfig {
        AuthConfig::new(
            Algorithm::HS256,
            KeySource::Secret(SECRET.to_vec()),
            issuer.map(str::to_owned),
            audience.map(str::to_owned),
            ["sub".into(), "org".into(), "role".into()],
        )
        .unwrap()
    }

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    fn token(claims: Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    fn good_claims() -> Value {
        json!({"sub": "u-1", "org": "acme", "role": "customer", "iss": "chat-local", "aud": "chat-api", "exp": now() + 600})
    }

    fn bearer(t: &str) -> String {
        format!("Bearer {t}")
    }

    #[test]
    fn valid_token_gives_the_principal() {
        let auth = hs256(Some("chat-local"), Some("chat-api"));
        let p = auth
            .authenticate(Some(&bearer(&token(good_claims()))))
            .unwrap();
        assert_eq!(p.user.as_str(), "u-1");
        assert_eq!(p.org.as_str(), "acme");
        assert_eq!(p.role, Role::Customer);
    }

    fn refused(auth: &AuthConfig, header: Option<&str>) -> String {
        match auth.authenticate(header) {
            Err(ApiError::Unauthenticated(why)) => why,
            other => panic!("expected 401, got {other:?}"),
        }
    }

    #[test]
    fn bad_tokens_are_refused() {
        let auth = hs256(Some("chat-local"), Some("chat-api"));
        assert_eq!(refused(&auth, None), "missing bearer token");
        assert_eq!(refused(&auth, Some("Basic abc")), "missing bearer token");
        assert_eq!(refused(&auth, Some("Bearer not.a.jwt")), "malformed token");

        let mut expired = good_claims();
        expired["exp"] = json!(now() - 3600);
        assert_eq!(
            refused(&auth, Some(&bearer(&token(expired)))),
            "token expired"
        );

        let mut no_exp = good_claims();
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            refused(&auth, Some(&bearer(&token(no_exp)))),
            "token lacks a required claim"
        );

        // A configured audience or issuer is required, not only checked when present.
        for claim in ["aud", "iss"] {
            let mut absent = good_claims();
            absent.as_object_mut().unwrap().remove(claim);
            assert_eq!(
                refused(&auth, Some(&bearer(&token(absent)))),
                "token lacks a required claim",
                "{claim}"
            );
        }

        let mut early = good_claims();
        early["nbf"] = json!(now() + 3600);
        assert_eq!(
            refused(&auth, Some(&bearer(&token(early)))),
            "token not yet valid"
        );

        let mut wrong_aud = good_claims();
        wrong_aud["aud"] = json!("someone-else");
        assert_eq!(
            refused(&auth, Some(&bearer(&token(wrong_aud)))),
            "token audience not accepted"
        );

        let mut wrong_iss = good_claims();
        wrong_iss["iss"] = json!("evil");
        assert_eq!(
            refused(&auth, Some(&bearer(&token(wrong_iss)))),
            "token issuer not accepted"
        );

        let mut bad_role = good_claims();
        bad_role["role"] = json!("root");
        assert_eq!(
            refused(&auth, Some(&bearer(&token(bad_role)))),
            "token has no valid role"
        );

        let mut bad_org = good_claims();
        bad_org["org"] = json!("a#b");
        assert_eq!(
            refused(&auth, Some(&bearer(&token(bad_org)))),
            "token has no valid tenant"
        );

        let forged = encode(
            &Header::new(Algorithm::HS256),
            &good_claims(),
            &EncodingKey::from_secret(b"another-secret-entirely!"),
        )
        .unwrap();
        assert_eq!(refused(&auth, Some(&bearer(&forged))), "invalid token");
    }

    #[test]
    fn alg_none_is_refused() {
        use base64::Engine;
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let unsigned = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&good_claims())
        );
        let auth = hs256(None, None);
        let why = refused(&auth, Some(&bearer(&unsigned)));
        assert!(
            why == "malformed token" || why == "token algorithm not accepted",
            "{why}"
        );
    }

    #[test]
    fn cognito_style_group_lists_pick_the_strongest_role() {
        assert_eq!(
            role_from_claim(Some(&json!(["customer", "agent"]))),
            Some(Role::Agent)
        );
        assert_eq!(role_from_claim(Some(&json!(["staff"]))), None);
        assert_eq!(role_from_claim(Some(&json!(5))), None);
    }

    #[test]
    fn jwks_keys_for_another_algorithm_are_not_used() {
        let doc = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"}]}).to_string();
        let err = AuthConfig::new(
            Algorithm::RS256,
            KeySource::Jwks(doc),
            None,
            None,
            ["sub".into(), "org".into(), "role".into()],
        )
        .unwrap_err();
        assert!(err.contains("no usable"), "{err}");
    }
}
