//! Deployed-style verification: RS256 and ES256 keys from a JWKS document.

use chat_core::ApiError;
use chat_core::auth::AuthConfig;
use chat_testkit::{TokenSpec, fixture, jwks_config, mint_with};
use jsonwebtoken::Algorithm;

fn auth(algorithm: &str) -> AuthConfig {
    jwks_config("http://127.0.0.1:1", "unused", algorithm).auth
}

fn refused(auth: &AuthConfig, token: &str) -> String {
    match auth.authenticate(Some(&format!("Bearer {token}"))) {
        Err(ApiError::Unauthenticated(why)) => why,
        other => panic!("expected 401, got {other:?}"),
    }
}

#[test]
fn rs256_and_es256_tokens_verify_against_the_jwks() {
    let spec = TokenSpec::new("u-1", "acme", "agent");
    let rs = auth("RS256")
        .authenticate(Some(&format!(
            "Bearer {}",
            spec.mint_asymmetric(Algorithm::RS256)
        )))
        .unwrap();
    assert_eq!((rs.user.as_str(), rs.org.as_str()), ("u-1", "acme"));
    let es = auth("ES256")
        .authenticate(Some(&format!(
            "Bearer {}",
            spec.mint_asymmetric(Algorithm::ES256)
        )))
        .unwrap();
    assert_eq!(es.user.as_str(), "u-1");
}

#[test]
fn the_pinned_algorithm_is_the_only_one_accepted() {
    let spec = TokenSpec::new("u-1", "acme", "admin");
    // ES256 token to an RS256 deployment, and the reverse.
    assert_eq!(
        refused(&auth("RS256"), &spec.mint_asymmetric(Algorithm::ES256)),
        "token algorithm not accepted"
    );
    assert_eq!(
        refused(&auth("ES256"), &spec.mint_asymmetric(Algorithm::RS256)),
        "token algorithm not accepted"
    );
    // Algorithm confusion: HS256 "signed" with the RSA public key as the secret.
    let confused = mint_with(&spec.claims(), fixture("rs256-public.pem").as_bytes());
    assert_eq!(
        refused(&auth("RS256"), &confused),
        "token algorithm not accepted"
    );
    // The local secret means nothing to a deployed stack.
    assert_eq!(
        refused(&auth("RS256"), &spec.mint()),
        "token algorithm not accepted"
    );
}

#[test]
fn unknown_key_ids_and_bad_claims_are_refused() {
    let spec = TokenSpec::new("u-1", "acme", "admin");
    let token = spec.mint_asymmetric(Algorithm::RS256);
    // Re-sign with the right key but announce a kid the JWKS does not have.
    let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
    header.kid = Some("rotated-away".into());
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(fixture("rs256-private.pem").as_bytes()).unwrap();
    let unknown_kid = jsonwebtoken::encode(&header, &spec.claims(), &key).unwrap();
    assert_eq!(refused(&auth("RS256"), &unknown_kid), "unknown signing key");
    assert!(
        auth("RS256")
            .authenticate(Some(&format!("Bearer {token}")))
            .is_ok()
    );

    let expired = TokenSpec {
        expires_in_secs: -120,
        ..spec.clone()
    }
    .mint_asymmetric(Algorithm::RS256);
    assert_eq!(refused(&auth("RS256"), &expired), "token expired");
    let wrong_iss = TokenSpec {
        issuer: "someone".into(),
        ..spec.clone()
    }
    .mint_asymmetric(Algorithm::RS256);
    assert_eq!(
        refused(&auth("RS256"), &wrong_iss),
        "token issuer not accepted"
    );
}

/// A token of `spec` signed with the RS256 test key, announcing `kid`.
fn signed_as(spec: &TokenSpec, kid: &str) -> String {
    let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(fixture("rs256-private.pem").as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &spec.claims(), &key).unwrap()
}

/// The test JWKS with its RS256 key published under `kid`.
fn jwks_with_kid(kid: &str) -> String {
    fixture("jwks.json").replace("\"test-rs256\"", &format!("\"{kid}\""))
}

