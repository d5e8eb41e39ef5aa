//! FAL.AI's shared state: the circuit breaker every worker shares, and the cost guard (the
//! in-flight slots, daily quotas and spend), both kept in the store. The queue itself is the
//! port [`crate::ports::FalQueue`].

pub mod breaker;
pub mod guard;

pub use breaker::{Admission, BreakerState, CircuitBreaker};

use crate::config::FalSettings;

impl FalSettings {
    pub fn breaker(&self) -> CircuitBreaker {
        CircuitBreaker {
            threshold: self.breaker_threshold,
            cooldown: self.breaker_cooldown,
        }
    }
}
