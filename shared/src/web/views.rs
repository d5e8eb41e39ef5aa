//! Response bodies that more than one function answers with.

use crate::app::list_jobs::JobList;
use serde_json::{Value, json};

/// A page of jobs as `GET /api/v1/jobs` and `GET /api/v1/admin/jobs` answer it:
/// `{jobs, next_cursor, limit}`, each job as clients see it.
pub fn job_list_json(list: &JobList) -> Value {
    let jobs: Vec<Value> = list.jobs.iter().map(|j| j.public_json()).collect();
    json!({ "jobs": jobs, "next_cursor": list.next_cursor, "limit": list.limit })
}
