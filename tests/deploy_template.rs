//! AWS's rules for the figures of `template.yaml` that the emulator does not enforce, and CORS
//! with one owner per entry point and one list of origins. The work
//! queue's visibility timeout is at least six times the worker's timeout (else a batch that is
//! still running reappears and spends `maxReceiveCount`), the functions' lease is that same
//! timeout, the worker outlasts a FAL result download, and the event source's concurrency times
//! its batch stays within FAL's in-flight cap and above SQS's minimum.

use image2model_tests::template;
use std::path::Path;

fn template() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"))
        .expect("template.yaml")
}

/// The block of `template.yaml` that starts at the line `header` (2-space indented resources
/// and parameters) and ends at the next line indented as little.
fn block<'a>(template: &'a str, header: &str) -> &'a str {
    let start = template
        .find(&format!("\n{header}\n"))
        .unwrap_or_else(|| panic!("{header} in the template"))
        + 1;
    let indent = header.len() - header.trim_start().len();
    let rest = &template[start + header.len() + 1..];
    let end = rest
        .lines()
        .scan(0, |offset, line| {
            let at = *offset;
            *offset += line.len() + 1;
            Some((at, line))
        })
        .find(|(_, line)| !line.trim().is_empty() && line.len() - line.trim_start().len() <= indent)
        .map_or(rest.len(), |(at, _)| at);
    &template[start..start + header.len() + 1 + end]
}

/// The number after `name:` in `text` (quotes allowed).
fn number(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().trim_matches('"'))
        .unwrap_or_else(|| panic!("{name} in {text}"))
        .parse()
        .unwrap_or_else(|_| panic!("{name} is a number"))
}

#[test]
fn queue_and_worker_timing_follow_aws_advice() {
    let template = template();
    let queue = block(&template, "  WorkQueue:");
    let worker = block(&template, "  WorkerFunction:");
    let globals = block(&template, "Globals:");
    let visibility = number(queue, "VisibilityTimeout");
    let worker_timeout = number(worker, "Timeout");
    assert!(
        visibility >= 6 * worker_timeout,
        "visibility {visibility} s < 6 x the worker's {worker_timeout} s"
    );
    assert_eq!(
        number(globals, "VISIBILITY_TIMEOUT_SECONDS"),
        visibility,
        "the functions' lease is the queue's visibility timeout"
    );
    let download = image2model_shared::config::FalSettings::default().download_timeout;
    assert!(
        worker_timeout > download.as_secs(),
        "a worker outlasts one FAL result download ({} s)",
        download.as_secs()
    );
    let job_deadline = image2model_shared::config::Config::default()
        .jobs
        .job_deadline
        .as_secs();
    assert!(
        job_deadline >= 2 * visibility,
        "a job whose worker died is taken over before its deadline"
    );
}

#[test]
fn a_burst_stays_within_fals_cap_and_sqs_limits() {
    let template = template();
    let worker = block(&template, "  WorkerFunction:");
    let batch = number(worker, "BatchSize");
    assert!(worker.contains("MaximumConcurrency: !Ref WorkerMaxConcurrency"));
    assert!(worker.contains("MaximumBatchingWindowInSeconds"));
    let concurrency = block(&template, "  WorkerMaxConcurrency:");
    let (default, min) = (
        number(concurrency, "Default"),
        number(concurrency, "MinValue"),
    );
    assert!(
        min >= 2,
        "SQS event sources take a MaximumConcurrency of 2 at least"
    );
    let in_flight = number(block(&template, "  FalMaxInFlight:"), "Default");
    assert!(
        batch * default <= in_flight,
        "{batch} x {default} messages at once exceed FAL's cap of {in_flight}"
    );
}

/// The bracketed list after `name:` in `text`, lower-cased.
fn list(text: &str, name: &str) -> Vec<String> {
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("{name} in {text}"));
    line.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|v| v.trim().trim_matches('"').to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .collect()
}

