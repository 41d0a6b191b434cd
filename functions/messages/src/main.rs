use chat_core::{Runtime, config::Config};
use lambda_http::{Error, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    chat_core::app::init_tracing();
    let config =
        Config::from_env().inspect_err(|e| tracing::error!(error = %e, "refusing to start"))?;
    let env = std::env::vars().collect();
    let ai = messages::ai::Ai::from_env(&env, &config.aws)
        .await
        .inspect_err(|e| tracing::error!(error = %e, "refusing to start"))?;
    let app = messages::App::with_ai(Runtime::from_config(config).await, ai);
    let app = &app;
    lambda_http::run(service_fn(move |req| async move {
        Ok::<_, Error>(app.handle(req).await)
    }))
    .await
}
