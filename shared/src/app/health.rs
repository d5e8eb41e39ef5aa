//! Readiness: each port really exercised (a store round trip, a write and delete in object
//! storage, a queue depth read), with its latency and whether it answered; why one failed goes
//! to the log.

use crate::context::AppContext;
use std::time::Instant;

/// One component check. Why a component failed goes to the log, not into the check.
#[derive(Debug, Clone)]
pub struct Check {
    pub component: &'static str,
    pub ok: bool,
    pub elapsed_ms: f64,
}

async fn check<F, E>(component: &'static str, probe: F) -> Check
where
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let started = Instant::now();
    let result = probe.await;
    if let Err(error) = &result {
        tracing::warn!(component, %error, "readiness check failed");
    }
    Check {
        component,
        ok: result.is_ok(),
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
    }
}

/// The store alone.
pub async fn check_store(ctx: &AppContext) -> Check {
    check("store", ctx.store.ping()).await
}

/// Every port: store, object storage, queue.
pub async fn check_all(ctx: &AppContext) -> Vec<Check> {
    vec![
        check_store(ctx).await,
        check("object_storage", ctx.storage.ping()).await,
        check("queue", async { ctx.queue.depth().await.map(drop) }).await,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::context;
    use std::time::Duration;

    #[tokio::test]
    async fn every_port_is_checked_by_name() {
        let t = context();
        let checks = check_all(&t).await;
        let names: Vec<(&str, bool)> = checks.iter().map(|c| (c.component, c.ok)).collect();
        assert_eq!(
            names,
            [("store", true), ("object_storage", true), ("queue", true)]
        );
    }

    #[tokio::test]
    async fn a_check_times_its_probe_in_milliseconds_and_says_when_it_failed() {
        let slow = check("slow", async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<(), std::io::Error>(())
        })
        .await;
        assert!(slow.ok);
        // At least the 20 ms slept; far less than a second (were it counted in other units).
        assert!(
            (20.0..1000.0).contains(&slow.elapsed_ms),
            "{}",
            slow.elapsed_ms
        );
        let failed = check("down", async { Err::<(), _>("refused") }).await;
        assert_eq!((failed.component, failed.ok), ("down", false));
    }
}