#[test]
fn cors_has_one_owner_per_entry_point_and_one_list_of_origins() {
    use image2model_shared::web::layers::{CORS_ALLOW_HEADERS, CORS_EXPOSE_HEADERS, CORS_METHODS};
    let template = template();
    let lower =
        |items: &[&str]| -> Vec<String> { items.iter().map(|i| i.to_ascii_lowercase()).collect() };
    // The HTTP API answers for the routes it carries, with the lists the code uses locally.
    let api = block(&template, "  HttpApi:");
    assert_eq!(list(api, "AllowMethods"), lower(&CORS_METHODS));
    assert_eq!(list(api, "AllowHeaders"), lower(&CORS_ALLOW_HEADERS));
    assert_eq!(list(api, "ExposeHeaders"), lower(&CORS_EXPOSE_HEADERS));
    // The streaming function URL answers for the status routes: a subset, GET only, to any
    // origin without credentials (a redirected EventSource arrives with `Origin: null`;
    // tests/browser/web_client.test.mjs follows one in Chromium).
    let status = block(&template, "  StatusFunction:");
    assert_eq!(list(status, "AllowMethods"), ["get"]);
    assert_eq!(list(status, "AllowOrigins"), ["*"]);
    assert!(status.contains("AllowCredentials: false"));
    for header in list(status, "AllowHeaders") {
        assert!(lower(&CORS_ALLOW_HEADERS).contains(&header), "{header}");
    }
    // Every other list of origins is the one parameter.
    let bucket = block(&template, "  UploadsBucket:");
    for (what, text, key) in [
        ("HTTP API", api, "AllowOrigins: !Ref AllowedOrigins"),
        ("bucket", bucket, "AllowedOrigins: !Ref AllowedOrigins"),
    ] {
        assert!(
            text.contains(key),
            "{what} takes its origins from AllowedOrigins"
        );
    }
    assert!(template.contains("CORS_ORIGINS: !Join [\",\", !Ref AllowedOrigins]"));
    assert_eq!(template.matches("AllowOrigins:").count(), 2);
}

/// The signals an operator needs each have an alarm, and the ones on our own metrics name what
/// the functions write (the EMF namespace and metric names of `shared/src/metrics.rs`).
#[test]
fn operators_are_alarmed_on_what_the_functions_report() {
    let template = template();
    for (alarm, metric) in [
        ("  DeadLetterAlarm:", "ApproximateNumberOfMessagesVisible"),
        ("  WorkerErrorsAlarm:", "MetricName: Errors"),
        ("  WorkerThrottlesAlarm:", "MetricName: Throttles"),
        ("  JobFailureRateAlarm:", "MetricName: JobsFailed"),
        ("  FalBreakerOpenAlarm:", "MetricName: FalBreakerOpened"),
    ] {
        assert!(
            block(&template, alarm).contains(metric),
            "{alarm} watches {metric}"
        );
    }
    let metrics = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/src/metrics.rs"),
    )
    .unwrap();
    for name in ["JobsFailed", "JobsCompleted", "FalBreakerOpened"] {
        assert!(
            metrics.contains(&format!("(\"{name}\"")),
            "metrics.rs writes {name}"
        );
    }
    assert!(template.contains(&format!(
        "Namespace: {}",
        image2model_shared::metrics::EMF_NAMESPACE
    )));
}

/// Building for AWS: `sam build` reads `samconfig.toml` (beta features for the cargo-lambda
/// builder, cached, parallel), and the deploy section builds every function once first.
#[test]
fn the_deploy_build_compiles_the_sdk_once() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let samconfig = std::fs::read_to_string(root.join("samconfig.toml")).unwrap();
    for setting in ["beta_features = true", "cached = true", "parallel = true"] {
        assert!(samconfig.contains(setting), "samconfig.toml: {setting}");
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(readme.contains("bash scripts/build_lambdas.sh"));
    assert!(readme.contains("CARGO_TARGET_DIR=$PWD/target sam build"));
    let script = std::fs::read_to_string(root.join("scripts/build_lambdas.sh")).unwrap();
    assert!(script.contains("--arm64") && script.contains("for dir in functions/*/"));
}

