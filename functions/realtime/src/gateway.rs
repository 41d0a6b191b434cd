//! API Gateway's Management API (`@connections`): how a function writes to a socket.

use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use chat_core::ApiError;
use chat_core::aws::{AwsSettings, Endpoint};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a post to one connection came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// The client went away: forget the connection; never a failure of the batch.
    Gone,
}

#[derive(Clone, Debug)]
pub struct Gateway {
    client: Client,
    posts: Arc<AtomicU64>,
}

impl Gateway {
    /// The Management API at `url` (`https://{api}.execute-api.{region}.amazonaws.com/{stage}`;
    /// the dev server's `http://127.0.0.1:{port}` locally).
    pub async fn new(aws: &AwsSettings, url: &str) -> Gateway {
        let endpoint = match url.starts_with("http://") {
            true => Endpoint::Local,
            false => Endpoint::Aws,
        };
        let shared = chat_core::aws::sdk_config(aws, endpoint).await;
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(&shared)
            .endpoint_url(url)
            .build();
        Gateway {
            client: Client::from_conf(config),
            posts: Arc::default(),
        }
    }

    /// `PostToConnection` calls made so far (the bench reports them per message).
    pub fn posts(&self) -> u64 {
        self.posts.load(Ordering::Relaxed)
    }

    pub async fn post(&self, connection: &str, data: &str) -> Result<Delivery, ApiError> {
        self.posts.fetch_add(1, Ordering::Relaxed);
        let sent = self
            .client
            .post_to_connection()
            .connection_id(connection)
            .data(Blob::new(data.as_bytes()))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(Delivery::Sent),
            Err(err) => match err.as_service_error() {
                Some(PostToConnectionError::GoneException(_)) => Ok(Delivery::Gone),
                _ => Err(ApiError::internal(
                    "post to connection",
                    aws_sdk_apigatewaymanagement::error::DisplayErrorContext(&err),
                )),
            },
        }
    }
}
