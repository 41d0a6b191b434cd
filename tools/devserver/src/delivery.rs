//! Webhook delivery on the local stack, run as AWS runs the `deliver` function: the
//! table's stream through its event source mapping's filter (see [`StreamReader`]),
//! and its schedule, ticking every second here instead of every minute.

use crate::realtime::{StreamConsumer, StreamReader};
use chat_core::Runtime;
use chat_core::webhooks::DeliverySettings;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// How often the local schedule runs the due deliveries.
const TICK: Duration = Duration::from_secs(1);

pub struct WebhookDelivery {
    deliverer: webhooks::Deliverer,
    filters: Vec<Value>,
}

impl StreamConsumer for WebhookDelivery {
    fn filters(&self) -> &[Value] {
        &self.filters
    }

    async fn handle(&self, batch: Value) -> Value {
        self.deliverer.on_stream(&batch).await
    }
}

/// Starts delivery for `runtime`'s table with `settings` (the environment's, or a
/// test's shorter schedule), running until the process ends.
pub async fn serve_webhook_delivery(
    runtime: &Runtime,
    settings: DeliverySettings,
) -> Arc<WebhookDelivery> {
    let deliverer = webhooks::Deliverer::new(runtime.store.clone(), settings, runtime.config.local);
    let delivery = Arc::new(WebhookDelivery {
        deliverer,
        filters: chat_testkit::stream_filters(&chat_testkit::template(), "WebhookDeliveryFunction"),
    });
    match StreamReader::open(delivery.clone(), runtime).await {
        Some(reader) => {
            tokio::spawn(reader.run());
        }
        None => tracing::error!("the table has no stream: webhook delivery is off"),
    }
    let ticking = delivery.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(TICK).await;
            ticking.deliverer.run_due(Duration::from_secs(30)).await;
        }
    });
    delivery
}
