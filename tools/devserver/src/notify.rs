//! Notifications on the local stack, run as AWS runs the `notify` function: the
//! table's stream through its event source mapping's filter (see [`StreamReader`]).

use crate::realtime::{StreamConsumer, StreamReader};
use chat_core::Runtime;
use serde_json::Value;
use std::sync::Arc;

pub struct Notifications {
    notifier: webhooks::Notifier,
    filters: Vec<Value>,
}

impl Notifications {
    /// The pipeline itself (tests call it as a retried batch would).
    pub fn notifier(&self) -> &webhooks::Notifier {
        &self.notifier
    }
}

impl StreamConsumer for Notifications {
    fn filters(&self) -> &[Value] {
        &self.filters
    }

    async fn handle(&self, batch: Value) -> Value {
        self.notifier.handle(batch).await
    }
}

/// Starts the notification pipeline for `runtime`'s table, running until the process
/// ends; `None` when the table has no stream.
pub async fn serve_notifications(runtime: &Runtime) -> Option<Arc<Notifications>> {
    let notifier = webhooks::Notifier::new(runtime.clone()).await;
    let notifications = Arc::new(Notifications {
        notifier,
        filters: chat_testkit::stream_filters(&chat_testkit::template(), "NotifyFunction"),
    });
    match StreamReader::open(notifications.clone(), runtime).await {
        Some(reader) => {
            tokio::spawn(reader.run());
            // The schedule: every second here, every minute on AWS.
            let ticking = notifications.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    ticking.notifier.sweep().await;
                }
            });
            Some(notifications)
        }
        None => {
            tracing::error!("the table has no stream: notifications are off");
            None
        }
    }
}
