//! FAL.AI: the queue client, the circuit breaker every worker shares, and the cost guard (the
//! in-flight slots, daily quotas and spend), whose state lives in the store.

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
