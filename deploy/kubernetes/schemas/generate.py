#!/usr/bin/env python3
"""Derive scaledobject-keda-v1alpha1.json from KEDA's own sources.

The JSON schema that scripts/validate-deploy.sh checks keda-scaledobject.yaml
against is generated, not written by hand:

- from the ScaledObject CRD's openAPIV3Schema
  (config/crd/bases/keda.sh_scaledobjects.yaml), converted to JSON Schema
  with `additionalProperties: false` wherever the CRD lists properties and
  does not say otherwise, so a misspelled field is an error (as it is for
  the API server, which prunes or rejects unknown fields);
- and, for triggers of `type: kafka`, the trigger metadata keys the Kafka
  scaler reads (the `keda:"name=...,order=..."` tags of kafkaMetadata in
  pkg/scalers/kafka_scaler.go, plus the AWS keys it reads from the trigger
  metadata in pkg/scalers/aws/aws_common.go). KEDA itself only logs unknown
  metadata keys (KEDA_CHECK_UNEXPECTED_SCALERS_PARAMS), so a misspelled
  `lagThreshold` silently falls back to the default: here it is an error.

The CRD's one CEL rule (minReplicaCount <= maxReplicaCount) is checked by
scripts/validate_deploy.py.

Regenerate (needs PyYAML, e.g. target/deploy-venv/bin/python), from a KEDA
checkout at the release tag:

    # v2.20.2 is commit 68a5b5028f35b22d50597c69819ab32c4e92f21a
    git -C keda show v2.20.2:config/crd/bases/keda.sh_scaledobjects.yaml > crd.yaml
    git -C keda show v2.20.2:pkg/scalers/kafka_scaler.go > kafka_scaler.go
    python3 deploy/kubernetes/schemas/generate.py crd.yaml kafka_scaler.go \\
        v2.20.2 > deploy/kubernetes/schemas/scaledobject-keda-v1alpha1.json
"""

import json
import re
import sys

import yaml

# Keys of the trigger metadata read by awsutils.GetAwsAuthorization (KEDA
# v2.20.2, pkg/scalers/aws/aws_common.go), which the Kafka scaler calls for
# `sasl: oauthbearer` with `saslTokenProvider: aws_msk_iam`.
AWS_TRIGGER_METADATA = {
    "identityOwner": {"type": "string", "enum": ["", "pod", "operator"]},
    "awsAccessKeyID": {"type": "string"},
    "awsAccessKeyIDFromEnv": {"type": "string"},
    "awsSecretAccessKeyFromEnv": {"type": "string"},
}

# What strconv.ParseBool and ParseInt accept (KEDA parses metadata with them).
GO_BOOL = {"type": "string", "enum": ["1", "t", "T", "TRUE", "true", "True",
                                      "0", "f", "F", "FALSE", "false", "False"]}
GO_INT = {"type": "string", "pattern": r"^[+-]?[0-9]+$"}


def convert(node):
    """One OpenAPI v3 (structural, Kubernetes flavour) schema node to JSON Schema."""
    out = {}
    preserve_unknown = node.get("x-kubernetes-preserve-unknown-fields") is True
    for key, value in node.items():
        if key == "description" or key.startswith("x-kubernetes-"):
            continue
        if key == "properties":
            out[key] = {name: convert(sub) for name, sub in value.items()}
        elif key in ("items", "not"):
            out[key] = convert(value)
        elif key == "additionalProperties":
            out[key] = convert(value) if isinstance(value, dict) else value
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [convert(sub) for sub in value]
        elif key == "nullable":
            continue
        else:
            out[key] = value
    if node.get("nullable") is True and "type" in out:
        out["type"] = [out["type"], "null"]
    if node.get("x-kubernetes-int-or-string") is True and "anyOf" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in node and "additionalProperties" not in node and not preserve_unknown:
        out["additionalProperties"] = False
    return out


def kafka_metadata_schema(go_source):
    """The trigger metadata the Kafka scaler reads, from its struct tags."""
    struct = re.search(r"type kafkaMetadata struct \{(.*?)\n\}", go_source, re.S)
    if not struct:
        sys.exit("kafka_scaler.go: no `type kafkaMetadata struct`")
    properties, required = {}, []
    for field_type, tag in re.findall(r"^\s*\w+\s+(\S+)\s+`keda:\"([^\"]*)\"`", struct.group(1), re.M):
        params = {}
        for part in tag.split(","):
            key, _, value = part.partition("=")
            params[key.strip()] = value
        orders = params.get("order", "").split(";")
        name = params["name"]
        if "triggerMetadata" not in orders:
            continue  # read from a TriggerAuthentication only
        if "enum" in params:
            schema = {"type": "string", "enum": params["enum"].split(";")}
        elif field_type == "bool":
            schema = dict(GO_BOOL)
        elif re.fullmatch(r"u?int(8|16|32|64)?", field_type):
            schema = dict(GO_INT)
        else:
            schema = {"type": "string"}
        properties[name] = schema
        alternatives = [name]
        if "resolvedEnv" in orders:
            properties[name + "FromEnv"] = {"type": "string"}
            alternatives.append(name + "FromEnv")
        if "optional" not in params and "default" not in params:
            required.append(alternatives)
    properties.update(AWS_TRIGGER_METADATA)
    schema = {
        "type": "object",
        "properties": dict(sorted(properties.items())),
        "additionalProperties": False,
    }
    if required:
        schema["allOf"] = [
            {"anyOf": [{"required": [alt]} for alt in alternatives]} for alternatives in required
        ]
    return schema


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: generate.py keda.sh_scaledobjects.yaml kafka_scaler.go KEDA_VERSION")
    crd_path, kafka_path, keda_version = sys.argv[1:]
    with open(crd_path) as f:
        crd = yaml.safe_load(f)
    with open(kafka_path) as f:
        kafka_source = f.read()
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    api_version = f"{group}/{version['name']}"

    schema = convert(version["schema"]["openAPIV3Schema"])
    schema["properties"]["apiVersion"] = {"type": "string", "const": api_version}
    schema["properties"]["kind"] = {"type": "string", "const": kind}
    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
    trigger = schema["properties"]["spec"]["properties"]["triggers"]["items"]
    trigger["allOf"] = [{
        "if": {"properties": {"type": {"const": "kafka"}}, "required": ["type"]},
        "then": {"properties": {"metadata": kafka_metadata_schema(kafka_source)}},
    }]

    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": (
            f"{kind} ({api_version}) of KEDA {keda_version}: generated by generate.py "
            "from config/crd/bases/keda.sh_scaledobjects.yaml (unknown fields are errors) "
            "and pkg/scalers/kafka_scaler.go (the kafka trigger's metadata keys). "
            "Do not edit by hand."
        ),
        "title": f"{kind} {api_version}",
    }
    document.update(schema)
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
