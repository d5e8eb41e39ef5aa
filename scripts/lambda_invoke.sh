#!/usr/bin/env bash
# Runs the functions under `cargo lambda watch` (the Lambda runtime emulator) and invokes one of
# each event kind from tests/fixtures/events: API Gateway HTTP events (health, a FAL webhook),
# an S3 object-created event and an SQS batch. The functions use whatever adapters the
# environment selects (the emulator's, when called from scripts/test.sh). Exits non-zero when an
# answer is wrong.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}

port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p target
cargo lambda watch --invoke-port "$port" --ignore-changes > target/cargo-lambda-watch.log 2>&1 &
watch_pid=$!
trap 'kill "$watch_pid" 2>/dev/null || true; wait "$watch_pid" 2>/dev/null || true' EXIT

invoke() {
    local function=$1 fixture=$2
    for _ in $(seq 120); do
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
