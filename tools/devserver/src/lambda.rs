//! The local stack's Lambda Invoke API for the functions AWS services invoke directly
//! (not through the HTTP API): `POST /2015-03-31/functions/{name}/invocations`, as
//! SES's Lambda action calls the inbound-email function. The local SMTP endpoint
//! (scripts/smtp-inbound.py) invokes it with boto3, as SES would.

use chat_core::Runtime;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;

/// The names the inbound-email function answers to: its template logical id and
/// its binary's name.
pub const INBOUND_EMAIL_NAMES: [&str; 2] = ["InboundEmailFunction", "inbound-email"];

/// Serves the Invoke API on 127.0.0.1:`port` (0: any free port) until the process
/// ends: the port.
pub async fn serve_lambda(runtime: &Runtime, port: u16) -> std::io::Result<u16> {
    let inbound = Arc::new(webhooks::Inbound::new(runtime.clone()));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let inbound = inbound.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<Incoming>| {
                    let inbound = inbound.clone();
                    async move { Ok::<_, Infallible>(invoke(&inbound, req).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(port)
}

fn answer(status: u16, headers: &[(&str, &str)], body: String) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json");
    for (name, value) in headers {
        response = response.header(*name, *value);
    }
    response
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

async fn invoke(
    inbound: &Arc<webhooks::Inbound>,
    req: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let name = path
        .strip_prefix("/2015-03-31/functions/")
        .and_then(|rest| rest.strip_suffix("/invocations"))
        .map(chat_testkit::percent_decode);
    let known = name.as_deref().is_some_and(|n| {
        INBOUND_EMAIL_NAMES.contains(&n) || n.ends_with(":function:InboundEmailFunction")
    });
    if req.method() != hyper::Method::POST || !known {
        let message = format!("Function not found: {}", name.unwrap_or_default());
        return answer(
            404,
            &[("x-amzn-errortype", "ResourceNotFoundException")],
            json!({"Type": "User", "Message": message}).to_string(),
        );
    }
    let invocation = req
        .headers()
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("RequestResponse")
        .to_owned();
    let body = match req.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return answer(400, &[], json!({"Message": "unreadable body"}).to_string()),
    };
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return answer(
            400,
            &[("x-amzn-errortype", "InvalidRequestContentException")],
            json!({"Type": "User", "Message": "Could not parse request body into json"})
                .to_string(),
        );
    };
    match invocation.as_str() {
        "DryRun" => answer(204, &[], String::new()),
        "Event" => {
            let inbound = inbound.clone();
            tokio::spawn(async move {
                if let Err(err) = inbound.handle(event).await {
                    tracing::error!(%err, "inbound email not handled");
                }
            });
            answer(202, &[], String::new())
        }
        _ => match inbound.handle(event).await {
            Ok(result) => answer(200, &[], result.to_string()),
            Err(err) => answer(
                200,
                &[("x-amz-function-error", "Unhandled")],
                json!({"errorType": "ApiError", "errorMessage": err.to_string()}).to_string(),
            ),
        },
    }
}
