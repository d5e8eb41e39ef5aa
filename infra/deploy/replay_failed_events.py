"""Replays the asynchronous invocations that failed every try: upload events to the ingest
function and sweeps, which Lambda sent with their error to the on-failure destination
(template.yaml's FailedEventsQueue, alarmed by FailedEventsAlarm).

Each record's event (`requestPayload`) is sent again to the function that failed it
(`requestContext.functionArn`), synchronously; the record is deleted once the function succeeds,
and kept, with the new error printed, when it fails again. Both functions are idempotent: an
upload already ingested is left as it is, and a sweep only does what is still to do.

usage: python replay_failed_events.py QUEUE_URL [--dry-run] [--max N]

Credentials and region as for the AWS CLI. boto3 reads AWS_ENDPOINT_URL_SQS and
AWS_ENDPOINT_URL_LAMBDA, so the queue and the functions can be emulators (scripts/lambda_invoke.sh
replays on moto's queue to cargo-lambda's runtime). Exits 1 when a record failed again.
"""

import argparse
import json
import sys

import boto3
from botocore.config import Config


def function_name(arn):
    """`arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]` -> NAME."""
    parts = arn.split(":")
    if len(parts) < 7 or parts[2] != "lambda" or parts[5] != "function":
        raise ValueError(f"not a function ARN: {arn}")
    return parts[6]


def replay(record, lambda_client):
    """Sends the record's event again; returns None on success, else the error."""
    name = function_name(record["requestContext"]["functionArn"])
    try:
        answer = lambda_client.invoke(
            FunctionName=name,
            InvocationType="RequestResponse",
            Payload=json.dumps(record["requestPayload"]).encode(),
        )
    except Exception as error:  # the invocation itself failed: keep the record
        return f"{name}: {error}"
    payload = answer["Payload"].read().decode(errors="replace")
    if answer.get("FunctionError") or answer.get("StatusCode", 200) >= 300:
        return f"{name}: {payload}"
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("queue_url")
    parser.add_argument("--dry-run", action="store_true", help="list the records, send nothing")
    parser.add_argument("--max", type=int, default=1000, help="records to take at most")
    args = parser.parse_args()

    config = Config(connect_timeout=10, read_timeout=900, retries={"max_attempts": 2})
    sqs = boto3.client("sqs", config=config)
    lambda_client = boto3.client("lambda", config=config)
    replayed, failed, taken = 0, 0, 0
    while taken < args.max:
        messages = sqs.receive_message(
            QueueUrl=args.queue_url,
            MaxNumberOfMessages=min(10, args.max - taken),
            WaitTimeSeconds=1,
            # Long enough for the function to run; a record that failed again reappears after.
            VisibilityTimeout=960,
        ).get("Messages", [])
        if not messages:
            break
        for message in messages:
            taken += 1
            try:
                record = json.loads(message["Body"])
                context = record["requestContext"]
                what = f'{context["functionArn"]} ({context.get("condition", "?")}, request {context.get("requestId", "?")})'
            except (ValueError, KeyError, TypeError) as error:
                print(f"kept: not an on-failure record ({error}): {message['Body'][:200]}")
                failed += 1
                continue
            if args.dry_run:
                print(f"would replay: {what}")
                continue
            error = replay(record, lambda_client)
            if error is None:
                sqs.delete_message(QueueUrl=args.queue_url, ReceiptHandle=message["ReceiptHandle"])
                replayed += 1
                print(f"replayed: {what}")
            else:
                failed += 1
                print(f"failed again, kept: {what}: {error}")
    print(f"{replayed} replayed, {failed} kept, {taken} read")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
