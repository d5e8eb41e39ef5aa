//! The worker function: takes a queued job, claims it, runs it through the generator that serves
//! its model type, stores the model and completes the job. Redelivered messages never run a job
//! twice or move it backwards; a job whose worker died is taken over once its lease lapses.

pub mod builtin;
mod process;

pub use builtin::BuiltinGenerator;
pub use process::{MessageOutcome, Worker};
