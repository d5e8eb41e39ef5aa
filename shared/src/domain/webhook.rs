//! Webhooks to the owners' servers: what an owner registers (an endpoint: its URL, the events
//! it wants, its signing secrets) and the schedule a delivery is retried on.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What happened, as a delivery's `type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "job.completed")]
    JobCompleted,
    #[serde(rename = "job.failed")]
    JobFailed,
    #[serde(rename = "job.cancelled")]
    JobCancelled,
    #[serde(rename = "batch.completed")]
    BatchCompleted,
    /// Sent by `POST .../{id}/test` only, to whatever events the endpoint takes.
    #[serde(rename = "ping")]
    Ping,
}

impl EventType {
    /// The events an endpoint gets when it names none.
    pub const DEFAULT: [Self; 4] = [
        Self::JobCompleted,
        Self::JobFailed,
        Self::JobCancelled,
        Self::BatchCompleted,
    ];
}

/// The waits before each retry of a delivery that failed (a non-2xx answer, a timeout, a
/// refused connection): about a day and a half in all, so a receiver down for a day still gets
/// every event. Each wait is drawn within 10 % of its value, so that the retries of many
/// deliveries that failed together do not arrive together.
pub const RETRY_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// The wait before attempt `attempts + 1` after `attempts` failed ones, with `jitter` in
/// [0, 1) placing it within 10 % of the schedule's value; `None` once the schedule is spent.
pub fn retry_delay(attempts: u32, jitter: f64) -> Option<Duration> {
    let base = RETRY_SCHEDULE.get(usize::try_from(attempts).ok()?.checked_sub(1)?)?;
    let factor = 0.9 + 0.2 * jitter.clamp(0.0, 1.0);
    Some(base.mul_f64(factor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_over_more_than_a_day_then_stop() {
        assert_eq!(
            retry_delay(0, 0.5),
            None,
            "no wait before the first attempt"
        );
        assert_eq!(retry_delay(1, 0.5), Some(Duration::from_secs(5)));
        assert_eq!(retry_delay(7, 0.5), Some(Duration::from_secs(36_000)));
        assert_eq!(retry_delay(8, 0.5), None);
        let shortest: Duration = (1..=7).filter_map(|n| retry_delay(n, 0.0)).sum();
        assert!(shortest > Duration::from_secs(24 * 3600), "{shortest:?}");
        for n in 1..=7 {
            let (low, high) = (retry_delay(n, 0.0).unwrap(), retry_delay(n, 0.999).unwrap());
            assert!(low < high && high <= RETRY_SCHEDULE[n as usize - 1].mul_f64(1.1));
        }
    }

    #[test]
    fn event_types_are_named_as_deliveries_name_them() {
        let names: Vec<String> = EventType::DEFAULT
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "\"job.completed\"",
                "\"job.failed\"",
                "\"job.cancelled\"",
                "\"batch.completed\""
            ]
        );
    }
}
