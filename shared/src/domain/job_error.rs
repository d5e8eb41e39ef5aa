//! Why a job failed: one stable code per cause, each with what it means beside it (one table),
//! and a job's error (its code and this failure's message). Codes are written and read as the
//! strings clients have always seen (`"FAL_INVALID_INPUT"`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Declares [`JobErrorCode`] from one table: variant, the code's string, what it means.
macro_rules! job_error_codes {
    ($($variant:ident = $code:literal: $meaning:literal,)*) => {
        /// The stable `error.code` of a failed job.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum JobErrorCode {
            $(#[doc = $meaning] $variant,)*
        }

        impl JobErrorCode {
            /// Every code, in the table's order.
            pub const ALL: &[Self] = &[$(Self::$variant,)*];

            /// The code as clients see it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $code,)*
                }
            }

            /// What the code means, in words a client can show (the message of a failure that
            /// has nothing more particular to say).
            pub fn meaning(self) -> &'static str {
                match self {
                    $(Self::$variant => $meaning,)*
                }
            }
        }
    };
}

job_error_codes! {
    InvalidImage = "INVALID_IMAGE": "the upload is not a readable image (corrupt or truncated)",
    InvalidFileType = "INVALID_FILE_TYPE": "the upload is not a JPEG, PNG or WebP image",
    EmptyFile = "EMPTY_FILE": "the upload is empty",
    FileTooLarge = "FILE_TOO_LARGE": "the upload is over the size limit",
    ImageTooLarge = "IMAGE_TOO_LARGE": "the image has more pixels than allowed",
    FileRejected = "FILE_REJECTED": "the file was rejected",
    UploadTampered = "UPLOAD_TAMPERED": "the upload was written again after it was validated",
    GenerationFailed = "GENERATION_FAILED": "the model could not be generated",
    GeneratorCrashed = "GENERATOR_CRASHED": "the generator could not process this photo",
    JobDeadlineExceeded = "JOB_DEADLINE_EXCEEDED": "the job did not finish in time",
    ModelUnavailable = "MODEL_UNAVAILABLE": "no generator serves this model type",
    FileNotFound = "FILE_NOT_FOUND": "the uploaded file is gone",
    Cancelled = "CANCELLED": "the task was cancelled",
    FalUnauthorized = "FAL_UNAUTHORIZED": "FAL.AI refused our key",
    FalAccountLocked = "FAL_ACCOUNT_LOCKED": "the FAL.AI account is locked",
    FalInvalidInput = "FAL_INVALID_INPUT": "FAL.AI refused the input",
    FalRequestRejected = "FAL_REQUEST_REJECTED": "FAL.AI rejected the request",
    FalRateLimited = "FAL_RATE_LIMITED": "FAL.AI is rate limiting",
    FalUnavailable = "FAL_UNAVAILABLE": "FAL.AI is unavailable",
    FalBadResponse = "FAL_BAD_RESPONSE": "FAL.AI answered something unreadable",
    FalOutputMissing = "FAL_OUTPUT_MISSING": "FAL.AI completed without the model",
    FalBadOutput = "FAL_BAD_OUTPUT": "FAL.AI's model is not a glTF 2.0 binary",
    FalResultExpired = "FAL_RESULT_EXPIRED": "the result file is gone from FAL.AI",
    FalResultTooLarge = "FAL_RESULT_TOO_LARGE": "the result file is over the download limit",
    GenerationTimeout = "GENERATION_TIMEOUT": "FAL.AI did not finish in time",
}

impl fmt::Display for JobErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tests and logs compare a code with the string clients see.
impl PartialEq<&str> for JobErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A string that is no job error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job error code {0:?}")]
pub struct UnknownCode(String);

impl std::str::FromStr for JobErrorCode {
    type Err = UnknownCode;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == code)
            .ok_or_else(|| UnknownCode(code.to_owned()))
    }
}

impl Serialize for JobErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for JobErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        code.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a job failed: its code and what happened this time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    pub code: JobErrorCode,
    pub message: String,
}

impl JobError {
    pub fn new(code: JobErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<JobErrorCode> for JobError {
    /// The error of `code` with its meaning as the message.
    fn from(code: JobErrorCode) -> Self {
        Self::new(code, code.meaning())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_read_back_from_the_string_it_is_written_as_and_nothing_else_is_read() {
        for &code in JobErrorCode::ALL {
            let written = serde_json::to_string(&code).unwrap();
            assert_eq!(written, format!("\"{}\"", code.as_str()));
            assert_eq!(
                serde_json::from_str::<JobErrorCode>(&written).unwrap(),
                code
            );
            assert!(
                code.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b == b'_')
            );
            assert!(!code.meaning().is_empty());
        }
        let codes: std::collections::BTreeSet<_> =
            JobErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(codes.len(), JobErrorCode::ALL.len(), "no code twice");
        for unknown in ["\"invalid_image\"", "\"\"", "\"OTHER\"", "1"] {
            assert!(
                serde_json::from_str::<JobErrorCode>(unknown).is_err(),
                "{unknown}"
            );
        }
    }
}
