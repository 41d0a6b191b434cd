//! The realtime functions: `realtime` serves the WebSocket API's routes (`socket`),
//! `fanout` delivers the table's stream to the connections (`fanout`). Both write to
//! sockets through API Gateway's Management API (`gateway`).

pub mod fanout;
pub mod gateway;
pub mod socket;

pub use fanout::Fanout;
pub use gateway::{Delivery, Gateway};
pub use socket::Socket;

/// The Management API's URL: set by template.yaml, and by the dev server locally.
pub const MANAGEMENT_URL_VAR: &str = "WEBSOCKET_MANAGEMENT_URL";

/// The store and the gateway, as each realtime function builds them once at init.
pub async fn parts() -> Result<(chat_core::store::Store, Gateway), lambda_runtime::Error> {
    let config = chat_core::app::start()?;
    let url = std::env::var(MANAGEMENT_URL_VAR)
        .map_err(|_| format!("{MANAGEMENT_URL_VAR} is required"))?;
    let gateway = Gateway::new(&config.aws, &url).await;
    let store = chat_core::Runtime::from_config(config).await.store;
    Ok((store, gateway))
}
