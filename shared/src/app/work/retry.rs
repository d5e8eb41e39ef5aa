//! Where a job is retried: the policy (how many attempts a job gets, how long each wait is) and
//! queueing a job again after a failure a later attempt may not meet, or failing it when its
//! attempts are spent.

use super::{Outcome, Worker};
use crate::app::enqueue::{WorkMessage, WorkStep};
use crate::app::error::AppError;
use crate::app::job_update::update_job;
use crate::config::Config;
use crate::domain::{GenerationJob, JobErrorCode, JobId};
use chrono::Utc;
use std::time::Duration;

/// How often, and after how long, the worker tries again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Runs a job gets (`MAX_ATTEMPTS`); a failure on the last one fails the job.
    pub max_attempts: u32,
    /// The wait before the first FAL status poll (`FAL_POLL_INITIAL_SECONDS`), doubled after each
    /// poll up to `poll_max` (`FAL_POLL_MAX_SECONDS`).
    pub poll_initial: Duration,
    pub poll_max: Duration,
}

/// How often a FAL webhook that overtook the record of its submission waits for it, and how long.
const WEBHOOK_WAITS: u32 = 5;
const WEBHOOK_WAIT: Duration = Duration::from_secs(2);

impl RetryPolicy {
    pub fn of(config: &Config) -> Self {
        Self {
            max_attempts: config.jobs.max_attempts,
            poll_initial: config.fal.poll_initial,
            poll_max: config.fal.poll_max,
        }
    }

    /// Whether a job that made `attempts` runs may not run again.
    pub fn spent(&self, attempts: u32) -> bool {
        attempts >= self.max_attempts
    }

    /// The wait before run `attempts + 1` when the failure named none: 5 s per run made, at most
    /// a minute.
    pub fn attempt_delay(&self, attempts: u32) -> Duration {
        Duration::from_secs(5 * u64::from(attempts.min(12)))
    }

    /// The wait before FAL status poll number `poll` (0 the first).
    pub fn poll_delay(&self, poll: u32) -> Duration {
        self.poll_initial
            .saturating_mul(2u32.saturating_pow(poll))
            .min(self.poll_max)
    }

    /// The wait before a FAL webhook looks again for its submission's record, having looked
    /// `looks` times; `None` once it has waited enough.
    pub fn webhook_wait(&self, looks: u32) -> Option<Duration> {
        (looks < WEBHOOK_WAITS).then_some(WEBHOOK_WAIT)
    }

    /// A submission that cannot go now (FAL's breaker is open, every FAL slot is taken): the
    /// generate message again after `wait`, a second at least.
    pub(super) fn deferred(&self, job_id: JobId, wait: Duration) -> Outcome {
        Outcome::Later(
            WorkMessage::generate(job_id),
            wait.max(Duration::from_secs(1)),
        )
    }

    /// The next poll of a poll chain after the look `step`; webhooks start no chain of their own.
    pub(super) fn next_poll(&self, job_id: JobId, step: WorkStep) -> Outcome {
        match step {
            WorkStep::Poll { attempt } => {
                let attempt = attempt.saturating_add(1);
                let step = WorkStep::Poll { attempt };
                Outcome::Later(WorkMessage { job_id, step }, self.poll_delay(attempt))
            }
            WorkStep::Webhook { .. } | WorkStep::Generate | WorkStep::Convert { .. } => {
                Outcome::Done
            }
        }
    }
}

impl Worker {
    /// A job whose attempts are spent before it runs again (its last run died with its worker):
    /// it fails.
    pub(super) fn gave_up(&self, job: &GenerationJob) -> Option<Outcome> {
        self.retries.spent(job.attempts).then(|| {
            Outcome::fail(
                job,
                JobErrorCode::GenerationFailed,
                format!("gave up after {} attempts", job.attempts),
            )
        })
    }

    /// A transient failure: the job goes back to the queue after `after` (or the policy's wait),
    /// or fails with `code` after its last attempt.
    pub(super) async fn retry_later(
        &self,
        job: &GenerationJob,
        code: JobErrorCode,
        reason: &str,
        after: Option<Duration>,
    ) -> Result<Outcome, AppError> {
        if self.retries.spent(job.attempts) {
            let message = format!("failed after {} attempts: {reason}", job.attempts);
            return Ok(Outcome::fail(job, code, message));
        }
        let now = Utc::now();
        let message = format!("Attempt {} failed; retrying: {reason}", job.attempts);
        match update_job(&self.ctx, job.job_id, |j| {
            j.requeue(&message, now).map(Some)
        })
        .await
        {
            Ok(_) => {}
            Err(AppError::Transition(_) | AppError::JobNotFound(_)) => return Ok(Outcome::Done),
            Err(e) => return Err(e),
        }
        let delay = after.unwrap_or_else(|| self.retries.attempt_delay(job.attempts));
        Ok(Outcome::Later(WorkMessage::generate(job.job_id), delay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            poll_initial: Duration::from_secs(2),
            poll_max: Duration::from_secs(20),
        }
    }

    #[test]
    fn retries_wait_five_seconds_per_attempt_made_and_a_minute_at_most() {
        let waits: Vec<u64> = [0, 1, 3, 12, 13, u32::MAX]
            .into_iter()
            .map(|attempts| policy().attempt_delay(attempts).as_secs())
            .collect();
        assert_eq!(waits, [0, 5, 15, 60, 60, 60]);
    }

    #[test]
    fn a_job_runs_max_attempts_times() {
        let spent: Vec<bool> = (0..5).map(|a| policy().spent(a)).collect();
        assert_eq!(spent, [false, false, false, true, true]);
    }

    #[test]
    fn polls_wait_twice_as_long_each_time_up_to_the_longest_wait() {
        let waits: Vec<u64> = [0, 1, 2, 3, 4, 40]
            .into_iter()
            .map(|poll| policy().poll_delay(poll).as_secs())
            .collect();
        assert_eq!(waits, [2, 4, 8, 16, 20, 20]);
    }

    #[test]
    fn a_poll_chain_goes_on_and_webhooks_or_other_steps_start_none() {
        let job_id = JobId::new();
        match policy().next_poll(job_id, WorkStep::Poll { attempt: 1 }) {
            Outcome::Later(message, wait) => {
                assert_eq!(message.step, WorkStep::Poll { attempt: 2 });
                assert_eq!((message.job_id, wait), (job_id, Duration::from_secs(8)));
            }
            other => panic!("{other:?}"),
        }
        for step in [WorkStep::Webhook { attempt: 0 }, WorkStep::Generate] {
            assert!(matches!(policy().next_poll(job_id, step), Outcome::Done));
        }
    }

    #[test]
    fn a_webhook_waits_two_seconds_five_times_and_a_deferral_a_second_at_least() {
        let waits: Vec<_> = (0..7).map(|looks| policy().webhook_wait(looks)).collect();
        let two = Some(Duration::from_secs(2));
        assert_eq!(waits, [two, two, two, two, two, None, None]);
        for (asked, waited) in [(0, 1), (1, 1), (30, 30)] {
            let outcome = policy().deferred(JobId::new(), Duration::from_secs(asked));
            match outcome {
                Outcome::Later(message, wait) => {
                    assert_eq!(message.step, WorkStep::Generate);
                    assert_eq!(wait, Duration::from_secs(waited));
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
