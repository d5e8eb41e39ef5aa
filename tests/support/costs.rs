//! What a model costs on AWS. The AWS calls each step of a model's life makes, per function and
//! IAM action, are held here; `tests/iam_policies.rs` records them through the permission
//! check's proxy and fails when the code makes other calls, and `tests/deploy_template.rs`
//! recomputes the README's cost table from them, so neither can drift silently.

use std::collections::BTreeMap;

/// Calls per (function, IAM action).
pub type Calls = BTreeMap<(String, String), u32>;

/// AWS's public prices in us-east-1 (US East, N. Virginia), from the services' pricing pages
/// (aws.amazon.com/lambda/pricing, /api-gateway/pricing, /dynamodb/pricing/on-demand,
/// /s3/pricing, /sqs/pricing), as the README cites them.
pub mod price {
    /// Lambda on arm64, per GB-second of billed duration.
    pub const LAMBDA_GB_SECOND: f64 = 0.000_013_333_4;
    pub const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
    pub const HTTP_API_REQUEST: f64 = 1.00 / 1e6;
    /// On-demand, per write request unit (a write of up to 1 KB).
    pub const DYNAMODB_WRITE: f64 = 0.625 / 1e6;
    /// On-demand, per read request unit (a strongly consistent read of up to 4 KB).
    pub const DYNAMODB_READ: f64 = 0.125 / 1e6;
    /// S3 Standard PUT, COPY, POST and LIST requests.
    pub const S3_WRITE: f64 = 0.005 / 1e3;
    /// S3 Standard GET and other requests.
    pub const S3_READ: f64 = 0.0004 / 1e3;
    /// SQS standard queue requests.
    pub const SQS_REQUEST: f64 = 0.40 / 1e6;
    /// Data transfer out to the internet, per GB (the first 10 TB a month).
    pub const TRANSFER_OUT_GB: f64 = 0.09;
}

/// The price of one call by its IAM action: request units of the smallest item size (writes of
/// up to 1 KB, reads of up to 4 KB; a job's record is under 1 KB), transactions twice.
pub fn call_price(action: &str) -> f64 {
    match action.split_once(':') {
        Some(("dynamodb", "GetItem" | "Query" | "Scan" | "BatchGetItem")) => price::DYNAMODB_READ,
        Some(("dynamodb", "TransactWriteItems" | "TransactGetItems")) => {
            2.0 * price::DYNAMODB_WRITE
        }
        Some(("dynamodb", _)) => price::DYNAMODB_WRITE,
        Some(("s3", "DeleteObject")) => 0.0,
        Some(("s3", "PutObject" | "CopyObject" | "ListBucket" | "ListBucketVersions")) => {
            price::S3_WRITE
        }
        Some(("s3", _)) => price::S3_READ,
        Some(("sqs", _)) => price::SQS_REQUEST,
        _ => 0.0,
    }
}

/// One step of a model's life on AWS.
pub struct Step {
    pub name: &'static str,
    /// HTTP API requests.
    pub api_requests: u32,
    /// Lambda invocations: (function, memory in MB as `template.yaml` gives it (a test holds
    /// them together), billed milliseconds each, how many).
    pub invocations: &'static [(&'static str, u32, u32, u32)],
    /// The AWS calls: (function, IAM action, how many).
    pub calls: &'static [(&'static str, &'static str, u32)],
    /// Bytes sent to the internet.
    pub bytes_out: u64,
}

impl Step {
    pub fn calls(&self) -> Calls {
        self.calls
            .iter()
            .map(|(function, action, n)| (((*function).to_owned(), (*action).to_owned()), *n))
            .collect()
    }

    /// In dollars.
    pub fn cost(&self) -> f64 {
        let compute: f64 = self
            .invocations
            .iter()
            .map(|(_, mb, ms, n)| {
                f64::from(*n)
                    * (price::LAMBDA_REQUEST
                        + f64::from(*mb) / 1024.0 * f64::from(*ms) / 1000.0
                            * price::LAMBDA_GB_SECOND)
            })
            .sum();
        let calls: f64 = self
            .calls
            .iter()
            .map(|(_, action, n)| f64::from(*n) * call_price(action))
            .sum();
        compute
            + calls
            + f64::from(self.api_requests) * price::HTTP_API_REQUEST
            + self.bytes_out as f64 / 1e9 * price::TRANSFER_OUT_GB
    }
}

