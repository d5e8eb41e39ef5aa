"""Expands template.yaml's IAM roles as AWS would, with the emulator's resource names.

The SAM transform (aws-sam-translator, the code CloudFormation runs) turns each function's
`Policies` into the statements of its role; intrinsic functions are then resolved against the
resources `provision.py` created, read from the environment the same way the functions read
them (the template's `Globals` say which variable holds which resource). Prints one JSON object:
binary name -> {"statements": [...], "platform": [...], "destinations": [...]}, where `platform`
holds the statements of AWS managed policies (logs, the SQS event source's polling) and
`destinations` those SAM adds for an on-failure destination (`EventInvokeConfig`): Lambda itself
uses both. Conditions (`Fn::If`) take the parameters' defaults: no FAL key, no sign-in, AWS
managed keys.

usage: python iam_policies.py TEMPLATE        (with the variables provision.py prints and
                                               AWS_REGION set)
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


NO_VALUE = object()  # AWS::NoValue: the element is left out


class Resolver:
    """Evaluates the intrinsic functions of policy statements with the emulator's names."""

    def __init__(self, template, region):
        self.region = region
        self.parameters = {name: p.get("Default") for name, p in template.get("Parameters", {}).items()}
        self.conditions = template.get("Conditions", {})
        env = template["Globals"]["Function"]["Environment"]["Variables"]
        self.refs = {}
        for variable, value in env.items():
            if isinstance(value, dict) and set(value) == {"Ref"} and variable in os.environ:
                self.refs[value["Ref"]] = os.environ[variable]
        # The uploads bucket is the one named by the BucketName parameter.
        self.refs["UploadsBucket"] = self.refs["BucketName"]
        # No function reads the failed-events queue; Lambda sends to it.
        self.refs["FailedEventsQueue"] = os.environ["FAILED_EVENTS_QUEUE_URL"]
        self.refs.update({"AWS::Region": region, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"})

    def queue(self, logical, attribute):
        name = self.refs[logical].rstrip("/").rsplit("/", 1)[-1]
        return {"QueueName": name, "Arn": f"arn:aws:sqs:{self.region}:{ACCOUNT}:{name}", "QueueUrl": self.refs[logical]}[
            attribute
        ]

    def get_att(self, logical, attribute):
        if logical in ("WorkQueue", "DeadLetterQueue", "WebhookQueue", "WebhookDeadLetterQueue", "FailedEventsQueue"):
            return self.queue(logical, attribute)
        if logical == "JobsTable" and attribute == "Arn":
            return f"arn:aws:dynamodb:{self.region}:{ACCOUNT}:table/{self.refs['JobsTable']}"
        raise ValueError(f"no emulator value for Fn::GetAtt {logical}.{attribute}")

    def condition(self, value):
        """A condition's truth with the parameters' defaults."""
        if isinstance(value, str):
            return self.condition(self.conditions[value])
        (key, arg), = value.items()
        if key == "Fn::Not":
            return not self.condition(arg[0])
        if key == "Fn::Equals":
            left, right = (self.parameters[v["Ref"]] if isinstance(v, dict) else v for v in arg)
            return left == right
        if key == "Condition":
            return self.condition(self.conditions[arg])
        raise ValueError(f"a condition this check cannot evaluate: {value}")

    def resolve(self, value):
        if isinstance(value, list):
            return [v for v in (self.resolve(v) for v in value) if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref" and arg == "AWS::NoValue":
                return NO_VALUE
            if key == "Fn::If":
                name, yes, no = arg
                return self.resolve(yes if self.condition(name) else no)
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
        own, destinations = [], []
        for policy in role.get("Policies", []):
            for_lambda = policy["PolicyName"] == f"{logical}EventInvokeConfigOnFailureSQSPolicy"
            (destinations if for_lambda else own).extend(statements(policy["PolicyDocument"]))
        platform = []
        for arn in resolver.resolve(role.get("ManagedPolicyArns", [])):
            if arn not in MANAGED:
                raise ValueError(f"{logical}: unknown managed policy {arn}")
            platform.extend(MANAGED[arn])
        role = {
            "statements": resolver.resolve(own),
            "platform": platform,
            "destinations": resolver.resolve(destinations),
        }
        # A binary deployed as two functions (the status function's URL and its API twin) must
        # be allowed the same in both, since the drive runs its code once.
        if roles.setdefault(binary, role) != role:
            raise ValueError(f"{binary}: its functions' roles differ")
    json.dump(roles, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
