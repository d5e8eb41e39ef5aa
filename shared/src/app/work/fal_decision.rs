//! The FAL job lifecycle's decisions, as one pure function of the job, how far the worker's look
//! at its FAL request got (and what FAL answered there) and the clock. `fal.rs` does what the
//! decision says (asks FAL, reports progress, polls again, completes, fails) and comes back
//! with the next answer; every branch is unit-tested here without a network.

use crate::domain::models::{ModelOutput, ModelSpec};
use crate::domain::{FalRequest, GenerationJob, JobErrorCode, JobStatus};
use crate::ports::{FalError, QueueStatus};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::time::Duration;

/// How far a look at a job's FAL request got: nothing asked yet, or FAL's answer to the last
/// question asked.
#[derive(Debug)]
pub enum Answer {
    NotAsked,
    /// `GET status_url?logs=1`.
    Status(Result<QueueStatus, FalError>),
    /// `GET response_url`: the result document.
    Result(Result<Value, FalError>),
    /// The result file the document points to.
    File(Result<Bytes, FalError>),
}

/// What to ask FAL next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    Status,
    Result,
    /// The output file, and the picture FAL rendered of a mesh (`rendered_image`), if any.
    File {
        url: String,
        preview_url: Option<String>,
    },
}

/// How this look ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The job already ended (its owner cancelled it, the sweeper failed it, another delivery
    /// completed it): free its slot, and cancel the request at FAL unless it completed.
    Stop { cancel_at_fal: bool },
    /// Past the generation timeout: cancel the request at FAL and fail the job.
    TimedOut { message: String },
    /// Still queued or running at FAL: record the progress and poll again later.
    Progress { progress: u8, message: String },
    /// FAL could not answer now: poll again later.
    PollLater,
    /// FAL no longer has the result file: run the job again (a new attempt).
    Rerun { code: JobErrorCode, message: String },
    /// The job fails with `code`.
    Fail { code: JobErrorCode, message: String },
    /// FAL's output is here: make our model of it, store it and complete the job.
    Complete(FalOutput),
}

/// What FAL made, to become our model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FalOutput {
    /// A mesh under `field`: stored as it is once [`checked_mesh`] found a glTF binary.
    Mesh { field: &'static str, bytes: Bytes },
    /// A depth map: our relief mesh is built from it and the photo.
    DepthMap(Bytes),
}

