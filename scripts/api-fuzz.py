"""The API fuzz (run by scripts/api-fuzz, with the schemathesis venv's Python).

Starts the local stack (scripts/run --profile dev, free ports, schedules on demand,
the cheapest Argon2id the template allows, one-hour access tokens), creates a
tenant as the operator (the tenants job through the Lambda Invoke API), registers
its owner with the owner invitation and logs in, seeds accounts, payments and a
member (scripts/api-fuzz-hooks.py makes them examples), then runs schemathesis on
openapi.yaml against the stack's HTTP API with that bearer token and every check
(scripts/schemathesis.toml says which are off and why), and stops the stack.
Exits with schemathesis's status.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READY_WITHIN = 1200  # seconds; includes scripts/run building the dev binaries
STOP_WITHIN = 60
OVERRIDES = [
    # The cheapest Argon2id cost the template allows: registration, login and the
    # unknown-user dummy verification run on every generated login.
    "Argon2MemoryKiB=7168",
    "Argon2Iterations=2",
    # The run's one token outlives the run.
    "AccessTokenTtlSeconds=3600",
]
OWNER_EMAIL = "owner@example.com"
OWNER_PASSWORD = "correct horse battery staple"


def arguments():
    parser = argparse.ArgumentParser(
        prog="scripts/api-fuzz",
        description="schemathesis against openapi.yaml through the local stack",
        epilog="Arguments after -- go to `schemathesis run` (e.g. -- --seed 1 --phases fuzzing).",
    )
    parser.add_argument("--max-examples", type=int, default=30, help="test cases per operation and phase (default: 30)")
    # One worker: with two, CPython 3.11's ast module (which hypothesis uses to describe
    # filters) can raise "SystemError: AST constructor recursion depth mismatch".
    parser.add_argument("--workers", default="1", help="concurrent schemathesis workers (default: 1)")
    parser.add_argument("--data-dir", help="the stack's data directory (default: a fresh one under .local/)")
    parser.add_argument("extra", nargs="*", help=argparse.SUPPRESS)
    return parser.parse_args()


class Stack:
    """scripts/run as a child process; its stdout is kept in a log file."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"{data_dir.name}.out"
        self.lines: list[str] = []
        self.ready = threading.Event()
        command = [str(ROOT / "scripts/run"), "--profile", "dev", "--api-port", "0", "--invoke-port", "0", "--ws-port", "0"]
        command += ["--schedule-speedup", "0", "--data-dir", str(data_dir)]
        for override in OVERRIDES:
            command += ["--parameter-overrides", override]
        self.process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        with open(self.log_path, "w") as log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                self.lines.append(line.rstrip("\n"))
                if line.startswith("ready in "):
                    self.ready.set()
        self.ready.set()

    def wait_ready(self) -> tuple[str, str]:
        self.ready.wait(READY_WITHIN)
        for line in self.lines:
            if line.startswith("ready in "):
                fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
                return fields["api"], fields["invoke"]
        sys.exit(f"api-fuzz: the stack did not report ready; its output: {self.log_path}")

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_WITHIN)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def call(method: str, url: str, body: dict, token: str | None = None) -> tuple[int, dict]:
    headers = {"content-type": "application/json", "idempotency-key": uuid.uuid4().hex}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def expect(status: int, wanted: int, what: str, body) -> None:
    if status != wanted:
        sys.exit(f"api-fuzz: {what} answered {status}: {body}")


def owner_token(api: str, invoke: str) -> tuple[str, str]:
    """A fresh tenant (the operator's job), its owner registered with the owner invitation, logged in."""
    tenant = f"fuzz-{uuid.uuid4().hex[:12]}"
    command = {"action": "create", "tenant_id": tenant, "name": "API fuzz", "owner_email": OWNER_EMAIL}
    status, created = call("POST", f"{invoke}/2015-03-31/functions/TenantsFunction/invocations", command)
    expect(status if "owner_invitation" in (created or {}) else -1, 200, "creating the tenant", created)
    registration = {
        "tenant_id": tenant,
        "email": OWNER_EMAIL,
        "password": OWNER_PASSWORD,
        "invitation": created["owner_invitation"]["token"],
    }
    status, body = call("POST", f"{api}/v1/users", registration)
    expect(status, 201, "registering the owner", body)
    credentials = {"tenant_id": tenant, "email": OWNER_EMAIL, "password": OWNER_PASSWORD}
    status, body = call("POST", f"{api}/v1/auth/login", credentials)
    expect(status, 200, "logging in", body)
    print(f"api-fuzz: tenant {tenant}, its owner logged in", flush=True)
    return tenant, body["access_token"]


