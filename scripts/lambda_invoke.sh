#!/usr/bin/env bash
# Runs the functions under cargo-lambda's Lambda runtime emulator (`cargo lambda watch
# --only-lambda-apis`) and invokes one of each event kind from tests/fixtures/events with `cargo
# lambda invoke`: API Gateway HTTP events (health, a FAL webhook, a status stream asked on the
# API's address, which the streaming status function answers whole), an S3 object-created event and
# an SQS batch. Then it replays on-failure records from the failed-events queue through
# cargo-lambda's Invoke API (infra/deploy/replay_failed_events.py). The functions use whatever
# adapters the environment selects (the emulator's, when called from scripts/test.sh, which also
# provisions FAILED_EVENTS_QUEUE_URL). Exits non-zero when an answer is wrong.
#
# The four binaries are built here and started against the emulator's runtime API
# (`.rt/<function>`), instead of letting `cargo lambda watch` build them: its build leaves out the
# dev-dependencies' features (tokio's `test-util`), so after the test build it recompiled every
# dependency of tokio. Built together with `--tests`, the features are the test build's and only
# the binaries themselves are compiled.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
functions=(image2model-health image2model-ingest image2model-worker image2model-webhook image2model-status)
failed_events=${FAILED_EVENTS_QUEUE_URL:?the failed-events queue: run from scripts/test.sh}
stream_base=https://a1b2c3d4.lambda-url.us-east-1.on.aws
# boto3 (the replay) reads its region from AWS_DEFAULT_REGION.
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-${AWS_REGION:-us-east-1}}

bins=()
for function in "${functions[@]}"; do bins+=(--bin "$function"); done
cargo build --locked --quiet --workspace --tests "${bins[@]}"

port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p target
log=target/cargo-lambda-watch.log
cargo lambda watch --only-lambda-apis --invoke-port "$port" > "$log" 2>&1 &
pids=($!)
trap 'kill "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true' EXIT
# A function that finds no runtime API exits: they start once the emulator listens.
for _ in $(seq 100); do
    "$python" -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
    sleep 0.2
done
for function in "${functions[@]}"; do
    env AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$port/.rt/$function" AWS_LAMBDA_FUNCTION_NAME="$function"         AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=512 STATUS_STREAM_BASE_URL="$stream_base"         "${CARGO_TARGET_DIR:-target}/debug/$function" >> "$log" 2>&1 &
    pids+=($!)
done

invoke() {
    local function=$1 fixture=$2
    for _ in $(seq 60); do
        if out=$(cargo lambda invoke "$function" --invoke-port "$port" --data-file "tests/fixtures/events/$fixture" --output-format json 2>/dev/null); then
            printf '%s' "$out"
            return 0
        fi
        sleep 1
    done
    echo "cargo lambda invoke $function failed; see target/cargo-lambda-watch.log" >&2
    return 1
}

check() {
    local what=$1 json=$2 expression=$3
    if "$python" -c "import json, sys; d = json.loads(sys.argv[1]); assert $expression, d" "$json"; then
        echo "ok: $what"
    else
        echo "FAILED: $what: $json" >&2
        return 1
    fi
}

health=$(invoke image2model-health apigw_http_health.json)
check "HTTP event -> health function" "$health" \
    'd["statusCode"] == 200 and json.loads(d["body"])["status"] == "healthy" and any(k.lower() == "x-request-id" for k in d["headers"])'

ingest=$(invoke image2model-ingest s3_object_created.json)
check "S3 event -> ingest function (an upload no record names is deleted)" "$ingest" 'd == [{"outcome": "unrecorded"}]'

worker=$(invoke image2model-worker sqs_generate_batch.json)
check "SQS event -> worker reports only the malformed message" "$worker" \
    'd == {"batchItemFailures": [{"itemIdentifier": "2e1424d4-f796-459a-8184-9c92662be6da"}]}'

webhook=$(invoke image2model-webhook apigw_http_fal_webhook.json)
check "FAL webhook event -> webhook function refuses the stale signature" "$webhook" \
    'd["statusCode"] == 401 and json.loads(d["body"])["error_code"] == "WEBHOOK_SIGNATURE_INVALID"'

# On Lambda every request is also a metric: an Embedded Metric Format line on stdout, which
# CloudWatch reads from the function's log.
emf=$(grep -m1 '"_aws"' target/cargo-lambda-watch.log || true)
check "the health function's request written as an EMF metric" "${emf:-null}" \
    'd["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "image2model" and d["Requests"] == 1 and d["Route"] == "/api/v1/health"'

status=$(invoke image2model-status apigw_http_status_stream.json)
check "a stream asked on the API's address -> the streaming status function answers it whole, named by the gateway's id (the task is unknown: checked before any redirect)" "$status" \
    'd["statusCode"] == 404 and json.loads(d["body"])["error_code"] == "JOB_NOT_FOUND" and json.loads(d["body"])["request_id"] == "JKJbYnQMwIdFTIC=" and d["headers"]["x-request-id"] == "JKJbYnQMwIdFTIC="'

# On-failure records in the failed-events queue: an upload event Lambda gave up on (replayed,
# then deleted), one whose event the function cannot read (failed again, kept), one naming a
# function the replay was not given (kept, never sent) and one Lambda kept no event of (kept).
"$python" - "$failed_events" <<'PY'
import json, sys, boto3
sqs = boto3.client("sqs")
good = open("tests/fixtures/events/lambda_on_failure_s3.json").read()
unreadable, foreign, eventless = json.loads(good), json.loads(good), json.loads(good)
unreadable["requestPayload"] = {"Records": "not a list"}
foreign["requestContext"]["functionArn"] = "arn:aws:lambda:us-east-1:123456789012:function:image2model-admin"
del eventless["requestPayload"]
for body in (good, json.dumps(unreadable), json.dumps(foreign), json.dumps(eventless)):
    sqs.send_message(QueueUrl=sys.argv[1], MessageBody=body)
PY
set +e
replayed=$(AWS_ENDPOINT_URL_LAMBDA="http://127.0.0.1:$port" "$python" infra/deploy/replay_failed_events.py "$failed_events" --function image2model-ingest 2>&1)
replay_rc=$?
set -e
echo "$replayed"
left=$("$python" -c '
import boto3, sys
a = boto3.client("sqs").get_queue_attributes(QueueUrl=sys.argv[1], AttributeNames=["All"])["Attributes"]
print(int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"]))' "$failed_events")
check "failed events replayed: the readable one delivered and deleted, the three others kept (exit 1)" \
    "{\"rc\": $replay_rc, \"left\": $left, \"summary\": $("$python" -c 'import json,sys; print(json.dumps(sys.argv[1].splitlines()[-1]))' "$replayed")}" \
    'd["rc"] == 1 and d["left"] == 3 and d["summary"] == "1 replayed, 3 kept, 4 read"'
