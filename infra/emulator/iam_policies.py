"""Expands template.yaml's IAM roles as AWS would, with the emulator's resource names.

The SAM transform (aws-sam-translator, the code CloudFormation runs) turns each function's
`Policies` into the statements of its role; intrinsic functions are then resolved against the
resources `provision.py` created, read from the environment the same way the functions read
them (the template's `Globals` say which variable holds which resource). Prints one JSON object:
binary name -> {"statements": [...], "platform": [...]}, where `platform` holds the statements
of AWS managed policies (logs, the SQS event source's polling), which Lambda itself uses.

usage: python iam_policies.py TEMPLATE        (with TABLE_NAME, BUCKET_NAME, QUEUE_URL,
                                               DEAD_LETTER_QUEUE_URL and AWS_REGION set)
"""

import json
import os
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ACCOUNT = "123456789012"  # moto's account

# The AWS managed policies SAM attaches, as AWS publishes them.
MANAGED = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*",
        }
    ],
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole": [
        {
            "Effect": "Allow",
            "Action": [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
            ],
            "Resource": "*",
        }
    ],
}


class NoManagedPolicyNames:
    """The template names no managed policy by name, so no IAM lookup is needed."""

    def load(self):
        return {}


class Resolver:
    """Evaluates the intrinsic functions of policy statements with the emulator's names."""

    def __init__(self, template, region):
        self.region = region
        env = template["Globals"]["Function"]["Environment"]["Variables"]
        self.refs = {}
        for variable, value in env.items():
            if isinstance(value, dict) and set(value) == {"Ref"} and variable in os.environ:
                self.refs[value["Ref"]] = os.environ[variable]
        # The uploads bucket is the one named by the BucketName parameter.
        self.refs["UploadsBucket"] = self.refs["BucketName"]
        self.refs.update({"AWS::Region": region, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"})

    def queue(self, logical, attribute):
        name = self.refs[logical].rstrip("/").rsplit("/", 1)[-1]
        return {"QueueName": name, "Arn": f"arn:aws:sqs:{self.region}:{ACCOUNT}:{name}", "QueueUrl": self.refs[logical]}[
            attribute
        ]

    def get_att(self, logical, attribute):
        if logical in ("WorkQueue", "DeadLetterQueue", "WebhookQueue", "WebhookDeadLetterQueue"):
            return self.queue(logical, attribute)
        if logical == "JobsTable" and attribute == "Arn":
            return f"arn:aws:dynamodb:{self.region}:{ACCOUNT}:table/{self.refs['JobsTable']}"
        raise ValueError(f"no emulator value for Fn::GetAtt {logical}.{attribute}")

    def resolve(self, value):
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                if arg not in self.refs:
                    raise ValueError(f"no emulator value for Ref {arg}")
                return self.refs[arg]
            if key == "Fn::GetAtt":
                logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(logical, attribute)
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))
                return self.substitute(text, variables)
            if key == "Fn::Join":
                separator, parts = arg
                return separator.join(self.resolve(parts))
        return {k: self.resolve(v) for k, v in value.items()}

    def substitute(self, text, variables):
        out, rest = [], text
        while "${" in rest:
            before, _, after = rest.partition("${")
            name, _, rest = after.partition("}")
            out.append(before)
            if name in variables:
                out.append(str(variables[name]))
            elif "." in name:
                out.append(self.get_att(*name.split(".", 1)))
            else:
                out.append(self.resolve({"Ref": name}))
        out.append(rest)
        return "".join(out)


def statements(document):
    listed = document["Statement"]
    return listed if isinstance(listed, list) else [listed]


def main(template_path):
    region = os.environ.get("AWS_REGION", "us-east-1")
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    with open(template_path, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    resolver = Resolver(template, region)
    functions = {}
    for logical, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            # As `sam package` leaves it: the code in S3.
            resource["Properties"]["CodeUri"] = f"s3://artifacts/{logical}.zip"
            functions[logical] = resource["Metadata"]["BuildProperties"]["Binary"]
    translated = transform(template, {}, NoManagedPolicyNames())
    resources = translated["Resources"]
    roles = {}
    for logical, binary in functions.items():
        role_ref = resources[logical]["Properties"]["Role"]
        role = resources[role_ref["Fn::GetAtt"][0]]["Properties"]
        own = [s for policy in role.get("Policies", []) for s in statements(policy["PolicyDocument"])]
        platform = []
        for arn in role.get("ManagedPolicyArns", []):
            arn = resolver.resolve(arn)
            if arn not in MANAGED:
                raise ValueError(f"{logical}: unknown managed policy {arn}")
            platform.extend(MANAGED[arn])
        roles[binary] = {"statements": resolver.resolve(own), "platform": platform}
    json.dump(roles, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
