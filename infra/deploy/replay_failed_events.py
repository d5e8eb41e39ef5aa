"""Replays the asynchronous invocations that failed every try: upload events to the ingest
function and sweeps, which Lambda sent with their error to the on-failure destination
(template.yaml's FailedEventsQueue, alarmed by FailedEventsAlarm).

Each record's event (`requestPayload`) is sent again, synchronously, to the function that failed
it (`requestContext.functionArn`), one record at a time; the record is deleted once the function
succeeds and kept, with the new error printed, when it fails again. Only the functions named
with --function, in the account and region of the credentials, are invoked: a record naming any
other is kept and reported, since anyone who may send to the queue could write one. Both
functions are idempotent: an upload already ingested is left as it is, and a sweep only does
what is still to do.

usage: python replay_failed_events.py QUEUE_URL --function NAME [--function NAME] [--dry-run]
                                      [--max N] [--drop-unreplayable]

The names are the stack's outputs IngestFunction and SweeperFunction. --drop-unreplayable
deletes (after printing) what can never be replayed: messages that are not on-failure records,
and records without their event (Lambda leaves it out of records over 256 KB).

Credentials and region as for the AWS CLI. boto3 reads AWS_ENDPOINT_URL_SQS and
AWS_ENDPOINT_URL_LAMBDA, so the queue and the functions can be emulators (scripts/lambda_invoke.sh
replays on moto's queue to cargo-lambda's runtime). Exits 1 when a record was kept.
"""

import argparse
import json
import sys

import boto3
from botocore.config import Config

# Longer than the slowest function it replays runs (the sweeper: 300 s), so a record is not
# received again while its replay runs.
VISIBILITY_SECONDS = 960


class Unreplayable(Exception):
    """A message that no replay can ever deliver."""


def parse(body):
    """The record's function ARN and event; `Unreplayable` if it has none."""
    try:
        record = json.loads(body)
        arn = record["requestContext"]["functionArn"]
    except (ValueError, KeyError, TypeError) as error:
        raise Unreplayable(f"not an on-failure record ({error})") from None
    if "requestPayload" not in record:
        raise Unreplayable("the record holds no event (Lambda leaves out events over 256 KB)")
    return arn, record["requestPayload"], record["requestContext"]


def function_of(arn, account, region, allowed):
    """The function name of `arn` (`arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`)
    if it is one of `allowed` in this account and region, else None."""
    parts = arn.split(":")
    if len(parts) < 7 or parts[2] != "lambda" or parts[5] != "function":
        return None
    if parts[3] != region or parts[4] != account or parts[6] not in allowed:
        return None
    return parts[6]


def replay(name, event, lambda_client):
    """Sends `event` to function `name` again; None on success, else the error."""
    try:
        answer = lambda_client.invoke(
            FunctionName=name,
            InvocationType="RequestResponse",
            Payload=json.dumps(event).encode(),
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
    parser.add_argument("--function", action="append", required=True, dest="functions",
                        help="a function whose records may be replayed (repeat for each)")
    parser.add_argument("--dry-run", action="store_true", help="list the records, send nothing")
    parser.add_argument("--max", type=int, default=1000, help="records to take at most")
    parser.add_argument("--drop-unreplayable", action="store_true",
                        help="delete what can never be replayed, after printing it")
    args = parser.parse_args()

    config = Config(connect_timeout=10, read_timeout=900, retries={"max_attempts": 2})
    session = boto3.session.Session()
    sqs = session.client("sqs", config=config)
    lambda_client = session.client("lambda", config=config)
    account = session.client("sts", config=config).get_caller_identity()["Account"]
    region = session.region_name
    replayed, kept, taken = 0, 0, 0
    while taken < args.max:
        messages = sqs.receive_message(
            QueueUrl=args.queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=1,
            VisibilityTimeout=VISIBILITY_SECONDS,
        ).get("Messages", [])
        if not messages:
            break
        message = messages[0]
        taken += 1
        delete = lambda: sqs.delete_message(QueueUrl=args.queue_url, ReceiptHandle=message["ReceiptHandle"])
        try:
            arn, event, context = parse(message["Body"])
        except Unreplayable as why:
            if args.drop_unreplayable:
                delete()
                print(f"dropped: {why}: {message['Body'][:500]}")
            else:
                kept += 1
                print(f"kept, cannot be replayed: {why} (--drop-unreplayable deletes it)")
            continue
        what = f'{arn} ({context.get("condition", "?")}, request {context.get("requestId", "?")})'
        name = function_of(arn, account, region, args.functions)
        if name is None:
            kept += 1
            print(f"kept, not replayed: {what} is not one of {args.functions} in {account}/{region}")
            continue
        if args.dry_run:
            print(f"would replay: {what}")
            continue
        error = replay(name, event, lambda_client)
        if error is None:
            delete()
            replayed += 1
            print(f"replayed: {what}")
        else:
            kept += 1
            print(f"failed again, kept: {what}: {error}")
    print(f"{replayed} replayed, {kept} kept, {taken} read")
    return 1 if kept else 0


if __name__ == "__main__":
    sys.exit(main())
