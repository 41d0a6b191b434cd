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