def seed(api: str, tenant: str, token: str) -> dict:
    """Data for the operations that need some (scripts/api-fuzz-hooks.py makes them examples):
    a funding account and a customer account, payments to capture, void, refund and read,
    an account to freeze, close or give another limit, a member to administer, and machine
    clients to rotate and revoke."""
    seeds = {}
    funding = {"currency": "USD", "allow_overdraft": True, "overdraft_limit": 1_000_000_000}
    adjustable = {"currency": "USD", "allow_overdraft": True, "overdraft_limit": 1_000}
    for name, account in (("payer", funding), ("payee", {"currency": "USD"}), ("adjustable", adjustable)):
        status, body = call("POST", f"{api}/v1/accounts", account, token)
        expect(status, 201, "opening an account", body)
        seeds[name] = body["account_id"]
    for name in ("authorized", "to_capture", "to_void", "captured"):
        payment = {"amount": 1000, "currency": "USD", "payer_account_id": seeds["payer"], "payee_account_id": seeds["payee"]}
        status, body = call("POST", f"{api}/v1/payments", payment, token)
        expect(status, 201, "authorizing a payment", body)
        seeds[name] = body["payment_id"]
    status, body = call("POST", f"{api}/v1/payments/{seeds['captured']}/capture", {}, token)
    expect(status, 200, "capturing a payment", body)
    status, invitation = call("POST", f"{api}/v1/invitations", {"email": "member@example.com", "role": "member"}, token)
    expect(status, 201, "inviting a member", invitation)
    registration = {
        "tenant_id": tenant, "email": "member@example.com", "password": OWNER_PASSWORD, "invitation": invitation["token"]
    }
    status, body = call("POST", f"{api}/v1/users", registration)
    expect(status, 201, "registering the member", body)
    seeds["member"] = body["user_id"]
    for name in ("client", "client_to_revoke"):
        status, body = call("POST", f"{api}/v1/clients", {"name": f"fuzz {name}", "roles": ["member"]}, token)
        expect(status, 201, "creating a machine client", body)
        seeds[name] = body["client_id"]
    return seeds


def schemathesis(api: str, token: str, seeds: dict, args) -> int:
    tool = ROOT / ".venv/tools/schemathesis/bin/schemathesis"
    command = [str(tool), "--config-file", str(ROOT / "scripts/schemathesis.toml"), "run", str(ROOT / "openapi.yaml")]
    command += ["--url", api, "--header", f"Authorization: Bearer {token}"]
    # Every check but one: a method no route has is answered by API Gateway itself
    # (an HTTP API has no 405, it answers 404 {"message":"Not Found"} before any
    # function runs), and the local stack answers as API Gateway does.
    command += ["--checks", "all", "--exclude-checks", "unsupported_method"]
    command += ["--max-examples", str(args.max_examples), "--workers", args.workers]
    command += ["--no-color", *args.extra]
    started = time.monotonic()
    status = subprocess.call(command, cwd=ROOT, env={**os.environ, "CAAS_API_FUZZ_SEEDS": json.dumps(seeds)})
    print(f"api-fuzz: schemathesis finished in {time.monotonic() - started:.0f} s (exit {status})", flush=True)
    return status


def main() -> int:
    args = arguments()
    data_dir = Path(args.data_dir) if args.data_dir else ROOT / ".local" / f"api-fuzz-{uuid.uuid4().hex[:8]}"
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    stack = Stack(data_dir)
    try:
        api, invoke = stack.wait_ready()
        print(f"api-fuzz: stack ready, api={api} (function logs: {data_dir}/logs)", flush=True)
        tenant, token = owner_token(api, invoke)
        return schemathesis(api, token, seed(api, tenant, token), args)
    finally:
        stack.stop()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
