"""schemathesis hooks of scripts/api-fuzz (loaded through scripts/schemathesis.toml).

Adds the ids of the data scripts/api-fuzz.py seeded before the run (in
CAAS_API_FUZZ_SEEDS, JSON) to openapi.yaml as it is loaded, as examples of the
operations that need existing data: accounts with entries, payments in each state
their transitions start from, a member to administer (and whose second factor to reset),
machine clients. The file itself is untouched.
And a valid generated Idempotency-Key gets a unique suffix: the generator draws few
distinct short keys, and a key reused with another body answers 422 before the
operation's own checks (replays are the integration tests' business).
"""

import json
import os
import re
import uuid

import schemathesis


def _with_id_example(operation: dict, value: str) -> None:
    for index, parameter in enumerate(operation.get("parameters", [])):
        if parameter.get("$ref") == "#/components/parameters/Id":
            operation["parameters"][index] = {
                "name": "id",
                "in": "path",
                "required": True,
                "schema": {"$ref": "#/components/schemas/Id"},
                "example": value,
            }


def _with_body_example(operation: dict, body: dict) -> None:
    operation["requestBody"]["content"]["application/json"]["example"] = body


@schemathesis.hook
def before_load_schema(context, raw_schema):
    seeds = json.loads(os.environ.get("CAAS_API_FUZZ_SEEDS") or "{}")
    if not seeds:
        return
    paths = raw_schema["paths"]
    _with_id_example(paths["/v1/accounts/{id}"]["get"], seeds["payer"])
    _with_id_example(paths["/v1/accounts/{id}/transactions"]["get"], seeds["payee"])
    _with_id_example(paths["/v1/payments/{id}"]["get"], seeds["authorized"])
    _with_id_example(paths["/v1/payments/{id}/capture"]["post"], seeds["to_capture"])
    _with_id_example(paths["/v1/payments/{id}/void"]["post"], seeds["to_void"])
    _with_id_example(paths["/v1/payments/{id}/refunds"]["post"], seeds["captured"])
    _with_id_example(paths["/v1/users/{id}"]["patch"], seeds["member"])
    _with_id_example(paths["/v1/users/{id}/mfa"]["delete"], seeds["member"])
    _with_id_example(paths["/v1/clients/{id}/secret"]["post"], seeds["client"])
    _with_id_example(paths["/v1/clients/{id}"]["delete"], seeds["client_to_revoke"])
    _with_body_example(paths["/v1/accounts"]["post"], {"currency": "USD", "name": "fuzz"})
    payment = {"amount": 100, "currency": "USD", "payer_account_id": seeds["payer"], "payee_account_id": seeds["payee"]}
    _with_body_example(paths["/v1/payments"]["post"], payment)
    _with_body_example(paths["/v1/payments/{id}/capture"]["post"], {"amount": 50})
    _with_body_example(paths["/v1/payments/{id}/refunds"]["post"], {"amount": 10})
    _with_body_example(paths["/v1/users/{id}"]["patch"], {"role": "auditor"})


@schemathesis.hook
def map_headers(context, headers):
    key = (headers or {}).get("Idempotency-Key")
    if isinstance(key, str) and re.fullmatch(r"[!-~]{1,255}", key):
        headers["Idempotency-Key"] = f"{key[:200]}.{uuid.uuid4().hex}"
    return headers