/// Every resource block of `type_name` (`Type: ...`), as (logical id, block).
fn resources<'a>(template: &'a str, type_name: &str) -> Vec<(&'a str, &'a str)> {
    let body = block(template, "Resources:");
    body.lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.trim_end().ends_with(':'))
        .map(|l| l.trim().trim_end_matches(':'))
        .map(|id| (id, block(template, &format!("  {id}:"))))
        .filter(|(_, text)| text.contains(&format!("\n    Type: {type_name}\n")))
        .collect()
}

/// The text after `name:` on its line in `text`.
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name}:")))
        .map(str::trim)
}

/// A figure of the template: a number, or `!Ref` of a parameter (its default).
fn figure(template: &str, value: &str) -> u64 {
    match value.strip_prefix("!Ref ") {
        Some(parameter) => number(block(template, &format!("  {parameter}:")), "Default"),
        None => value
            .parse()
            .unwrap_or_else(|_| panic!("{value} is a number")),
    }
}

/// Every function has a concurrency ceiling, a log group of its own that expires after
/// LogRetentionDays, the customer managed key's policy when there is one, and a reason for each
/// scanner check it skips.
#[test]
fn every_function_has_a_ceiling_a_log_that_expires_and_the_chosen_key() {
    let template = template();
    let functions = resources(&template, "AWS::Serverless::Function");
    assert_eq!(functions.len(), 13, "{functions:?}");
    let mut groups = Vec::new();
    for (id, function) in &functions {
        let reserved = field(function, "ReservedConcurrentExecutions")
            .unwrap_or_else(|| panic!("{id} has no reserved concurrency"));
        assert!(figure(&template, reserved) >= 1, "{id}");
        let group = field(function, "LogGroup")
            .and_then(|g| g.strip_prefix("!Ref "))
            .unwrap_or_else(|| panic!("{id} names its log group"));
        let log = block(&template, &format!("  {group}:"));
        assert!(log.contains("Type: AWS::Logs::LogGroup"), "{group}");
        assert!(
            log.contains("RetentionInDays: !Ref LogRetentionDays"),
            "{group}"
        );
        assert!(
            log.contains("KmsKeyId: !If [HasKmsKey, !Ref KmsKeyArn"),
            "{group}"
        );
        groups.push(group);
        assert!(
            function.contains("- !If [HasKmsKey, !Ref KmsKeyUse, !Ref \"AWS::NoValue\"]"),
            "{id} may use the customer managed key"
        );
    }
    groups.sort_unstable();
    groups.dedup();
    assert_eq!(groups.len(), functions.len(), "one log group per function");
    let access = field(block(&template, "  HttpApi:"), "DestinationArn").unwrap();
    assert_eq!(access, "!GetAtt ApiAccessLogs.Arn");
    assert!(
        block(&template, "  ApiAccessLogs:").contains("RetentionInDays: !Ref LogRetentionDays")
    );
    assert_eq!(
        number(block(&template, "  LogRetentionDays:"), "Default"),
        30
    );
    // Each skipped scanner check says why, at length.
    let mut skips = 0;
    for line in template.lines().filter(|l| l.contains("id: CKV_")) {
        skips += 1;
        let inline = line.split("comment: \"").nth(1).map(str::len);
        let folded = template[template.find(line).unwrap() + line.len()..]
            .lines()
            .nth(1)
            .filter(|next| next.trim_start().starts_with("comment:"))
            .map(|_| 80);
        assert!(
            inline.or(folded).is_some_and(|len| len >= 60),
            "a skip without its reason: {line}"
        );
    }
    assert!(skips >= 2 * functions.len(), "{skips}");
}

