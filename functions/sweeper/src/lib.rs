//! The sweeper function's handler, run on a schedule (EventBridge; the event's content does not
//! matter): one round of `image2model_shared::app::maintenance` (overdue jobs failed, lost
//! messages re-sent, missed uploads ingested, expired data deleted).

use chrono::Utc;
use image2model_shared::AppContext;
use image2model_shared::app::AppError;
use image2model_shared::app::maintenance::{MaintenanceReport, run_maintenance};

pub async fn run(ctx: &AppContext) -> Result<MaintenanceReport, AppError> {
    run_maintenance(ctx, Utc::now()).await
}
