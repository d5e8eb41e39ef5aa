//! The worker function: takes a queued job, claims it, and either submits it to FAL.AI (then
//! follows it by polls and webhooks) or runs it through the built-in generator; stores the model
//! and completes the job. Redelivered messages never run or submit a job twice or move it
//! backwards; a job whose worker died is taken over once its lease lapses.

pub mod builtin;
mod fal;
mod process;

pub use builtin::BuiltinGenerator;
pub use process::{MessageOutcome, Worker};
