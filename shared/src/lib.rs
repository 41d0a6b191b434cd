//! The library every chat function builds on: configuration, identity, the JSON
//! envelope and errors, request parsing, DynamoDB keys and the store.

pub mod app;
pub mod audit;
pub mod auth;
pub mod aws;
pub mod commands;
pub mod config;
pub mod cursor;
pub mod dynamo;
pub mod egress;
pub mod envelope;
pub mod erasure;
pub mod error;
pub mod ids;
pub mod item;
pub mod jwks;
pub mod keys;
pub mod model;
pub mod policy;
pub mod reply;
pub mod request;
pub mod store;
pub mod time;
pub mod unsubscribe;
pub mod uploads;
pub mod webhooks;
pub mod wire;

pub use auth::Principal;
pub use envelope::Reply;
pub use error::{ApiError, ApiResult};

/// Everything a function builds once per cold start.
#[derive(Clone, Debug)]
pub struct Runtime {
    pub config: config::Config,
    pub store: store::Store,
}

impl Runtime {
    pub async fn from_config(config: config::Config) -> Self {
        let (client, counter) = dynamo::client(&config).await;
        let store = store::Store::new(client, config.table_name.clone(), counter);
        Runtime { config, store }
    }
}
