//! Token parsing: `AuthConfig::authenticate` with the local HS256 configuration on
//! (a) arbitrary Authorization header text and (b) arbitrary claims *correctly
//! signed* with the secret, so claim handling is reached too. Never panics; a
//! principal comes out only with valid ids and a known role, and never for (a)
//! unless the input happens to be a genuinely signed token.
#![no_main]

use chat_core::auth::{AuthConfig, KeySource};
use chat_core::config::LOCAL_DEV_SECRET;
use chat_core::ids::{OrgId, UserId};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn config() -> &'static AuthConfig {
    static CONFIG: OnceLock<AuthConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        AuthConfig::new(
            Algorithm::HS256,
            KeySource::Secret(LOCAL_DEV_SECRET.as_bytes().to_vec()),
            Some("chat-local".into()),
            Some("chat-api".into()),
            ["sub".into(), "org".into(), "role".into()],
        )
        .expect("local auth config")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let result = if mode % 2 == 0 {
        config().authenticate(Some(text))
    } else {
        // Arbitrary claims (a JSON object or not), validly signed.
        let Ok(claims) = serde_json::from_str::<serde_json::Value>(text) else {
            return;
        };
        let Ok(token) = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(LOCAL_DEV_SECRET.as_bytes()),
        ) else {
            return;
        };
        config().authenticate(Some(&format!("Bearer {token}")))
    };
    match result {
        Ok(who) => {
            assert!(UserId::parse(who.user.as_str()).is_ok());
            assert!(OrgId::parse(who.org.as_str()).is_ok());
            assert!(!who.org.as_str().contains('#'));
        }
        Err(err) => assert_eq!(err.status().as_u16(), 401, "{err:?}"),
    }
});
