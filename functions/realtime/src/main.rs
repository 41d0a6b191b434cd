#![recursion_limit = "256"]

use lambda_http::aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let (store, gateway) = realtime::parts().await?;
    let socket = &realtime::Socket::new(store, gateway);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, Error>(socket.handle(event.payload).await)
        },
    ))
    .await
}