fn url_config(url: &str, refresh_secs: &str) -> AuthConfig {
    let env: std::collections::HashMap<String, String> = [
        ("TABLE_NAME", "unused"),
        ("CHAT_LOCAL", "1"),
        ("JWT_ALGORITHM", "RS256"),
        ("JWT_JWKS_URL", url),
        ("JWT_JWKS_REFRESH_SECS", refresh_secs),
        ("JWT_ISSUER", chat_testkit::LOCAL_ISSUER),
        ("JWT_AUDIENCE", chat_testkit::LOCAL_AUDIENCE),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    chat_core::config::Config::from_map(&env).unwrap().auth
}

#[tokio::test]
async fn keys_from_a_url_are_fetched_on_first_use_cached_and_follow_a_rotation() {
    let served = std::sync::Arc::new(std::sync::Mutex::new(jwks_with_kid("key-1")));
    let document = served.clone();
    let idp = chat_testkit::HttpDouble::start(move |_| {
        (
            200,
            document.lock().unwrap().clone(),
            std::time::Duration::ZERO,
        )
    })
    .await;
    let auth = url_config(&format!("{}/.well-known/jwks.json", idp.url()), "1");
    assert_eq!(auth.key_fetches(), Some(0), "nothing fetched at init");
    let spec = TokenSpec::new("u-1", "acme", "agent");
    let bearer = |token: &str| format!("Bearer {token}");
    let first = signed_as(&spec, "key-1");
    for _ in 0..3 {
        let who = auth.verify(Some(&bearer(&first))).await.unwrap();
        assert_eq!(who.user.as_str(), "u-1");
    }
    assert_eq!(auth.key_fetches(), Some(1), "fetched once, then cached");
    assert_eq!(idp.recorded()[0].path, "/.well-known/jwks.json");

    // The issuer rotates to key-2. Tokens naming it refresh the cache, at most once
    // per refresh interval: right after a fetch, an unknown key is simply unknown.
    *served.lock().unwrap() = jwks_with_kid("key-2");
    let second = signed_as(&spec, "key-2");
    match auth.verify(Some(&bearer(&second))).await {
        Err(ApiError::Unauthenticated(why)) => assert_eq!(why, "unknown signing key"),
        other => panic!("within the interval: {other:?}"),
    }
    assert_eq!(auth.key_fetches(), Some(1), "no fetch inside the interval");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert!(auth.verify(Some(&bearer(&second))).await.is_ok());
    assert_eq!(auth.key_fetches(), Some(2));
    // The retired key no longer verifies, and asking again inside the interval
    // fetches nothing: a flood of bad key ids cannot flood the issuer.
    for _ in 0..5 {
        assert!(matches!(
            auth.verify(Some(&bearer(&first))).await,
            Err(ApiError::Unauthenticated(_))
        ));
    }
    assert_eq!(auth.key_fetches(), Some(2));
}

#[tokio::test]
async fn an_unreachable_or_broken_jwks_endpoint_is_503_never_500() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let token = signed_as(&TokenSpec::new("u-1", "acme", "agent"), "key-1");
    let bearer = format!("Bearer {token}");
    let broken =
        chat_testkit::HttpDouble::start(|_| (500, "oops".to_owned(), std::time::Duration::ZERO))
            .await;
    let not_jwks = chat_testkit::HttpDouble::start(|_| {
        (200, "{\"keys\": 5}".to_owned(), std::time::Duration::ZERO)
    })
    .await;
    for url in [
        format!("http://127.0.0.1:{closed}/jwks.json"),
        format!("{}/jwks.json", broken.url()),
        format!("{}/jwks.json", not_jwks.url()),
    ] {
        let auth = url_config(&url, "60");
        let err = auth.verify(Some(&bearer)).await.unwrap_err();
        assert_eq!(
            (err.status().as_u16(), err.code()),
            (503, "auth_unavailable"),
            "{url}: {err:?}"
        );
        assert!(err.retry_after_secs().is_some());
        // Until the retry interval passes, callers get the same answer at no cost.
        assert!(auth.verify(Some(&bearer)).await.is_err());
        assert_eq!(auth.key_fetches(), Some(1), "{url}");
    }
}
