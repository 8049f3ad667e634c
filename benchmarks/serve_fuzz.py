"""Robustness of `emolens serve`: Schemathesis fuzzing of its OpenAPI schema, then a health check.

    python benchmarks/serve_fuzz.py                       # all checks but one, 200 examples per operation
    python benchmarks/serve_fuzz.py --max-examples 50 --checks not_a_server_error
    python benchmarks/serve_fuzz.py --api-key secret      # the same behind an API key (sent as X-API-Key)

Starts the server (`python -m emolens.cli serve` on a free loopback port), runs
`schemathesis run http://127.0.0.1:PORT/openapi.json` (valid and invalid data: positive and
negative modes, a fixed seed; every check but positive_data_acceptance, see --exclude-checks) and then checks that GET /v1/health still answers 200 and that
a real photo is still analysed. Target (issue 5): no server error (5xx) and a healthy server
afterwards. Prints Schemathesis' summary and a one-line verdict; exit code 0 when both hold.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO  # noqa: E402
from serve_load import server_log, start_server  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-examples", type=int, default=200, help="examples per operation (default 200)")
    ap.add_argument("--checks", default="all", help="Schemathesis checks (default: all; the target is "
                    "not_a_server_error)")
    ap.add_argument("--exclude-checks", default="positive_data_acceptance",
                    help="checks to skip (default: positive_data_acceptance: the schema cannot say that a "
                    "binary body must be a decodable picture, so random bytes are 'valid' yet get 422)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--api-key", default=None, help="start the server with this key and send it")
    ap.add_argument("--server-args", default="", help="extra `emolens serve` options")
    args = ap.parse_args(argv)

    import httpx

    server_args = shlex.split(args.server_args) + (["--api-key", args.api_key] if args.api_key else [])
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    proc, url = start_server(server_args, headers=headers)
    try:
        cmd = [str(Path(sys.executable).with_name("schemathesis")), "run", f"{url}/openapi.json",
               "--checks", args.checks, "--max-examples", str(args.max_examples), "--seed", str(args.seed),
               "--mode", "all", "--no-color"]
        if args.exclude_checks:
            cmd += ["--exclude-checks", args.exclude_checks]
        for k, v in headers.items():
            cmd += ["--header", f"{k}: {v}"]
        print("$", " ".join(shlex.quote(c) for c in cmd).replace(args.api_key or "\0", "KEY"), flush=True)
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory() as scratch:   # schemathesis keeps a cache folder in its cwd
            fuzz = subprocess.run(cmd, cwd=scratch)
        took = time.monotonic() - t0
        health = httpx.get(f"{url}/v1/health", headers=headers, timeout=10)
        photo = (REPO / "examples" / "astronaut.jpg").read_bytes()
        after = httpx.post(f"{url}/v1/analyze", content=photo, timeout=30,
                           headers={**headers, "content-type": "image/jpeg"})
        alive = proc.poll() is None
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    server_errors = server_log(proc).count("Traceback")
    ok_after = health.status_code == 200 and after.status_code == 200 and len(after.json()["faces"]) == 1
    print(f"schemathesis exit code {fuzz.returncode} in {took:.0f} s; server alive: {alive}; "
          f"tracebacks in the server log: {server_errors}; health after: {health.status_code} {health.json()}; "
          f"a photo after: {after.status_code}, {len(after.json().get('faces', []))} face(s)")
    return 0 if ok_after and alive and server_errors == 0 and fuzz.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
