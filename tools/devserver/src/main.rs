//! `devserver serve` runs the local API on 127.0.0.1:3000; `devserver token` mints a
//! local token. The Makefile's `make dev` sets the environment.

use chat_core::Runtime;
use chat_core::config::Config;
use devserver::{Apps, event_for, find_route};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("token") => {
            let flag = |name: &str, default: &str| {
                args.windows(2)
                    .find(|w| w[0] == name)
                    .map(|w| w[1].clone())
                    .unwrap_or_else(|| default.to_owned())
            };
            let spec = chat_testkit::TokenSpec {
                expires_in_secs: flag("--hours", "12").parse::<i64>().unwrap_or(12) * 3600,
                ..chat_testkit::TokenSpec::new(
                    &flag("--sub", "u-100"),
                    &flag("--org", "acme"),
                    &flag("--role", "customer"),
                )
            };
            println!("{}", spec.mint());
            Ok(())
        }
        Some("serve") | None => serve().await,
        Some(other) => Err(format!(
            "unknown command {other:?}: use `serve` or `token --sub U --role R [--org O]`"
        )
        .into()),
    }
}

async fn serve() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    chat_core::app::init_tracing();
    let config = Config::from_env()?;
    let endpoint = config
        .dynamodb_endpoint
        .clone()
        .ok_or("DYNAMODB_ENDPOINT is required for the dev server")?;
    let client = chat_testkit::local_client(&endpoint).await;
    if !chat_testkit::table_exists(&client, &config.table_name).await {
        chat_testkit::create_table(&client, &config.table_name).await?;
        eprintln!("created table {} from template.yaml", config.table_name);
    }
    let routes = Arc::new(chat_testkit::template_routes(&chat_testkit::template()));
    let apps = Arc::new(Apps::new(Runtime::from_config(config).await));
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!(
        "chat API on http://127.0.0.1:{port} ({} routes from template.yaml)\n\
         mint a local token: cargo run -q -p devserver -- token --sub u-100 --role customer [--org acme]\n\
         then: curl -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:{port}/chat/conversations",
        routes.len()
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let (routes, apps) = (routes.clone(), apps.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let (routes, apps) = (routes.clone(), apps.clone());
                async move { Ok::<_, Infallible>(handle(&routes, &apps, req).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    routes: &[chat_testkit::Route],
    apps: &Apps,
    req: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let Some((route, params)) = find_route(routes, parts.method.as_str(), &path) else {
        // What API Gateway answers for a route it does not have.
        return plain(404, r#"{"message":"Not Found"}"#);
    };
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return plain(400, r#"{"message":"Bad Request"}"#),
    };
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_owned(), v.to_owned()))
        })
        .collect();
    let body = (!body.is_empty()).then(|| String::from_utf8_lossy(&body).into_owned());
    let event = event_for(route, params, &path, parts.uri.query(), &headers, body);
    let Some(response) = apps.call(&route.function, event.request()).await else {
        return plain(500, r#"{"message":"Internal Server Error"}"#);
    };
    let (parts, body) = response.into_parts();
    let bytes = match body {
        lambda_http::Body::Text(t) => Bytes::from(t),
        lambda_http::Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    hyper::Response::from_parts(parts, Full::new(bytes))
}

fn plain(status: u16, body: &'static str) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::NOT_FOUND);
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}
