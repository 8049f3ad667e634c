"""Load test of `emolens serve`: N concurrent clients posting a 640x480 one-face JPEG for D seconds.

    python benchmarks/serve_load.py                          # 8 clients, then 32 clients, 30 s each
    python benchmarks/serve_load.py --clients 8 --seconds 30 --server-args "--workers-threads 2"
    python benchmarks/serve_load.py --url http://127.0.0.1:8000   # an already running server

The server runs as a subprocess (`python -m emolens.cli serve` on a free loopback port, access
log off) unless --url is given. The picture is a photos-dev portrait (or --image) pasted as a
240 px face on a textured 640x480 background (`emolens.testing.clips`), JPEG quality 90,
posted as the raw body (`Content-Type: image/jpeg`; --multipart for a form upload). Each
client is a thread with its own keep-alive `httpx.Client`, posting back to back. The first
--warmup seconds are not counted. Reports requests/s, latency p50/p95/p99/max, errors
(any non-200 answer or transport error), and checks every answer found the one face. CPU
per request of the server and of the clients, and the share of all cores other processes
used during the window ("other load": should be ~0 for a clean measurement), come from /proc.
Targets (issue 5, 8 clients, 2 cores): >= 50 requests/s, p99 <= 250 ms, zero errors.
Loopback only: the clients talk to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_PHOTOS, REPO, markdown_table  # noqa: E402


def make_jpeg(image: Path, quality: int = 90) -> bytes:
    import cv2

    from emolens.testing.clips import background, render, steady_face

    frame = render(background((640, 480), seed=3), steady_face(image), 0.0)
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise SystemExit("cannot encode the test picture")
    return data.tobytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: list[str], timeout: float = 120.0, headers: dict | None = None) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    cmd = [sys.executable, "-m", "emolens.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--no-access-log", *args]
    log = tempfile.TemporaryFile("w+")     # the server's stderr (a pipe could fill up and block it)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, text=True)
    proc.log = log
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {server_log(proc)}")
        try:
            if httpx.get(f"{url}/v1/health", timeout=1, headers=headers).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not answer /v1/health in time")


def server_log(proc: subprocess.Popen) -> str:
    proc.log.seek(0)
    return proc.log.read()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))
    return s[k]


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of a process so far, from /proc (0 where /proc is missing)."""
    try:
        fields = Path(f"/proc/{pid or 'self'}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_busy_seconds() -> float:
    """CPU time all processes of the machine have used so far (/proc/stat: all but idle and iowait)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return (sum(values[:8]) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def run_load(url: str, body: bytes, clients: int, seconds: float, warmup: float, multipart: bool,
             expect_faces: int = 1, server_pid: int | None = None) -> dict:
    import httpx

    start = time.monotonic() + warmup
    stop = start + seconds
    lock = threading.Lock()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    wrong_faces = 0

    def client() -> None:
        nonlocal wrong_faces
        with httpx.Client(timeout=30) as http:
            while True:
                t0 = time.monotonic()
                if t0 >= stop:
                    return
                try:
                    if multipart:
                        r = http.post(f"{url}/v1/analyze", files={"file": ("face.jpg", body, "image/jpeg")})
                    else:
                        r = http.post(f"{url}/v1/analyze", content=body, headers={"content-type": "image/jpeg"})
                    status = str(r.status_code)
                    faces = len(r.json()["faces"]) if r.status_code == 200 else -1
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    status, faces = type(exc).__name__, -1
                t1 = time.monotonic()
                if t0 < start or t1 > stop:
                    continue  # warm-up, or finished after the window
                with lock:
                    if status == "200":
                        latencies.append(t1 - t0)
                        wrong_faces += faces != expect_faces
                    else:
                        errors[status] = errors.get(status, 0) + 1

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    time.sleep(max(0.0, start - time.monotonic()))
    cpu0 = (cpu_seconds(server_pid) if server_pid else 0.0, cpu_seconds(), machine_busy_seconds())
    time.sleep(max(0.0, stop - time.monotonic()))
    cpu1 = (cpu_seconds(server_pid) if server_pid else 0.0, cpu_seconds(), machine_busy_seconds())
    for t in threads:
        t.join()
    ms = [v * 1000 for v in latencies]
    n_err = sum(errors.values())
    server_cpu, client_cpu, machine_cpu = (b - a for a, b in zip(cpu0, cpu1))
    done = max(1, len(ms) + n_err)
    cores = os.cpu_count() or 1
    return {"clients": clients, "seconds": seconds, "requests": len(ms) + n_err,
            "rps": round(len(ms) / seconds, 1), "p50_ms": round(percentile(ms, 50), 1),
            "p95_ms": round(percentile(ms, 95), 1), "p99_ms": round(percentile(ms, 99), 1),
            "max_ms": round(max(ms), 1) if ms else float("nan"), "errors": n_err, "error_kinds": errors,
            "wrong_face_count": wrong_faces,
            "server_cpu_ms_per_request": round(1000 * server_cpu / done, 2) if server_pid else None,
            "client_cpu_ms_per_request": round(1000 * client_cpu / done, 2),
            # CPU used by everything else on the machine during the window, as a share of all cores
            "other_load_pct": round(100 * max(0.0, machine_cpu - server_cpu - client_cpu) / (seconds * cores), 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, action="append", help="concurrent clients (repeat; default 8 and 32)")
    ap.add_argument("--seconds", type=float, default=30.0, help="measured seconds per run (default 30)")
    ap.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first (default 3)")
    ap.add_argument("--image", type=Path, default=None, help="face picture (default: a photos-dev portrait, "
                    "else examples/astronaut.jpg)")
    ap.add_argument("--multipart", action="store_true", help="post multipart/form-data instead of a raw body")
    ap.add_argument("--url", default=None, help="an already running server (default: start one)")
    ap.add_argument("--server-args", default="", help="extra `emolens serve` options, e.g. '--workers-threads 1'")
    ap.add_argument("--json", action="store_true", help="print one JSON object per run too")
    args = ap.parse_args(argv)

    image = args.image
    if image is None:
        candidate = DEFAULT_PHOTOS / "images" / "Aaron_Guiel_0001.jpg"
        image = candidate if candidate.is_file() else REPO / "examples" / "astronaut.jpg"
    body = make_jpeg(image)
    proc = None
    url = args.url
    if url is None:
        proc, url = start_server(shlex.split(args.server_args))
    rows, results = [], []
    try:
        for clients in args.clients or [8, 32]:
            r = run_load(url, body, clients, args.seconds, args.warmup, args.multipart,
                         server_pid=proc.pid if proc is not None else None)
            results.append(r)
            rows.append([clients, f"{args.seconds:g}", r["requests"], r["rps"], r["p50_ms"], r["p95_ms"],
                         r["p99_ms"], r["max_ms"], r["errors"] or 0, r["wrong_face_count"],
                         r["server_cpu_ms_per_request"], r["client_cpu_ms_per_request"], r["other_load_pct"]])
            if args.json:
                print(json.dumps(r))
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    print(f"image: {image.name} as a 640x480 JPEG of {len(body)} bytes, "
          f"{'multipart' if args.multipart else 'raw body'}; server args: {args.server_args or '(defaults)'}; "
          f"{os.cpu_count()} cores")
    print(markdown_table(["clients", "s", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors",
                          "answers without exactly 1 face", "server CPU ms/req", "client CPU ms/req",
                          "other load %"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
