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

#[cfg(test)]
mod tests {
    use super::*;

    fn params(status: Option<&str>, limit: Option<usize>, cursor: Option<&str>) -> ListParams {
        ListParams {
            status: status.map(str::to_owned),
            limit,
            cursor: cursor.map(str::to_owned),
        }
    }

    #[test]
    fn parameters_become_a_query_with_defaults() {
        let query = job_query(params(None, None, None), Some("alice".into())).unwrap();
        assert_eq!(
            (
                query.owner.as_deref(),
                query.status,
                query.limit,
                query.cursor
            ),
            (Some("alice"), None, DEFAULT_LIMIT, None)
        );
        let query =
            job_query(params(Some("completed"), Some(MAX_LIMIT), Some("c1")), None).unwrap();
        assert_eq!(
            (
                query.owner,
                query.status,
                query.limit,
                query.cursor.as_deref()
            ),
            (None, Some(JobStatus::Completed), MAX_LIMIT, Some("c1"))
        );
        // An empty cursor is the first page.
        let query = job_query(params(None, Some(1), Some("")), None).unwrap();
        assert_eq!((query.limit, query.cursor), (1, None));
    }

    #[test]
    fn unknown_statuses_and_limits_out_of_range_are_refused_by_field() {
        for (p, field) in [
            (params(Some("done"), None, None), "status"),
            (params(None, Some(0), None), "limit"),
            (params(None, Some(MAX_LIMIT + 1), None), "limit"),
        ] {
            match job_query(p, None) {
                Err(AppError::Invalid { field: Some(f), .. }) => assert_eq!(f, field),
                other => panic!("{other:?}"),
            }
        }
    }
}
