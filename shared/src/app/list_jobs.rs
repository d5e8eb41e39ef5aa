//! Paginated job listings (`?status=&limit=&cursor=`), for a user's jobs and for administrators.

use super::error::AppError;
use crate::context::AppContext;
use crate::domain::{GenerationJob, JobStatus};
use crate::ports::JobQuery;
use serde::Deserialize;

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only jobs in this status.
    #[param(value_type = Option<JobStatus>, inline)]
    pub status: Option<String>,
    /// Jobs per page.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Validates the parameters into a store query; `owner: None` lists everyone's jobs.
pub fn job_query(params: ListParams, owner: Option<String>) -> Result<JobQuery, AppError> {
    let status = params
        .status
        .map(|s| {
            JobStatus::parse(&s)
                .ok_or_else(|| AppError::invalid(format!("unknown status {s:?}"), Some("status")))
        })
        .transpose()?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AppError::invalid(
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

/// One page of jobs, newest first, and where the next page starts.
#[derive(Debug, Clone, PartialEq)]
pub struct JobList {
    pub jobs: Vec<GenerationJob>,
    pub next_cursor: Option<String>,
    pub limit: usize,
}

/// The page `params` asks for; `owner: None` lists everyone's jobs.
pub async fn list_jobs(
    ctx: &AppContext,
    params: ListParams,
    owner: Option<String>,
) -> Result<JobList, AppError> {
    let query = job_query(params, owner)?;
    let page = ctx.store.list_jobs(&query).await?;
    Ok(JobList {
        jobs: page.jobs,
        next_cursor: page.next_cursor,
        limit: query.limit,
    })
}
