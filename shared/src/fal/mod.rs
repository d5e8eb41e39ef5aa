//! FAL.AI: the queue client, the circuit breaker every worker shares, and the cost guard.

pub mod breaker;
pub mod client;
pub mod guard;

pub use breaker::{Admission, BreakerState, CircuitBreaker};
pub use client::{FalClient, FalError, QueueStatus, RetryPolicy, Submission};

use crate::config::FalSettings;

impl FalSettings {
    pub fn breaker(&self) -> CircuitBreaker {
        CircuitBreaker {
            threshold: self.breaker_threshold,
            cooldown: self.breaker_cooldown,
        }
    }
}

/// What `/health/detailed` and `/admin/stats` show about FAL.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FalOverview {
    pub configured: bool,
    pub webhooks: bool,
    pub circuit_breaker: BreakerView,
    pub in_flight: usize,
    pub max_in_flight: u32,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BreakerView {
    /// `closed`, `open` or `half_open`.
    pub state: &'static str,
    pub consecutive_failures: u32,
    pub threshold: u32,
    pub opened_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_error: Option<String>,
}

pub async fn overview(
    ctx: &crate::AppContext,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<FalOverview, crate::ports::StoreError> {
    let settings = &ctx.config.fal;
    let breaker = settings.breaker();
    let state = breaker.state(ctx.store.as_ref()).await?;
    Ok(FalOverview {
        configured: ctx.config.fal_configured(),
        webhooks: settings.webhook_url.is_some(),
        circuit_breaker: BreakerView {
            state: state.mode(breaker.cooldown, now),
            consecutive_failures: state.consecutive_failures,
            threshold: breaker.threshold,
            opened_at: state.opened_at,
            last_error: state.last_error,
        },
        in_flight: guard::slots_in_use(ctx.store.as_ref()).await?,
        max_in_flight: settings.max_in_flight,
    })
}
