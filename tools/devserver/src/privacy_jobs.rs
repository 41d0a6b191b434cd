//! The data-protection jobs (exports, erasures, the retention sweep) on the local stack, run as AWS runs
//! the `privacy-jobs` function: new job records on the table's stream, through its
//! event source mapping's filter (see [`StreamReader`]); a run that fails is retried
//! from where it stopped.

use crate::realtime::{StreamConsumer, StreamReader};
use chat_core::Runtime;
use serde_json::Value;
use std::sync::Arc;

pub struct PrivacyJobs {
    jobs: privacy::Jobs,
    filters: Vec<Value>,
}

impl StreamConsumer for PrivacyJobs {
    fn filters(&self) -> &[Value] {
        &self.filters
    }

    async fn handle(&self, batch: Value) -> Value {
        self.jobs.on_stream(&batch).await
    }
}

impl PrivacyJobs {
    /// One retention sweep, logged.
    pub async fn sweep(&self) {
        match self.jobs.sweeper.run().await {
            Ok(summary) => tracing::info!(?summary, "retention sweep"),
            Err(err) => tracing::error!(%err, "retention sweep stopped"),
        }
    }
}

/// Starts the jobs for `runtime`'s table, running until the process ends.
pub async fn serve_privacy_jobs(runtime: &Runtime) -> Arc<PrivacyJobs> {
    let jobs = Arc::new(PrivacyJobs {
        jobs: privacy::Jobs::from_runtime(runtime.clone()),
        filters: chat_testkit::stream_filters(&chat_testkit::template(), "PrivacyJobsFunction"),
    });
    match StreamReader::open(jobs.clone(), runtime).await {
        Some(reader) => {
            tokio::spawn(reader.run());
        }
        None => tracing::error!("the table has no stream: exports and erasures are off"),
    }
    jobs
}
