#!/usr/bin/env python3
"""Offline verifier of an exported audit bundle (GET /v1/audit/export).

Usage: audit-verify.py KEYS.json BUNDLE.json [BUNDLE.json ...]

KEYS.json is the JWKS of /.well-known/audit-keys.json (or one JWK from it),
obtained once and kept by the auditor; the bundles are the pages of one
export (all pages, in any order). Nothing else is trusted: not the server,
not the bundle. The byte formats are those of docs/EVENTS.md; this script is
an independent implementation of them (the Python standard library and the
`cryptography` package only).

Checks: every checkpoint's ES256 signature with the key named by its
`key_id`; the chain starts at the genesis (entry 1 present) or at the signed
checkpoint right below its oldest entry; seqs are consecutive; every entry
links to the previous hash and hashes to its `hash`; the entry at each
checkpoint's seq has the checkpoint's `head_hash`; the chain reaches the
latest checkpoint (no truncation); the export is complete.

Prints a JSON report; exits 0 when the bundle verifies, 1 when it does not,
2 when the input cannot be read.
"""

import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

BUNDLE_FORMAT = "caas.audit.bundle.v1"
CHECKPOINT_FORMAT = "caas.audit.checkpoint.v1"
GENESIS = "0" * 64
# The order of the P-256 group: a signature's S must be at most half of it.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class Unreadable(Exception):
    pass


def sorted_json(value):
    """docs/EVENTS.md: keys sorted by UTF-8 bytes (= code points), no
    whitespace, only `"`, `\\` and control characters escaped."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_keys(doc):
    keys = doc.get("keys", [doc]) if isinstance(doc, dict) else None
    if not isinstance(keys, list):
        raise Unreadable("KEYS.json is neither a JWKS nor a JWK")
    found = {}
    for jwk in keys:
        if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
            raise Unreadable("only EC P-256 keys (ES256) are expected")
        numbers = ec.EllipticCurvePublicNumbers(
            int.from_bytes(b64url(jwk["x"]), "big"), int.from_bytes(b64url(jwk["y"]), "big"), ec.SECP256R1()
        )
        found[jwk["kid"]] = numbers.public_key()
    return found


def checkpoint_verifies(checkpoint, keys):
    key = keys.get(checkpoint["key_id"])
    if key is None:
        return False
    try:
        raw = b64url(checkpoint["signature"])
    except ValueError:
        return False
    if len(raw) != 64:
        return False
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    if not (0 < r < P256_ORDER and 0 < s <= P256_ORDER // 2):
        return False
    signed = sorted_json(
        {
            "format": CHECKPOINT_FORMAT,
            "head_hash": checkpoint["head_hash"],
            "seq": checkpoint["seq"],
            "tenant_id": checkpoint["tenant_id"],
            "time": checkpoint["time"],
        }
    )
    try:
        key.verify(encode_dss_signature(r, s), signed, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def entry_hash(entry, prev_hash):
    content = {
        name: entry[name]
        for name in (
            "aggregate_id",
            "aggregate_type",
            "correlation_id",
            "event_id",
            "occurred_at",
            "payload",
            "recorded_at",
            "schema_version",
            "seq",
            "tenant_id",
            "type",
        )
    }
    return hashlib.sha256(bytes.fromhex(prev_hash) + sorted_json(content)).hexdigest()


def merge(bundles):
    tenant = None
    entries, checkpoints, continuations, complete = {}, {}, [], False
    for bundle in bundles:
        if bundle.get("format") != BUNDLE_FORMAT:
            raise Unreadable(f"not a {BUNDLE_FORMAT} bundle")
        if tenant not in (None, bundle["tenant_id"]):
            raise Unreadable("the bundles are of different tenants")
        tenant = bundle["tenant_id"]
        for entry in bundle["entries"]:
            if entries.setdefault(entry["seq"], entry) != entry:
                raise Unreadable(f"two different entries {entry['seq']}")
        for checkpoint in bundle["checkpoints"]:
            checkpoints.setdefault((checkpoint["seq"], checkpoint["signature"]), checkpoint)
        if "next_after_seq" in bundle:
            continuations.append(bundle["next_after_seq"])
        else:
            complete = True
    return tenant, entries, list(checkpoints.values()), continuations, complete


def verify(keys, bundles):
    tenant, entries, checkpoints, continuations, complete = merge(bundles)
    report = {"ok": False, "tenant_id": tenant, "entries_checked": 0, "checkpoints_verified": 0}

    def broken(seq, reason):
        report.update(first_broken_seq=seq, reason=reason)
        return report

    anchors = {}
    for checkpoint in sorted(checkpoints, key=lambda c: c["seq"]):
        if checkpoint["tenant_id"] != tenant or not checkpoint_verifies(checkpoint, keys):
            return broken(checkpoint["seq"], "bad_checkpoint")
        if anchors.setdefault(checkpoint["seq"], checkpoint["head_hash"]) != checkpoint["head_hash"]:
            return broken(checkpoint["seq"], "bad_checkpoint")
        report["checkpoints_verified"] += 1
    if anchors:
        report["latest_checkpoint_seq"] = max(anchors)
    if not complete or any(n + 1 not in entries for n in continuations):
        return broken(max(entries, default=0) + 1, "incomplete_export")

    seqs = sorted(entries)
    oldest = seqs[0] if seqs else None
    if oldest == 1:
        start = (0, GENESIS)
    else:
        below = [s for s in anchors if oldest is None or s < oldest]
        start = (max(below), anchors[max(below)]) if below else (0, GENESIS)
    last_seq, last_hash = start
    for seq in seqs:
        entry = entries[seq]
        if seq <= last_seq:
            continue
        if seq != last_seq + 1:
            return broken(last_seq + 1, "missing_entry")
        report["entries_checked"] += 1
        if entry["tenant_id"] != tenant:
            return broken(seq, "hash_mismatch")
        if entry["prev_hash"] != last_hash:
            return broken(seq, "prev_hash_mismatch")
        if entry["hash"] != entry_hash(entry, last_hash):
            return broken(seq, "hash_mismatch")
        if seq in anchors and anchors[seq] != entry["hash"]:
            return broken(seq, "checkpoint_mismatch")
        last_seq, last_hash = seq, entry["hash"]
    if anchors and max(anchors) > last_seq:
        return broken(last_seq + 1, "truncated")
    report.update(ok=True, head_seq=last_seq, head_hash=last_hash)
    return report


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    try:
        with open(argv[1], encoding="utf-8") as f:
            keys = load_keys(json.load(f))
        bundles = []
        for path in argv[2:]:
            with open(path, encoding="utf-8") as f:
                bundles.append(json.load(f))
        report = verify(keys, bundles)
    except (OSError, ValueError, KeyError, TypeError, Unreadable) as error:
        print(json.dumps({"ok": False, "error": f"{type(error).__name__}: {error}"}))
        return 2
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