/// Billed milliseconds of an invocation making `calls` AWS calls with `cpu_ms` of its own work:
/// 10 ms a call (an in-region round trip; against the emulator here, a model's 35 calls took
/// 450 to 530 ms in all, 13 to 15 ms each, the test's own requests included).
pub const fn billed_ms(calls: u32, cpu_ms: u32) -> u32 {
    10 * calls + cpu_ms
}

/// A built-in model (`relief`) made: presigned, uploaded, ingested, generated.
pub const MAKE: Step = Step {
    name: "made on the built-in generator",
    api_requests: 1,
    invocations: &[
        ("image2model-upload", 512, billed_ms(9, 5), 1),
        ("image2model-ingest", 1024, billed_ms(7, 10), 1),
        // The relief of a 640x427 photo: 7.7 to 14.8 ms here (x86_64); twice that on arm64.
        ("image2model-worker", 2048, billed_ms(17, 30), 1),
    ],
    calls: &[
        ("image2model-ingest", "dynamodb:GetItem", 2),
        ("image2model-ingest", "dynamodb:PutItem", 1),
        ("image2model-ingest", "dynamodb:Query", 1),
        ("image2model-ingest", "s3:GetObject", 2),
        ("image2model-ingest", "sqs:SendMessage", 1),
        ("image2model-upload", "dynamodb:GetItem", 4),
        ("image2model-upload", "dynamodb:PutItem", 2),
        ("image2model-upload", "dynamodb:UpdateItem", 2),
        ("image2model-upload", "s3:PutObject", 1),
        ("image2model-worker", "dynamodb:GetItem", 7),
        ("image2model-worker", "dynamodb:PutItem", 6),
        ("image2model-worker", "s3:GetObject", 1),
        ("image2model-worker", "s3:PutObject", 2),
        ("image2model-worker", "sqs:SendMessage", 1),
    ],
    bytes_out: 0,
};

/// A model at FAL (`tripo3d`), made. The worker's calls grow with the time FAL takes (a status
/// poll, a record read and written, a message sent back to the queue per wait): these are one
/// run's, with FAL taking 300 ms; the permission check holds the other functions' exactly.
pub const MAKE_AT_FAL: Step = Step {
    name: "made at FAL (FAL's own price apart)",
    api_requests: 2,
    invocations: &[
        ("image2model-upload", 512, billed_ms(10, 5), 1),
        ("image2model-ingest", 1024, billed_ms(7, 10), 1),
        ("image2model-webhook", 256, billed_ms(2, 1), 1),
        ("image2model-worker", 2048, billed_ms(6, 5), 11),
    ],
    calls: &[
        ("image2model-ingest", "dynamodb:GetItem", 2),
        ("image2model-ingest", "dynamodb:PutItem", 1),
        ("image2model-ingest", "dynamodb:Query", 1),
        ("image2model-ingest", "s3:GetObject", 2),
        ("image2model-ingest", "sqs:SendMessage", 1),
        ("image2model-upload", "dynamodb:GetItem", 4),
        ("image2model-upload", "dynamodb:PutItem", 2),
        ("image2model-upload", "dynamodb:UpdateItem", 3),
        ("image2model-upload", "s3:PutObject", 1),
        ("image2model-webhook", "dynamodb:GetItem", 1),
        ("image2model-webhook", "sqs:SendMessage", 1),
        ("image2model-worker", "dynamodb:GetItem", 42),
        ("image2model-worker", "dynamodb:PutItem", 17),
        ("image2model-worker", "dynamodb:UpdateItem", 1),
        ("image2model-worker", "s3:GetObject", 1),
        ("image2model-worker", "s3:PutObject", 2),
        ("image2model-worker", "sqs:SendMessage", 11),
    ],
    bytes_out: 0,
};

/// The model downloaded once (a 1.3 MB GLB, the rocket photo's).
pub const DOWNLOAD: Step = Step {
    name: "downloaded once",
    api_requests: 1,
    invocations: &[("image2model-download", 512, billed_ms(1, 2), 1)],
    calls: &[
        ("image2model-download", "dynamodb:GetItem", 1),
        ("image2model-download", "s3:GetObject", 2),
    ],
    bytes_out: 1_322_088,
};

/// One poll with the key.
pub const POLL: Step = Step {
    name: "one poll with the key",
    api_requests: 1,
    invocations: &[("image2model-status", 512, billed_ms(1, 1), 1)],
    calls: &[("image2model-status", "dynamodb:GetItem", 1)],
    bytes_out: 0,
};

