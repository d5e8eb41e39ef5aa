"""Creates the template's bucket, table and queues in an AWS API emulator (moto server).

The definitions are read from template.yaml itself, so the emulator and AWS never drift apart:
the table's keys and indexes, the queues' visibility timeout and redrive policy. Prints the
environment variables the functions need, as KEY=VALUE lines.

usage: python provision.py TEMPLATE ENDPOINT_URL NAME

NAME names the bucket and prefixes the table and queues, so that one emulator can hold
several independent sets (the IAM check provisions its own).
"""

import json
import secrets
import sys

import boto3
import yaml


class CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form intrinsic tags (!Ref, !Sub, ...) as plain data."""


def _intrinsic(loader, tag_suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {tag_suffix: value}


CfnLoader.add_multi_constructor("!", _intrinsic)


def create_queue_pair(sqs, resources, name, queue="WorkQueue", dead_letters="DeadLetterQueue"):
    """A queue and its dead-letter queue, as the template defines them (the work queue's pair
    unless named)."""
    dead = resources[dead_letters]["Properties"]
    dead_url = sqs.create_queue(
        QueueName=f"{name}-dead-letters",
        Attributes={"MessageRetentionPeriod": str(dead["MessageRetentionPeriod"])},
    )["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    work = resources[queue]["Properties"]
    redrive = {"deadLetterTargetArn": dead_arn, "maxReceiveCount": str(work["RedrivePolicy"]["maxReceiveCount"])}
    work_url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(work["VisibilityTimeout"]),
            "MessageRetentionPeriod": str(work["MessageRetentionPeriod"]),
            "RedrivePolicy": json.dumps(redrive),
        },
    )["QueueUrl"]
    return work_url, dead_url


def main(template_path, endpoint, name):
    with open(template_path, encoding="utf-8") as f:
        resources = yaml.load(f, Loader=CfnLoader)["Resources"]
    session = boto3.session.Session(region_name="us-east-1")
    dynamodb = session.client("dynamodb", endpoint_url=endpoint)
    sqs = session.client("sqs", endpoint_url=endpoint)
    s3 = session.client("s3", endpoint_url=endpoint)

    table = resources["JobsTable"]["Properties"]
    bucket = name
    table_name = f"{name}-jobs"
    dynamodb.create_table(
        TableName=table_name,
        BillingMode=table["BillingMode"],
        AttributeDefinitions=table["AttributeDefinitions"],
        KeySchema=table["KeySchema"],
        GlobalSecondaryIndexes=table["GlobalSecondaryIndexes"],
    )
    ttl = table["TimeToLiveSpecification"]
    dynamodb.update_time_to_live(TableName=table_name, TimeToLiveSpecification=ttl)

    work_url, dead_url = create_queue_pair(sqs, resources, f"{name}-work")
    webhook_url, webhook_dead_url = create_queue_pair(
        sqs, resources, f"{name}-webhooks", "WebhookQueue", "WebhookDeadLetterQueue"
    )
    failed = resources["FailedEventsQueue"]["Properties"]
    failed_url = sqs.create_queue(
        QueueName=f"{name}-failed-events",
        Attributes={"MessageRetentionPeriod": str(failed["MessageRetentionPeriod"])},
    )["QueueUrl"]
    # A second pair with the same definitions, so the queue contract test owns its messages.
    contract_url, contract_dead_url = create_queue_pair(sqs, resources, f"{name}-contract")

    s3.create_bucket(Bucket=bucket)
    cors = resources["UploadsBucket"]["Properties"]["CorsConfiguration"]["CorsRules"][0]
    # CloudFormation spells two CORS fields differently from the S3 API.
    rule = {
        "AllowedMethods": cors["AllowedMethods"],
        "AllowedHeaders": cors["AllowedHeaders"],
        "AllowedOrigins": ["http://localhost:3000", "http://localhost:5173"],
        "ExposeHeaders": cors["ExposedHeaders"],
        "MaxAgeSeconds": cors["MaxAge"],
    }
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [rule]})
    # The emulator cannot invoke Lambda: object-created events go to a queue, from which the
    # tests hand them to the ingest handler exactly as Lambda would.
    events_url = sqs.create_queue(QueueName=f"{name}-upload-events")["QueueUrl"]
    events_arn = sqs.get_queue_attributes(QueueUrl=events_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rules = resources["IngestFunction"]["Properties"]["Events"]["Uploaded"]["Properties"]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": events_arn,
                    "Events": [rules["Events"]],
                    "Filter": {"Key": {"FilterRules": rules["Filter"]["S3Key"]["Rules"]}},
                }
            ]
        },
    )
    print(f"UPLOAD_EVENTS_QUEUE_URL={events_url}")
    print(f"TABLE_NAME={table_name}")
    print(f"BUCKET_NAME={bucket}")
    print(f"QUEUE_URL={work_url}")
    print(f"DEAD_LETTER_QUEUE_URL={dead_url}")
    print(f"WEBHOOK_QUEUE_URL={webhook_url}")
    print(f"WEBHOOK_DEAD_LETTER_QUEUE_URL={webhook_dead_url}")
    print(f"FAILED_EVENTS_QUEUE_URL={failed_url}")
    print(f"CONTRACT_QUEUE_URL={contract_url}")
    print(f"CONTRACT_DEAD_LETTER_QUEUE_URL={contract_dead_url}")
    # What Secrets Manager hands every function on AWS (template.yaml's StatusTokenSecret).
    print(f"STATUS_TOKEN_SECRET={secrets.token_hex(32)}")
    print(f"MAX_RECEIVES={resources['WorkQueue']['Properties']['RedrivePolicy']['maxReceiveCount']}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
