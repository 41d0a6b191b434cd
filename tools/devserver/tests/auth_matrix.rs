//! The auth matrix, generated from the route table: every route of template.yaml ×
//! every kind of bad token → 401, and the table unchanged. A route added later is
//! covered by adding it to the template (its events/ file is required anyway).

use chat_testkit::{
    TestTable, TokenSpec, fixture, jwks_config, load_event, mint_with, template, template_routes,
    to_request,
};
use devserver::Apps;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

/// The events/ fixture of each route key.
fn fixtures() -> Vec<(String, Value)> {
    let dir = chat_testkit::repo_root().join("events");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".json") {
            let event = load_event(&name);
            if let Some(key) = event["routeKey"].as_str() {
                out.push((key.to_owned(), event));
            }
        }
    }
    out
}

fn bad_tokens() -> Vec<(&'static str, Option<String>)> {
    let good = || TokenSpec::new("u-100", "acme", "admin");
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut not_yet = good();
    not_yet.extra.insert("nbf".into(), json!(now + 3600));
    // Every claim the verifier relies on, left out of an otherwise good deployed-style
    // token: absent must be refused like wrong (jsonwebtoken checks aud/iss only when
    // present unless they are required).
    let absent = REQUIRED_CLAIMS.iter().map(|claim| {
        let mut claims = good().claims();
        claims.as_object_mut().unwrap().remove(*claim);
        let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
        header.kid = Some("test-rs256".into());
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(fixture("rs256-private.pem").as_bytes())
            .unwrap();
        (
            *claim,
            Some(jsonwebtoken::encode(&header, &claims, &key).unwrap()),
        )
    });
    let mut cases = vec![
        ("no token", None),
        ("malformed", Some("not.a.token".to_owned())),
        (
            "expired",
            Some(
                TokenSpec {
                    expires_in_secs: -600,
                    ..good()
                }
                .mint_asymmetric(Algorithm::RS256),
            ),
        ),
        (
            "not yet valid",
            Some(not_yet.mint_asymmetric(Algorithm::RS256)),
        ),
        (
            "wrong issuer",
            Some(
                TokenSpec {
                    issuer: "evil".into(),
                    ..good()
                }
                .mint_asymmetric(Algorithm::RS256),
            ),
        ),
        (
            "wrong audience",
            Some(
                TokenSpec {
                    audience: "other".into(),
                    ..good()
                }
                .mint_asymmetric(Algorithm::RS256),
            ),
        ),
        (
            "alg none",
            Some(format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(&good().claims())
            )),
        ),
        (
            "HS256 with the RS256 public key",
            Some(mint_with(
                &good().claims(),
                fixture("rs256-public.pem").as_bytes(),
            )),
        ),
        ("local dev secret", Some(good().mint())),
    ];
    cases.extend(absent);
    cases
}

/// The claims a good token carries that the verifier needs; each gets an "absent" row.
const REQUIRED_CLAIMS: [&str; 6] = ["exp", "iss", "aud", "sub", "org", "role"];

#[tokio::test]
async fn every_route_refuses_every_bad_token_and_writes_nothing() {
    let table = TestTable::with_config(|endpoint, name| jwks_config(endpoint, name, "RS256")).await;
    let apps = Apps::new(table.runtime.clone());
    let routes = template_routes(&template());
    let fixtures = fixtures();
    // A valid deployed-style token works at all (else every 401 below means nothing).
    let ok = TokenSpec::new("u-100", "acme", "customer").mint_asymmetric(Algorithm::RS256);
    let mut probe = fixtures
        .iter()
        .find(|(k, _)| k == "GET /chat/conversations")
        .unwrap()
        .1
        .clone();
    probe["headers"]["authorization"] = json!(format!("Bearer {ok}"));
    let response = apps
        .call("ConversationsFunction", to_request(&probe))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let before = table.items().await;
    let mut checked = 0;
    for route in &routes {
        let (_, event) = fixtures
            .iter()
            .find(|(k, _)| *k == route.key())
            .unwrap_or_else(|| panic!("no event for {}", route.key()));
        for (case, token) in bad_tokens() {
            let mut event = event.clone();
            let public = devserver::PUBLIC_ROUTES.contains(&route.key().as_str());
            if public {
                // No bearer token opens a public route: without its own link token
                // it is refused whatever the token.
                event["rawQueryString"] = json!("");
                event
                    .as_object_mut()
                    .unwrap()
                    .remove("queryStringParameters");
            }
            match &token {
                Some(t) => event["headers"]["authorization"] = json!(format!("Bearer {t}")),
                None => {
                    event["headers"]
                        .as_object_mut()
                        .unwrap()
                        .remove("authorization");
                }
            }
            let response = apps
                .call(&route.function, to_request(&event))
                .await
                .expect("known function");
            let (status, body) = chat_testkit::response_json(&response);
            if public {
                assert_eq!(status, 403, "{} with {case}: {body}", route.key());
                checked += 1;
                continue;
            }
            assert_eq!(status, 401, "{} with {case}: {body}", route.key());
            assert_eq!(
                body["error"]["code"],
                "unauthenticated",
                "{} with {case}",
                route.key()
            );
            assert_eq!(body["success"], false);
            checked += 1;
        }
    }
    assert!(checked >= 30 * 15, "checked {checked} cases");
    assert_eq!(table.items().await, before, "no bad token wrote anything");
}
