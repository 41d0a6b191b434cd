//! What every call pays before any code of ours runs on its data, measured in the
//! same run as the endpoints so their overhead can be read against it:
//!
//! - the front: a call through the dev server that is answered before any DynamoDB
//!   request (the HTTP hop, the API Gateway event built and parsed back as the Lambda
//!   runtime does, route lookup, JWT verification, the error envelope);
//! - the SDK: a GetItem of an absent item (so nothing to parse) sent by the
//!   handlers' own client, against the same request's recorded bytes sent directly
//!   (building and signing the request, its interceptors and orchestration).
//!
//! An endpoint's overhead beyond the floor is then what our code adds per call.

use crate::{ROUNDS, Setup, WARMUP_ROUNDS, api_request, ms, percentile, replay_request, send};
use aws_sdk_dynamodb::types::AttributeValue;
use chat_core::ids::{OrgId, UserId};
use chat_core::keys;
use std::time::Instant;

pub struct Floor {
    /// p50 of a call answered before DynamoDB, ms.
    pub front: f64,
    /// p50 of the SDK's GetItem and of its bytes sent directly, ms.
    pub sdk: f64,
    pub raw: f64,
}

impl Floor {
    /// What the SDK adds to one request, ms.
    pub fn per_request(&self) -> f64 {
        self.sdk - self.raw
    }

    /// The least ratio a call of `requests` DynamoDB requests taking `raw` ms can show:
    /// the front once, the SDK's share per request.
    pub fn least_ratio(&self, raw: f64, requests: f64) -> f64 {
        (raw + self.front + requests * self.per_request()) / raw
    }

    /// What a call adds beyond the floor, µs.
    pub fn beyond(&self, p50: f64, raw: f64, requests: f64) -> f64 {
        (p50 - raw - self.front - requests * self.per_request()) * 1000.0
    }
}

pub async fn measure(s: &Setup) -> Floor {
    // A page size of 0 is refused by the handler before it reads anything.
    let path = format!("/chat/conversations/{}/messages?limit=0", s.conversation);
    let org = OrgId::parse("acme").expect("org id");
    let user = UserId::parse("u-nobody").expect("user id");
    let absent_profile = || {
        s.client
            .get_item()
            .table_name(&s.table.name)
            .key(keys::PK, AttributeValue::S(keys::user_pk(&org, &user)))
            .key(keys::SK, AttributeValue::S(keys::PROFILE_SK.into()))
            .consistent_read(true)
    };
    let (mut front, mut sdk, mut raw) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..WARMUP_ROUNDS + ROUNDS {
        let request = api_request(s.port, "GET", &path, &s.customer, None);
        let t = Instant::now();
        let (status, _) = send(&s.http, request).await;
        let front_ms = ms(t.elapsed());
        assert_eq!(status, 422, "the floor's call is refused by validation");
        assert!(
            s.recorder.take().is_empty(),
            "the floor's call reads nothing"
        );

        let t = Instant::now();
        absent_profile().send().await.expect("GetItem on loopback");
        let sdk_ms = ms(t.elapsed());
        let wire = s.recorder.take();
        let [get] = wire.as_slice() else {
            panic!("one GetItem recorded, got {}", wire.len())
        };
        let request = replay_request(get, get.body.clone());
        let t = Instant::now();
        let (status, _) = send(&s.http, request).await;
        let raw_ms = ms(t.elapsed());
        assert_eq!(status, 200, "the raw GetItem is answered");
        if round >= WARMUP_ROUNDS {
            front.push(front_ms);
            sdk.push(sdk_ms);
            raw.push(raw_ms);
        }
    }
    Floor {
        front: percentile(&mut front, 0.5),
        sdk: percentile(&mut sdk, 0.5),
        raw: percentile(&mut raw, 0.5),
    }
}
