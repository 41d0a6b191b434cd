//! The `analytics-rollup` function: folds the write path's sharded counters into
//! daily rollup items, on an EventBridge schedule.

use chat_core::store::Store;
use serde_json::Value;

pub struct Rollup {
    #[allow(dead_code)]
    store: Store,
}

impl Rollup {
    pub fn new(store: Store) -> Self {
        Rollup { store }
    }

    /// Handles one scheduled event.
    pub async fn run(&self, event: Value) -> Result<Value, String> {
        tracing::warn!(source = ?event.get("source"), "analytics rollup is not built yet");
        Err("analytics rollup is not implemented yet".into())
    }
}