/// The account keeps 100 executions unreserved (AWS refuses a reservation that leaves fewer of
/// its default 1,000); the worker's ceiling is its event source's, so SQS never polls more
/// than it may run (and FAL's cap bounds both, see above); deliveries likewise.
#[test]
fn reserved_concurrency_fits_the_account_and_follows_the_event_sources() {
    let template = template();
    let total: u64 = resources(&template, "AWS::Serverless::Function")
        .iter()
        .map(|(_, f)| figure(&template, field(f, "ReservedConcurrentExecutions").unwrap()))
        .sum();
    assert!(
        total <= 1000 - 100,
        "{total} reserved of an account's 1,000"
    );
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    assert!(
        readme.contains(&format!("Reserved in all: {total} executions")),
        "the README's total of reserved executions is {total}"
    );
    // The least an operator can reserve with the parameters' minimums.
    let least: u64 = resources(&template, "AWS::Serverless::Function")
        .iter()
        .map(|(_, f)| {
            let reserved = field(f, "ReservedConcurrentExecutions").unwrap();
            match reserved.strip_prefix("!Ref ") {
                Some(p) => number(block(&template, &format!("  {p}:")), "MinValue"),
                None => reserved.parse().unwrap(),
            }
        })
        .sum();
    assert!(
        readme.contains(&format!(
            "the parameters' minimums still reserve {least}, so ask for a quota of at\nleast {}",
            least + 100
        )),
        "the README's least reservation is {least}"
    );
    for (function, parameter) in [
        ("  WorkerFunction:", "!Ref WorkerMaxConcurrency"),
        ("  DeliverFunction:", "!Ref DeliverConcurrency"),
    ] {
        let text = block(&template, function);
        assert_eq!(field(text, "ReservedConcurrentExecutions"), Some(parameter));
        assert_eq!(field(text, "MaximumConcurrency"), Some(parameter));
    }
    assert!(number(block(&template, "  DeliverConcurrency:"), "MinValue") >= 2);
    // Routes that start work are throttled below the rest.
    let api = block(&template, "  HttpApi:");
    assert_eq!(field(api, "ThrottlingRateLimit"), Some("!Ref ApiRateLimit"));
    for route in [
        "POST /api/v1/uploads/presign",
        "POST /api/v1/jobs",
        "POST /api/v1/upload/image",
    ] {
        assert!(
            api.contains(&format!(
                "\"{route}\": {{ ThrottlingRateLimit: !Ref UploadRateLimit"
            )),
            "{route}"
        );
    }
}

/// Every function AWS invokes asynchronously (S3 events, schedules) sends what fails every try
/// to an on-failure destination, and every place a message can end up unprocessed (the queues'
/// dead-letter queues and those destinations) has an alarm.
#[test]
fn no_asynchronous_event_is_lost_unseen() {
    let template = template();
    let mut ends = Vec::new();
    for (id, function) in resources(&template, "AWS::Serverless::Function") {
        let asynchronous = [
            "Type: S3",
            "Type: ScheduleV2",
            "Type: Schedule",
            "Type: SNS",
            "Type: EventBridgeRule",
        ]
        .iter()
        .any(|kind| function.contains(kind));
        let destination = function
            .contains("OnFailure:")
            .then(|| field(function, "Destination"))
            .flatten();
        assert_eq!(
            asynchronous,
            destination.is_some(),
            "{id}: on-failure destination"
        );
        if asynchronous {
            // Lambda failing to send there loses the event: that too is alarmed.
            assert!(
                resources(&template, "AWS::CloudWatch::Alarm")
                    .iter()
                    .any(
                        |(_, alarm)| alarm.contains("MetricName: DestinationDeliveryFailures")
                            && alarm.contains(&format!("Value: !Ref {id}"))
                    ),
                "{id}: no alarm on DestinationDeliveryFailures"
            );
        }
        if let Some(queue) = destination {
            ends.push(
                queue
                    .trim_start_matches("!GetAtt ")
                    .trim_end_matches(".Arn")
                    .to_owned(),
            );
        }
    }
    assert_eq!(ends.len(), 2, "ingest and the sweeper");
    for (_, queue) in resources(&template, "AWS::SQS::Queue") {
        if let Some(target) = field(queue, "deadLetterTargetArn") {
            ends.push(
                target
                    .trim_start_matches("!GetAtt ")
                    .trim_end_matches(".Arn")
                    .to_owned(),
            );
        }
    }
    let alarms = resources(&template, "AWS::CloudWatch::Alarm");
    // Every alarm tells someone, when an operator names a topic.
    for (id, alarm) in &alarms {
        assert!(
            alarm.contains("AlarmActions: !If [HasAlarmTopic, [!Ref AlarmTopicArn]"),
            "{id} notifies AlarmTopicArn"
        );
    }
    for end in &ends {
        assert!(
            alarms.iter().any(|(_, alarm)| alarm
                .contains(&format!("Value: !GetAtt {end}.QueueName"))
                && alarm.contains("MetricName: ApproximateNumberOfMessagesVisible")),
            "no alarm on {end}"
        );
    }
    assert!(template.contains("infra/deploy/replay_failed_events.py"));
}

