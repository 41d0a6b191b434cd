#![recursion_limit = "256"]

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let config = chat_core::app::start()?;
    let inbound = &webhooks::Inbound::new(chat_core::Runtime::from_config(config).await);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        inbound.handle(event.payload).await.map_err(|err| {
            // The invocation fails and SES's asynchronous invoke retries it.
            tracing::error!(%err, "inbound email not handled");
            Error::from(err.to_string())
        })
    }))
    .await
}
