//! The support desk's queue on the local stack, run as AWS runs the `support-jobs`
//! function: agents' workloads and queued conversations on the table's stream,
//! through its event source mapping's filter (see [`StreamReader`]).

use crate::realtime::{StreamConsumer, StreamReader};
use chat_core::Runtime;
use serde_json::{Value, json};
use std::sync::Arc;

pub struct SupportJobs {
    jobs: conversations::jobs::Jobs,
    filters: Vec<Value>,
}

impl StreamConsumer for SupportJobs {
    fn filters(&self) -> &[Value] {
        &self.filters
    }

    async fn handle(&self, batch: Value) -> Value {
        match self.jobs.handle(&batch).await {
            Ok(answer) => answer,
            Err(err) => {
                tracing::error!(%err, "support jobs failed");
                json!({ "batchItemFailures": [] })
            }
        }
    }
}

impl SupportJobs {
    /// The minute's work as the schedule runs it (SLA breaches, agents away), logged.
    pub async fn every_minute(&self) {
        if let Err(err) = self.jobs.every_minute().await {
            tracing::error!(%err, "the minute's support jobs stopped");
        }
    }
}

/// Starts the queue's consumer for `runtime`'s table, running until the process ends.
pub async fn serve_support_jobs(runtime: &Runtime) -> Arc<SupportJobs> {
    let jobs = Arc::new(SupportJobs {
        jobs: conversations::jobs::Jobs::from_runtime(runtime.clone()),
        filters: chat_testkit::stream_filters(&chat_testkit::template(), "SupportJobsFunction"),
    });
    match StreamReader::open(jobs.clone(), runtime).await {
        Some(reader) => {
            tokio::spawn(reader.run());
        }
        None => tracing::error!("the table has no stream: queued conversations wait"),
    }
    jobs
}