/// One poll without a key (the public view): the address's counter written and read, as when
/// each poll reaches another instance (an instance that sees the address every second writes
/// every 10 s).
pub const PUBLIC_POLL: Step = Step {
    name: "one poll without a key",
    api_requests: 1,
    invocations: &[("image2model-status", 512, billed_ms(3, 1), 1)],
    calls: &[
        ("image2model-status", "dynamodb:GetItem", 2),
        ("image2model-status", "dynamodb:UpdateItem", 1),
    ],
    bytes_out: 0,
};

/// A stream opened (on the streaming URL, no API Gateway): one read to open; each second it
/// stays open it reads [`STREAM_READS_A_SECOND`] times more and bills its execution.
pub const STREAM: Step = Step {
    name: "the stream opened",
    api_requests: 0,
    invocations: &[("image2model-status", 512, billed_ms(1, 1), 1)],
    calls: &[("image2model-status", "dynamodb:GetItem", 1)],
    bytes_out: 0,
};

/// A webhook delivered to one endpoint (the announcement's message is sent by the worker,
/// counted where the model is made).
pub const WEBHOOK: Step = Step {
    name: "a webhook delivered",
    api_requests: 0,
    // The receiver's answer is waited for: 100 ms assumed.
    invocations: &[("image2model-deliver", 256, billed_ms(8, 100), 1)],
    calls: &[
        ("image2model-deliver", "dynamodb:GetItem", 4),
        ("image2model-deliver", "dynamodb:PutItem", 2),
        ("image2model-deliver", "dynamodb:Query", 1),
        ("image2model-deliver", "sqs:SendMessage", 1),
    ],
    bytes_out: 0,
};

/// Every step the permission check holds, by the name its journey gives it.
pub const STEPS: [(&str, &Step); 7] = [
    ("make", &MAKE),
    ("make at FAL", &MAKE_AT_FAL),
    ("download", &DOWNLOAD),
    ("poll with a key", &POLL),
    ("poll without a key", &PUBLIC_POLL),
    ("stream", &STREAM),
    ("webhook", &WEBHOOK),
];

/// How long a client follows a job: the built-in generator's jobs ended within 1 s here; a FAL
/// model's take about a minute.
pub const FOLLOW_BUILT_IN_SECS: u32 = 1;
pub const FOLLOW_FAL_SECS: u32 = 60;

/// The stream's reads a second: `SSE_POLL_SECONDS` is 0.25 by default, and the template keeps
/// it.
pub const STREAM_READS_A_SECOND: f64 = 4.0;

/// Following a job for `secs` seconds: by polling every second, by the stream, by a webhook.
pub fn following(secs: u32) -> [(&'static str, f64); 3] {
    let (_, stream_mb, _, _) = STREAM.invocations[0];
    let stream_second = f64::from(stream_mb) / 1024.0 * price::LAMBDA_GB_SECOND
        + STREAM_READS_A_SECOND * price::DYNAMODB_READ;
    [
        ("polling every second", f64::from(secs) * POLL.cost()),
        (
            "the stream",
            STREAM.cost() + f64::from(secs) * stream_second,
        ),
        ("a webhook", WEBHOOK.cost()),
    ]
}

/// The README's cost table, per 1,000 models.
pub fn table() -> String {
    let k = |dollars: f64| format!("${:.3}", dollars * 1000.0);
    let mut out = String::from(
        "| per 1,000 models | built-in generator | FAL model (AWS only) |\n|---|---|---|\n",
    );
    out.push_str(&format!(
        "| made and downloaded once | {} | {} |\n",
        k(MAKE.cost() + DOWNLOAD.cost()),
        k(MAKE_AT_FAL.cost() + DOWNLOAD.cost())
    ));
    let built_in = following(FOLLOW_BUILT_IN_SECS);
    let fal = following(FOLLOW_FAL_SECS);
    for ((how, a), (_, b)) in built_in.iter().zip(fal.iter()) {
        let how = if *how == "a webhook" {
            (*how).to_owned()
        } else {
            format!("{how} ({FOLLOW_BUILT_IN_SECS} s / {FOLLOW_FAL_SECS} s)")
        };
        out.push_str(&format!(
            "| + followed by {how} | {} | {} |\n",
            k(*a),
            k(*b)
        ));
    }
    out
}
