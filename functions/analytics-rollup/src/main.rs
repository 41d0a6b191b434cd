use chat_core::Runtime;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let config = chat_core::app::start()?;
    let lookback = std::env::var("ROLLUP_LOOKBACK_DAYS")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(2);
    let rollup = analytics_rollup::Rollup::new(Runtime::from_config(config).await.store, lookback);
    let rollup = &rollup;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        rollup.run(event.payload).await.map_err(Error::from)
    }))
    .await
}