/// AWS's prices (us-east-1, arm64; aws.amazon.com/lambda/pricing and /api-gateway/pricing).
const LAMBDA_GB_SECOND: f64 = 0.000_013_333_4;
const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
const HTTP_API_REQUEST: f64 = 1.00 / 1e6;

/// The most an hour of flood can cost with the template's defaults, which the README states:
/// every function busy at its reserved concurrency for the hour, and every HTTP API route at
/// its rate limit (each request also a Lambda request).
#[test]
fn the_readmes_flood_ceiling_is_what_the_defaults_allow() {
    let template = template();
    let globals = block(&template, "Globals:");
    let default_memory = number(globals, "MemorySize");
    let compute: f64 = resources(&template, "AWS::Serverless::Function")
        .iter()
        .map(|(_, f)| {
            let reserved = figure(&template, field(f, "ReservedConcurrentExecutions").unwrap());
            let memory = field(f, "MemorySize").map_or(default_memory, |m| m.parse().unwrap());
            reserved as f64 * memory as f64 / 1024.0 * 3600.0 * LAMBDA_GB_SECOND
        })
        .sum();
    let routes = template::http_routes().events;
    let api = block(&template, "  HttpApi:");
    let throttled_low = routes
        .iter()
        .filter(|(_, path, method)| api.contains(&format!("\"{method} {path}\":")))
        .count();
    let (rate, upload_rate) = (
        number(block(&template, "  ApiRateLimit:"), "Default"),
        number(block(&template, "  UploadRateLimit:"), "Default"),
    );
    let per_second =
        (routes.len() - throttled_low) as u64 * rate + throttled_low as u64 * upload_rate;
    let requests = per_second as f64 * 3600.0 * (HTTP_API_REQUEST + LAMBDA_REQUEST);
    let ceiling = format!("${:.2}", compute + requests);
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let line = format!(
        "at most **{ceiling} an hour** ({} compute, {} requests at {per_second} a second)",
        format_args!("${compute:.2}"),
        format_args!("${requests:.2}")
    );
    assert!(readme.contains(&line), "the README should say: {line}");
}

/// The README's cost of a model is computed from the AWS calls `tests/iam_policies.rs` holds
/// (`support/costs.rs`) and the prices cited there: a change of either shows here.
#[test]
fn the_readmes_cost_table_is_computed_from_the_held_calls_and_prices() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let table = image2model_tests::costs::table();
    assert!(
        readme.contains(&table),
        "the README's cost table should read:\n{table}"
    );
}

/// The memory each invocation is priced at is the memory `template.yaml` gives its function.
#[test]
fn the_cost_tables_memory_sizes_are_the_templates() {
    let sizes = template::memory_sizes();
    assert_eq!(
        sizes["image2model-worker"],
        [2048].into(),
        "the template is read: {sizes:?}"
    );
    for (_, step) in image2model_tests::costs::STEPS {
        for (function, mb, _, _) in step.invocations {
            assert_eq!(
                sizes.get(*function),
                Some(&[*mb].into()),
                "{}: {function} is priced at {mb} MB",
                step.name
            );
        }
    }
}
