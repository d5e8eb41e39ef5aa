//! AWS's rules for the figures of `template.yaml` that the emulator does not enforce, and CORS
//! with one owner per entry point and one list of origins. The work
//! queue's visibility timeout is at least six times the worker's timeout (else a batch that is
//! still running reappears and spends `maxReceiveCount`), the functions' lease is that same
//! timeout, the worker outlasts a FAL result download, and the event source's concurrency times
//! its batch stays within FAL's in-flight cap and above SQS's minimum.

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
    // The streaming function URL answers for the status routes: a subset, GET only.
    let status = block(&template, "  StatusFunction:");
    assert_eq!(list(status, "AllowMethods"), ["get"]);
    for header in list(status, "AllowHeaders") {
        assert!(lower(&CORS_ALLOW_HEADERS).contains(&header), "{header}");
    }
    // Every list of origins is the one parameter.
    let bucket = block(&template, "  UploadsBucket:");
    for (what, text, key) in [
        ("HTTP API", api, "AllowOrigins: !Ref AllowedOrigins"),
        ("function URL", status, "AllowOrigins: !Ref AllowedOrigins"),
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
