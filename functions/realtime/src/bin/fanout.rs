#![recursion_limit = "256"]

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let (store, gateway) = realtime::parts().await?;
    let fanout = &realtime::Fanout::new(store, gateway);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(fanout.handle(event.payload).await)
    }))
    .await
}