/// FAL's mesh if it is a glTF 2.0 binary; the job's `FAL_BAD_OUTPUT` failure (code and
/// message) otherwise.
pub fn checked_mesh(field: &'static str, bytes: Bytes) -> Result<Bytes, (JobErrorCode, String)> {
    if is_glb(&bytes) {
        Ok(bytes)
    } else {
        Err((
            JobErrorCode::FalBadOutput,
            format!("FAL.AI's `{field}` is not a glTF 2.0 binary"),
        ))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Next(Ask),
    End(End),
}

/// Progress while waiting in FAL's queue: 5 at the back, 10 at the front.
pub fn queued_progress(position: Option<u32>) -> (u8, String) {
    match position {
        Some(p) => (
            10 - p.min(5) as u8,
            format!("Waiting in the FAL.AI queue (position {p})"),
        ),
        None => (5, "Waiting in the FAL.AI queue".to_owned()),
    }
}

/// Progress while running: 15, then 5 more per log line up to 80; the message is the last log.
pub fn running_progress(logs: &[String]) -> (u8, String) {
    let steps = logs.len().min(13) as u8;
    let message = logs.last().map_or_else(
        || "Generating at FAL.AI".to_owned(),
        |l| {
            format!(
                "Generating at FAL.AI: {}",
                l.chars().take(200).collect::<String>()
            )
        },
    );
    (15 + 5 * steps, message)
}

/// Whether `bytes` is a glTF 2.0 binary whose header length matches.
fn is_glb(bytes: &[u8]) -> bool {
    bytes.len() >= 20
        && &bytes[0..4] == b"glTF"
        && bytes[4..8] == 2u32.to_le_bytes()
        && u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize == bytes.len()
}

fn progress((progress, message): (u8, String)) -> Decision {
    Decision::End(End::Progress { progress, message })
}

fn fail(code: JobErrorCode, message: String) -> Decision {
    Decision::End(End::Fail { code, message })
}

/// A FAL error: later when it may pass, the job's failure otherwise.
fn on_error(err: &FalError) -> Decision {
    if err.is_retryable() {
        Decision::End(End::PollLater)
    } else {
        fail(err.code(), err.to_string())
    }
}

/// What to do next with `job`, submitted to FAL as `request`, for the model `model` (`None`
/// when the catalog no longer knows the job's model type), given `answer` at `now`.
pub fn decide(
    job: &GenerationJob,
    request: &FalRequest,
    model: Option<&ModelSpec>,
    answer: Answer,
    now: DateTime<Utc>,
    generation_timeout: Duration,
) -> Decision {
    match answer {
        Answer::NotAsked if job.status.is_terminal() => Decision::End(End::Stop {
            cancel_at_fal: job.status != JobStatus::Completed,
        }),
        Answer::NotAsked => {
            let deadline = request.submitted_at
                + chrono::Duration::from_std(generation_timeout).unwrap_or_default();
            if now >= deadline {
                Decision::End(End::TimedOut {
                    message: format!(
                        "FAL.AI did not finish within {} s; the request was cancelled",
                        generation_timeout.as_secs()
                    ),
                })
            } else {
                Decision::Next(Ask::Status)
            }
        }
        Answer::Status(Ok(QueueStatus::InQueue { position })) => {
            progress(queued_progress(position))
        }
        Answer::Status(Ok(QueueStatus::InProgress { logs })) => progress(running_progress(&logs)),
        Answer::Status(Ok(QueueStatus::Completed { .. })) => match model {
            Some(_) => Decision::Next(Ask::Result),
            None => fail(
                JobErrorCode::ModelUnavailable,
                format!("unknown model type {:?}", job.model_type),
            ),
        },
        // An unreadable status is FAL's glitch, not the job's: look again later.
        Answer::Status(Err(FalError::Malformed(_))) => Decision::End(End::PollLater),
        Answer::Status(Err(err)) | Answer::Result(Err(err)) => on_error(&err),
        Answer::Result(Ok(document)) => {
            let Some(model) = model else {
                return fail(
                    JobErrorCode::ModelUnavailable,
                    format!("unknown model type {:?}", job.model_type),
                );
            };
            let field = model.output.field();
            match document
                .get(field)
                .and_then(|file| file.get("url"))
                .and_then(Value::as_str)
            {
                Some(url) => Decision::Next(Ask::File {
                    url: url.to_owned(),
                    preview_url: matches!(model.output, ModelOutput::Mesh { .. })
                        .then(|| document.get("rendered_image")?.get("url")?.as_str())
                        .flatten()
                        .map(str::to_owned),
                }),
                None => fail(
                    JobErrorCode::FalOutputMissing,
                    format!("FAL.AI completed without `{field}` in its output"),
                ),
            }
        }
        Answer::File(Err(err @ FalError::Expired(_))) => Decision::End(End::Rerun {
            code: err.code(),
            message: err.to_string(),
        }),
        Answer::File(Err(err)) => on_error(&err),
        Answer::File(Ok(bytes)) => match model.map(|m| m.output) {
            Some(ModelOutput::Mesh { field }) => {
                Decision::End(End::Complete(FalOutput::Mesh { field, bytes }))
            }
            Some(ModelOutput::DepthMap { .. }) => {
                Decision::End(End::Complete(FalOutput::DepthMap(bytes)))
            }
            None => fail(
                JobErrorCode::ModelUnavailable,
                format!("unknown model type {:?}", job.model_type),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::models::{self, DEPTH_MODEL};
    use crate::domain::{FileId, JobError, JobOptions, JobResult};
    use serde_json::json;

    const TIMEOUT: Duration = Duration::from_secs(900);

    fn submitted_at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_608_000, 0).unwrap()
    }

    fn request() -> FalRequest {
        FalRequest {
            request_id: "r-1".into(),
            status_url: "https://fal/status".into(),
            response_url: "https://fal/response".into(),
            cancel_url: "https://fal/cancel".into(),
            submitted_at: submitted_at(),
        }
    }

    /// A tripo3d job running at FAL.
    fn running() -> GenerationJob {
        let job = GenerationJob::new(
            FileId::new(),
            "alice",
            "tripo3d",
            JobOptions::default(),
            None,
            submitted_at(),
        );
        let job = job.start(submitted_at()).unwrap();
        job.record_submission(request(), submitted_at()).unwrap()
    }

    fn tripo() -> Option<&'static ModelSpec> {
        models::find("tripo3d")
    }

    fn soon() -> DateTime<Utc> {
        submitted_at() + chrono::Duration::seconds(30)
    }

    fn decide_now(job: &GenerationJob, answer: Answer) -> Decision {
        decide(job, &request(), tripo(), answer, soon(), TIMEOUT)
    }

    fn glb() -> Bytes {
        let mut glb = b"glTF".to_vec();
        glb.extend(2u32.to_le_bytes());
        glb.extend(20u32.to_le_bytes());
        glb.extend([0u8; 8]);
        Bytes::from(glb)
    }

    fn code_of(decision: Decision) -> JobErrorCode {
        match decision {
            Decision::End(End::Fail { code, .. } | End::Rerun { code, .. }) => code,
            other => panic!("not a failure: {other:?}"),
        }
    }

    #[test]
    fn a_live_job_within_its_timeout_asks_for_its_status() {
        assert_eq!(
            decide_now(&running(), Answer::NotAsked),
            Decision::Next(Ask::Status)
        );
    }

    #[test]
    fn ended_jobs_stop_and_only_unfinished_ones_are_cancelled_at_fal() {
        let now = soon();
        let cancelled = running().cancel(now).unwrap();
        let failed = running()
            .fail(JobError::from(JobErrorCode::GenerationFailed), now)
            .unwrap();
        let result = JobResult {
            object_key: "k".into(),
            filename: "f.glb".into(),
            size: 1,
            content_type: "model/gltf-binary".into(),
            preview_key: None,
            ..JobResult::default()
        };
        let completed = running().complete(result, now).unwrap();
        for (job, cancel_at_fal) in [(cancelled, true), (failed, true), (completed, false)] {
            assert_eq!(
                decide_now(&job, Answer::NotAsked),
                Decision::End(End::Stop { cancel_at_fal }),
                "{}",
                job.status
            );
        }
    }

    #[test]
    fn the_generation_timeout_is_reached_at_the_deadline_exactly() {
        let job = running();
        let deadline = submitted_at() + chrono::Duration::seconds(900);
        let before = deadline - chrono::Duration::milliseconds(1);
        assert_eq!(
            decide(&job, &request(), tripo(), Answer::NotAsked, before, TIMEOUT),
            Decision::Next(Ask::Status)
        );
        match decide(
            &job,
            &request(),
            tripo(),
            Answer::NotAsked,
            deadline,
            TIMEOUT,
        ) {
            Decision::End(End::TimedOut { message }) => assert!(message.contains("900 s")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn queue_positions_and_logs_become_progress() {
        let queued = decide_now(
            &running(),
            Answer::Status(Ok(QueueStatus::InQueue { position: Some(2) })),
        );
        assert_eq!(
            queued,
            Decision::End(End::Progress {
                progress: 8,
                message: "Waiting in the FAL.AI queue (position 2)".into()
            })
        );
        let logs = vec!["step 1 of 4".to_owned(), "step 3 of 4".to_owned()];
        let running_now = decide_now(
            &running(),
            Answer::Status(Ok(QueueStatus::InProgress { logs })),
        );
        assert_eq!(
            running_now,
            Decision::End(End::Progress {
                progress: 25,
                message: "Generating at FAL.AI: step 3 of 4".into()
            })
        );
    }

    #[test]
    fn status_errors_poll_again_when_they_may_pass_and_fail_otherwise() {
        for passing in [
            FalError::Server {
                status: 503,
                message: "busy".into(),
            },
            FalError::Transport("reset".into()),
            FalError::RateLimited {
                message: "slow down".into(),
                retry_after: None,
            },
            FalError::Malformed("<html>".into()),
        ] {
            assert_eq!(
                decide_now(&running(), Answer::Status(Err(passing.clone()))),
                Decision::End(End::PollLater),
                "{passing}"
            );
        }
        let refused = decide_now(
            &running(),
            Answer::Status(Err(FalError::Unauthorized("bad key".into()))),
        );
        assert_eq!(code_of(refused), "FAL_UNAUTHORIZED");
    }

    #[test]
    fn a_completed_request_fetches_its_result_unless_the_model_is_unknown() {
        let done = || Answer::Status(Ok(QueueStatus::Completed { logs: vec![] }));
        assert_eq!(decide_now(&running(), done()), Decision::Next(Ask::Result));
        let unknown = decide(&running(), &request(), None, done(), soon(), TIMEOUT);
        assert_eq!(code_of(unknown), "MODEL_UNAVAILABLE");
    }

    #[test]
    fn the_result_document_names_the_file_or_fails_the_job() {
        let document = json!({"model_mesh": {"url": "https://files/m.glb", "file_size": 20},
                              "rendered_image": {"url": "https://files/r.webp"}});
        assert_eq!(
            decide_now(&running(), Answer::Result(Ok(document))),
            Decision::Next(Ask::File {
                url: "https://files/m.glb".into(),
                preview_url: Some("https://files/r.webp".into()),
            })
        );
        let document = json!({"model_mesh": {"url": "https://files/m.glb"}});
        assert_eq!(
            decide_now(&running(), Answer::Result(Ok(document))),
            Decision::Next(Ask::File {
                url: "https://files/m.glb".into(),
                preview_url: None,
            })
        );
        let missing = decide_now(&running(), Answer::Result(Ok(json!({"other": {}}))));
        assert_eq!(code_of(missing), "FAL_OUTPUT_MISSING");
        let refused = decide_now(
            &running(),
            Answer::Result(Err(FalError::InvalidInput("no object found".into()))),
        );
        assert_eq!(code_of(refused), "FAL_INVALID_INPUT");
        assert_eq!(
            decide_now(
                &running(),
                Answer::Result(Err(FalError::Transport("reset".into())))
            ),
            Decision::End(End::PollLater)
        );
        // The depth model's output is an image under `image`.
        let depth = models::find(DEPTH_MODEL);
        let document = json!({"image": {"url": "https://files/d.png"}});
        assert_eq!(
            decide(
                &running(),
                &request(),
                depth,
                Answer::Result(Ok(document)),
                soon(),
                TIMEOUT
            ),
            Decision::Next(Ask::File {
                url: "https://files/d.png".into(),
                preview_url: None,
            })
        );
    }

    #[test]
    fn result_files_are_stored_checked_rerun_or_refused() {
        assert_eq!(
            decide_now(&running(), Answer::File(Ok(glb()))),
            Decision::End(End::Complete(FalOutput::Mesh {
                field: "model_mesh",
                bytes: glb()
            }))
        );
        assert_eq!(checked_mesh("model_mesh", glb()), Ok(glb()));
        let fbx = Bytes::from_static(b"Kaydara FBX Binary  \0\x1a\0");
        assert_eq!(
            checked_mesh("model_mesh", fbx).unwrap_err().0,
            "FAL_BAD_OUTPUT"
        );
        let expired = decide_now(
            &running(),
            Answer::File(Err(FalError::Expired("404".into()))),
        );
        assert!(matches!(
            expired,
            Decision::End(End::Rerun {
                code: JobErrorCode::FalResultExpired,
                ..
            })
        ));
        assert_eq!(
            decide_now(
                &running(),
                Answer::File(Err(FalError::Server {
                    status: 502,
                    message: "bad gateway".into()
                }))
            ),
            Decision::End(End::PollLater)
        );
        assert_eq!(
            code_of(decide_now(
                &running(),
                Answer::File(Err(FalError::TooLarge(10)))
            )),
            "FAL_RESULT_TOO_LARGE"
        );
        let depth = models::find(DEPTH_MODEL);
        let png = Bytes::from_static(b"\x89PNG...");
        assert_eq!(
            decide(
                &running(),
                &request(),
                depth,
                Answer::File(Ok(png.clone())),
                soon(),
                TIMEOUT
            ),
            Decision::End(End::Complete(FalOutput::DepthMap(png)))
        );
    }

    #[test]
    fn progress_is_monotonic_along_the_way_to_completion() {
        let queued: Vec<u8> = [Some(9), Some(3), Some(0)]
            .into_iter()
            .map(|p| queued_progress(p).0)
            .collect();
        assert_eq!(queued, [5, 7, 10]);
        let logs: Vec<String> = (0..20).map(|i| format!("step {i}")).collect();
        let running: Vec<u8> = (0..=20).map(|n| running_progress(&logs[..n]).0).collect();
        assert!(running.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!((running[0], running[20]), (15, 80));
        assert!(running_progress(&logs[..2]).1.ends_with("step 1"));
    }

    #[test]
    fn glb_headers_are_checked() {
        let mut glb = glb().to_vec();
        assert!(is_glb(&glb));
        assert!(!is_glb(&glb[..19]));
        assert!(!is_glb(b"Kaydara FBX Binary  \0"));
        glb[8] = 99;
        assert!(!is_glb(&glb));
    }
}
