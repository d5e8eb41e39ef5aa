//! A batch: several jobs created by one request (the compatibility upload route).

use super::ids::{BatchId, JobId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub batch_id: BatchId,
    pub owner: String,
    pub job_ids: Vec<JobId>,
    pub created_at: DateTime<Utc>,
}
