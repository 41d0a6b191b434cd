//! `devserver serve` runs the local API on 127.0.0.1:3000; `devserver token` mints a
//! local token. The Makefile's `make dev` sets the environment.

use chat_core::Runtime;
use chat_core::config::Config;
use devserver::Apps;
use std::sync::Arc;

/// Domains the local inbound mail server's DNS lets send from loopback (SPF), so a
/// reply from `sam@customer.localhost` is authenticated as SES would find it.
const LOCAL_MAIL_DOMAINS: [&str; 2] = ["customer.localhost", "acme.localhost"];

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
        Some("rollup") => {
            // The analytics-rollup function's handler, on the local table: a scheduled
            // run (today and yesterday) or `--from D --to D` to backfill.
            let config = Config::from_env()?;
            let store = Runtime::from_config(config).await.store;
            let flag = |name: &str| args.windows(2).find(|w| w[0] == name).map(|w| w[1].clone());
            let event = match (flag("--from"), flag("--to")) {
                (Some(from), Some(to)) => serde_json::json!({ "from": from, "to": to }),
                _ => serde_json::json!({ "source": "aws.events", "detail-type": "Scheduled Event" }),
            };
            let summary = analytics_rollup::Rollup::new(store, 2).run(event).await?;
            println!("{summary}");
            Ok(())
        }
        Some("retention") => {
            // One run of the privacy-jobs function's retention sweep on the local table
            // and bucket (the local stack also runs it every hour).
            let config = Config::from_env()?;
            let jobs = privacy::Jobs::from_runtime(Runtime::from_config(config).await);
            let summary = jobs.sweeper.run().await?;
            println!("{}", serde_json::to_string(&summary)?);
            Ok(())
        }
        Some(other) => Err(format!(
            "unknown command {other:?}: use `serve`, `token --sub U --role R [--org O]`, `rollup [--from D --to D]` or `retention`"
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
    let ai = messages::ai::Ai::from_env(&std::env::vars().collect(), &config.aws).await?;
    if let Some(uploads) = &config.uploads {
        // The local S3 server for uploads, as the endpoint in the environment names it.
        let port = uploads
            .endpoint
            .as_deref()
            .and_then(|e| e.rsplit(':').next())
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .unwrap_or(9000);
        // S3_DATA_DIR: another place for the files (the browser tests use a fresh one).
        let root = std::env::var("S3_DATA_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| chat_testkit::repo_root().join(".local/s3-data"));
        chat_testkit::serve_s3(&root, port)?;
        chat_testkit::make_bucket(&root, &uploads.bucket)?;
        eprintln!(
            "S3 (uploads) on http://127.0.0.1:{port}, bucket {}",
            uploads.bucket
        );
    }
    let runtime = Runtime::from_config(config).await;
    let ws_port: u16 = std::env::var("WS_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3001);
    let (ws_port, _realtime) = devserver::realtime::serve_realtime(&runtime, ws_port).await?;
    devserver::delivery::serve_webhook_delivery(&runtime, runtime.config.webhooks.clone()).await;
    let privacy_jobs = devserver::privacy_jobs::serve_privacy_jobs(&runtime).await;
    // The retention sweep's schedule (hourly, as on AWS).
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            privacy_jobs.sweep().await;
        }
    });
    let support_jobs = devserver::support_jobs::serve_support_jobs(&runtime).await;
    // The support desk's minute (SLA breaches, agents away), as the schedule on AWS.
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            support_jobs.every_minute().await;
        }
    });
    devserver::notify::serve_notifications(&runtime).await;
    // A Web Push service on loopback for the browsers of `make dev` to subscribe with
    // (web-push-testing: it checks VAPID, decrypts, and keeps what it got).
    let push_port: u16 = std::env::var("PUSH_SERVICE_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8091);
    // PUSH_SERVICE_PORT=0: none (a second dev server beside a first).
    let _push_service = match push_port {
        0 => None,
        port => {
            let service = chat_testkit::PushService::start_on(port).await;
            eprintln!("Web Push service (web-push-testing) on http://127.0.0.1:{port}");
            Some(service)
        }
    };
    // Amazon SES v2 on loopback for notification emails (aws-ses-v2-local: it keeps
    // every mail; its viewer is its root page). SES_PORT=0: none.
    let ses_port: u16 = std::env::var("SES_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8025);
    let _mail_service = match ses_port {
        0 => None,
        port => {
            let service = chat_testkit::MailService::start_on(port).await;
            eprintln!("SES v2 (aws-ses-v2-local) on http://127.0.0.1:{port}: the mails sent");
            Some(service)
        }
    };
    // Amazon SNS on loopback for mobile push (moto's server, with the local platform
    // applications of scripts/local.env). SNS_PORT=0: none.
    let sns_port: u16 = std::env::var("SNS_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8026);
    let _sns_service = match sns_port {
        0 => None,
        port => {
            let service = chat_testkit::SnsService::start_on(port).await;
            eprintln!(
                "SNS (moto) on http://127.0.0.1:{port}: mobile pushes at /moto-api/data.json"
            );
            Some(service)
        }
    };
    // Replies by email: the Lambda Invoke API for the inbound-email function, and an
    // SMTP server that receives mail for the inbound domain as SES does and invokes
    // it (scripts/smtp-inbound.py). SMTP_PORT=0: none.
    let lambda_port: u16 = std::env::var("LAMBDA_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3002);
    let lambda_port = devserver::lambda::serve_lambda(&runtime, lambda_port).await?;
    let smtp_port: u16 = std::env::var("SMTP_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(2525);
    let inbound_domain = runtime
        .config
        .notify
        .email
        .as_ref()
        .and_then(|e| e.inbound_domain.clone());
    let _inbound_mail = match (smtp_port, inbound_domain, runtime.config.uploads.clone()) {
        (0, _, _) | (_, None, _) | (_, _, None) => None,
        (port, Some(domain), Some(uploads)) => {
            let service = chat_testkit::InboundMail::start_on(
                port,
                &domain,
                uploads
                    .endpoint
                    .as_deref()
                    .unwrap_or("http://127.0.0.1:9000"),
                &uploads.bucket,
                &format!("http://127.0.0.1:{lambda_port}"),
            )
            .await;
            // Mail from these local domains passes SPF from loopback (docs/email.md).
            for local in LOCAL_MAIL_DOMAINS {
                service.dns.publish(local, "v=spf1 ip4:127.0.0.1 -all");
            }
            eprintln!(
                "SMTP (inbound mail for {domain}, as SES receives it) on 127.0.0.1:{port}; \
                 the inbound-email function's Invoke API on http://127.0.0.1:{lambda_port}"
            );
            Some(service)
        }
    };
    let ai_on = !matches!(ai.provider, messages::ai::Provider::Off);
    let apps = Arc::new(Apps::with_ai(runtime, ai));
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!(
        "chat API on http://127.0.0.1:{port} ({} routes from template.yaml)\n\
         mint a local token: cargo run -q -p devserver -- token --sub u-100 --role customer [--org acme]\n\
         then: curl -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:{port}/chat/conversations\n\
         WebSocket API on ws://127.0.0.1:{ws_port}/?ticket=… (a ticket: POST /realtime/tickets; docs/realtime.md)\n\
         webhooks are delivered from the table's stream (receivers on http://127.0.0.1 allowed; docs/webhooks.md)\n\
         web client: http://127.0.0.1:{port}/app/ (local tokens: http://127.0.0.1:{port}/app/dev/token.html)",
        routes.len()
    );
    // WEB_AUTH (JSON: authorize_url, token_url, client_id, scope): the console signs in
    // with that identity provider, as deployed (the end-to-end test's second stack).
    let auth = match std::env::var("WEB_AUTH") {
        Ok(raw) => Some(serde_json::from_str(&raw).map_err(|e| format!("WEB_AUTH: {e}"))?),
        Err(_) => None,
    };
    let web = devserver::web::WebClient::new(
        &format!("http://127.0.0.1:{port}"),
        &format!("ws://127.0.0.1:{ws_port}"),
        ai_on,
        auth,
    );
    devserver::serve_with(listener, routes, apps, Some(Arc::new(web))).await?;
    Ok(())
}
