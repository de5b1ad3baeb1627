#!/usr/bin/env python3
"""Translates a SAM template into plain CloudFormation with the SAM translator, offline.

    sam-translate.py template.yaml out.json

`sam validate` translates too, but does not write the result; checkov reads the
translation, where SAM's generated roles, permissions and event source mappings
are. Managed policies named by name (not ARN) would need IAM to look up; the
template names none, so an empty map stands in and such a name fails the translation.
"""
import json
import os
import sys

from samtranslator.public.exceptions import InvalidDocumentException
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    def load(self):
        return {}


def main() -> int:
    source, target = sys.argv[1:3]
    # The translator asks boto3 for a region (it puts none in the output: ARNs keep
    # ${AWS::Region}); any region will do.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with open(source, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    # As `sam validate` does: local code paths stand for what `sam deploy` uploads.
    for resource in template.get("Resources", {}).values():
        props = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = f"s3://local-build/{props[key]}"
    try:
        translated = transform(template, {}, NoManagedPolicies(), passthrough_metadata=True)
    except InvalidDocumentException as e:
        for cause in e.causes:
            print(f"{source}: {cause.message}", file=sys.stderr)
        return 1
    with open(target, "w", encoding="utf-8") as f:
        json.dump(translated, f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
