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
