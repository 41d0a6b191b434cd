#![recursion_limit = "256"]

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let config = chat_core::app::start()?;
    let jobs =
        &conversations::jobs::Jobs::from_runtime(chat_core::Runtime::from_config(config).await);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        jobs.handle(&event.payload).await.map_err(Error::from)
    }))
    .await
}
