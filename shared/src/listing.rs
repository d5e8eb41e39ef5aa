//! Paginated job listings (`?status=&limit=&cursor=`), for a user's jobs and for administrators.

use crate::context::AppContext;
use crate::domain::JobStatus;
use crate::error::ApiError;
use crate::ports::{JobQuery, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub status: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

/// Validates the parameters into a store query; `owner: None` lists everyone's jobs.
pub fn job_query(params: ListParams, owner: Option<String>) -> Result<JobQuery, ApiError> {
    let status = params
        .status
        .filter(|s| !s.is_empty())
        .map(|s| {
            JobStatus::parse(&s).ok_or_else(|| {
                ApiError::validation(format!("unknown status {s:?}"), Some("status"))
            })
        })
        .transpose()?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::validation(
            format!("limit must be between 1 and {MAX_LIMIT}"),
            Some("limit"),
        ));
    }
    Ok(JobQuery {
        owner,
        status,
        limit,
        cursor: params.cursor.filter(|c| !c.is_empty()),
    })
}

/// `{jobs, next_cursor, limit}` for one page.
pub async fn list_jobs(
    ctx: &AppContext,
    params: ListParams,
    owner: Option<String>,
) -> Result<Value, ApiError> {
    let query = job_query(params, owner)?;
    let page = ctx.store.list_jobs(&query).await.map_err(|e| match e {
        StoreError::InvalidCursor => ApiError::validation("invalid cursor", Some("cursor")),
        other => other.into(),
    })?;
    let jobs: Vec<Value> = page.jobs.iter().map(|j| j.public_json()).collect();
    Ok(json!({ "jobs": jobs, "next_cursor": page.next_cursor, "limit": query.limit }))
}
