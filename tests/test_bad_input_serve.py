"""Hostile and careless input to ``emolens serve`` (issue 25, items 2, 4, 5, 6, 6b, 10, 12).

Fast checks go through FastAPI's TestClient against one shared engine; one bounded test runs
the real server (uvicorn, 127.0.0.1, a free port) in a subprocess and measures its resident
memory (/proc/PID/status VmRSS) before and after floods of uploads and WebSocket sessions.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from starlette.websockets import WebSocketDisconnect
from typer.testing import CliRunner

with warnings.catch_warnings():   # Starlette now prefers the httpx2 fork; httpx works the same here
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient
    from starlette.testclient import WebSocketDenialResponse

from emolens.cli import app as cli_app
from emolens.serve import ServeConfig, create_app
from emolens.serve.engine import MiB
from emolens.serve.security import ApiKeyError, bind_problem, normalize_api_key, read_api_key_file
from test_bad_input_decode import gif_bytes, hdr_bytes, png_bytes

from test_serve import KEY, client_for


def jpeg(width=64, height=48) -> bytes:
    return cv2.imencode(".jpg", np.full((height, width, 3), 90, np.uint8))[1].tobytes()


# -- item 2: one code path decides whether there is a key -----------------------------------------


@pytest.mark.parametrize("blank", ["", " ", "\t", " \n "])
def test_a_blank_key_is_an_error_never_no_key(blank):
    with pytest.raises(ApiKeyError, match="the API key is blank"):
        normalize_api_key(blank)
    with pytest.raises(ApiKeyError, match="blank"):
        ServeConfig(api_key=blank)
    with pytest.raises(ApiKeyError, match="blank"):
        bind_problem("0.0.0.0", blank, False)          # the bind check sees the key the server would use


def test_blank_keys_from_every_source_stop_the_cli(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli_app, ["serve", "--host", "0.0.0.0", "--api-key", " "])
    assert result.exit_code == 2 and "the API key is blank" in result.output
    result = runner.invoke(cli_app, ["serve", "--host", "0.0.0.0"], env={"EMOLENS_API_KEY": " "})
    assert result.exit_code == 2 and "the API key is blank" in result.output
    blank = tmp_path / "key.txt"
    blank.write_text("  \n")
    result = runner.invoke(cli_app, ["serve", "--host", "0.0.0.0", "--api-key-file", str(blank)])
    assert result.exit_code == 2 and "key.txt: the API key is blank" in result.output
    result = runner.invoke(cli_app, ["serve", "--api-key-file", str(tmp_path / "missing.txt")])
    assert result.exit_code == 2 and "missing.txt: cannot read the API key file" in result.output


def test_key_file_and_environment_are_the_documented_way(tmp_path, engine):
    key_file = tmp_path / "key.txt"
    key_file.write_text(f"  {KEY}\n")
    assert read_api_key_file(key_file) == KEY
    assert bind_problem("0.0.0.0", read_api_key_file(key_file), False) is None
    locked = client_for(engine, api_key=f" {KEY} ")                 # the server enforces the stripped key
    assert locked.get("/v1/health").status_code == 401
    assert locked.get("/v1/health", headers={"x-api-key": KEY}).status_code == 200
    two_lines = tmp_path / "two.txt"
    two_lines.write_text("a\nb\n")
    with pytest.raises(ApiKeyError, match="two.txt: the API key file holds 2 lines"):
        read_api_key_file(two_lines)
    runner = CliRunner()
    result = runner.invoke(cli_app, ["serve", "--api-key-file", str(key_file), "--api-key", KEY])
    assert result.exit_code == 2 and "give the API key one way" in result.output
    # --api-key still works, with a note; the missing model stops the command before it serves
    result = runner.invoke(cli_app, ["serve", "--api-key", KEY, "--model", str(tmp_path / "none.onnx")])
    assert "visible to other users of this machine (ps)" in result.output and result.exit_code == 2
    help_text = runner.invoke(cli_app, ["serve", "--help"]).output
    assert "--api-key-file" in help_text and "EMOLENS_API_KEY" in help_text


# -- item 6b: the login redirect of a non-ASCII path ----------------------------------------------


def test_login_redirect_of_a_non_ascii_path(engine):
    browser = client_for(engine, api_key=KEY)
    r = browser.get(f"/%E2%82%AC?api_key={KEY}&x=%C3%A9", headers={"accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/%E2%82%AC?x=%C3%A9"
    r = browser.get(f"/a%20b/%25?api_key={KEY}", headers={"accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/a%20b/%25"


# -- items 4 and 5 through the API -------------------------------------------------------------


def test_strips_and_bombs_through_the_api(engine):
    client = client_for(engine)
    strip = png_bytes(2000, 9)
    assert len(strip) < 200
    r = client.post("/v1/analyze", content=strip, headers={"content-type": "image/png"})
    assert r.status_code == 200 and r.json()["faces"] == []
    for name, data, status, words in [
        ("screen.gif", gif_bytes((65535, 65535), (1, 1)), 413, "65535 x 65535 pixels is more than emolens decodes"),
        ("frame.gif", gif_bytes((10, 10), (65535, 65535)), 413, "GIF frame"),
        ("big.png", png_bytes(20000, 20000, depth=1, rows=10), 413, "20000 x 20000 pixels"),
        ("x.hdr", hdr_bytes(12000, 12000), 422, "Radiance HDR pictures are not read"),
    ]:
        r = client.post("/v1/analyze", files={"file": (name, data, "application/octet-stream")})
        assert r.status_code == status, (name, r.text)
        assert r.json()["detail"].startswith(f"{name}: ") and words in r.json()["detail"]
    small = client_for(engine, max_pixels=10_000)
    r = small.post("/v1/analyze", content=jpeg(200, 100), headers={"content-type": "image/jpeg"})
    assert r.status_code == 413 and "(10000 pixels" in r.json()["detail"]


def test_stream_frames_obey_the_same_limit(engine):
    client = client_for(engine)
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_bytes(gif_bytes((65535, 65535), (1, 1)))
        reply = ws.receive_json()
        assert reply["frame"] == 0 and "is more than emolens decodes" in reply["error"]
        ws.send_bytes(b"")
        assert "empty picture (0 bytes)" in ws.receive_json()["error"]
        ws.send_bytes(jpeg())
        assert ws.receive_json()["faces"] == []


# -- item 6: buffered bytes, multipart parts, idle streams -------------------------------------------


def test_503_when_the_upload_budget_is_full(engine):
    app = create_app(ServeConfig(max_upload_bytes=1 * MiB, max_buffered_bytes=2 * MiB), engine)
    client = TestClient(app)
    budget = app.state.budget
    budget.used = budget.limit - 100                    # other uploads in flight
    try:
        r = client.post("/v1/analyze", content=jpeg(), headers={"content-type": "image/jpeg"})
    finally:
        budget.used = 0
    assert r.status_code == 503 and r.headers["retry-after"] == "1" and "uploads are already in memory" in r.text
    r = client.post("/v1/analyze", content=jpeg(), headers={"content-type": "image/jpeg"})
    assert r.status_code == 200 and budget.used == 0   # given back after the answer
    with pytest.raises(ValueError, match="max_buffered_bytes must be at least one upload"):
        ServeConfig(max_upload_bytes=4 * MiB, max_buffered_bytes=1 * MiB)
    assert ServeConfig(max_upload_bytes=100 * MiB).max_buffered_bytes >= 400 * MiB


def test_many_part_bodies_are_cut_short(engine):
    client = client_for(engine)
    boundary = "b0undary"
    parts = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\nx\r\n' for i in range(50_000))
    body = (parts + f"--{boundary}--\r\n").encode()
    t0 = time.perf_counter()
    r = client.post("/v1/analyze", content=body, headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    took = time.perf_counter() - t0
    assert r.status_code == 422 and "more than 16 parts" in r.json()["detail"]
    assert took < 1.0, f"{took:.2f} s"
    headers = "".join(f"X-H{i}: {'v' * 1000}\r\n" for i in range(20))
    body = f'--{boundary}\r\nContent-Disposition: form-data; name="file"\r\n{headers}\r\nx\r\n--{boundary}--\r\n'
    r = client.post("/v1/analyze", content=body.encode(),
                    headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 422 and "Maximum header count exceeded" in r.json()["detail"]


def test_idle_streams_are_closed_with_a_reason(engine):
    client = client_for(engine, ws_idle_seconds=0.3)
    with pytest.raises(WebSocketDisconnect) as info:
        with client.websocket_connect("/v1/stream") as ws:
            ws.receive_json()
    assert info.value.code == 4408 and "no frame for 0.3 s" in info.value.reason
    assert engine.streams == 0                          # the slot is free again


# -- item 10: WebSocket query values are 422 naming the parameter, not 403 --------------------------


@pytest.mark.parametrize("query, words", [
    ("half_life=inf", "half_life must be a finite number from 0 to 60 (seconds; 0: no smoothing), got 'inf'"),
    ("half_life=nan", "half_life must be a finite number"),
    ("detect_every=0", "detect_every must be an integer from 1 to 1000"),
    ("detect_every=abc", "detect_every must be an integer"),
    ("max_missed=-1", "max_missed must be an integer from 0 to 100000"),
    ("align=maybe", "align must be true or false, got 'maybe'"),
    ("detector=nope", "detector must be one of"),
    ("same_person=0.05", "same_person must be a finite number from 0.2 to 1"),
])
def test_bad_stream_options_are_422_naming_the_parameter(engine, query, words):
    client = client_for(engine)
    with pytest.raises(WebSocketDenialResponse) as denied:
        with client.websocket_connect(f"/v1/stream?{query}") as ws:
            ws.receive_json()
    assert denied.value.status_code == 422
    assert words in denied.value.json()["detail"]


def test_good_stream_options_still_work(engine):
    client = client_for(engine)
    with client.websocket_connect("/v1/stream?detector=dlib+haar&align=false&half_life=0&detect_every=1&same_person=0.45") as ws:
        ws.send_bytes(jpeg())
        assert ws.receive_json()["faces"] == []
    from emolens.people.persons import SAME_PERSON
    from emolens.serve.app import stream_options

    chosen, default = stream_options({"same_person": "0.45"}), stream_options({})
    assert (chosen["same_person"], default["same_person"]) == (0.45, SAME_PERSON)
    tracking = {k: v for k, v in chosen.items() if k not in ("detector", "align")}
    assert engine.tracker(**tracking).persons.threshold == 0.45     # reaches the stream's tracker


# -- the real server, bounded: RSS before and after --------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vm_rss_mb(pid: int) -> float:
    return int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1)) / 1024


def raw_request(port: int, head: str, body: bytes = b"", timeout: float = 10) -> tuple[int, str]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head.encode() + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, data.decode("latin-1")


@pytest.mark.timeout(120)
def test_real_server_memory_stays_bounded(tmp_path):
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect

    port = free_port()
    log = tmp_path / "serve.log"
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("emolens")), "serve", "--port", str(port), "--max-upload-mb", "1",
         "--max-buffered-mb", "4", "--max-streams", "2", "--ws-idle-seconds", "1.5", "--workers-threads", "1"],
        stdout=subprocess.DEVNULL, stderr=log.open("w"))
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{base}/v1/health", timeout=1)
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, log.read_text()
                time.sleep(0.1)
        frame = jpeg(320, 240)
        for _ in range(10):                                  # warm up: first sessions allocate pools
            with connect(f"ws://127.0.0.1:{port}/v1/stream") as ws:
                ws.send(frame)
                ws.recv()
        start = vm_rss_mb(server.pid)

        # (6) 30 near-limit uploads at once, each holding its connection: the budget takes 3, the rest get 503
        body = b"\xff\xd8" + b"\0" * (1000 * 1000)
        head = f"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: {len(body)}\r\n\r\n"
        held, statuses = [], []
        for _ in range(30):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(head.encode() + body[:500_000])        # half the body, then hold
            held.append(s)
        time.sleep(0.5)
        during = vm_rss_mb(server.pid)
        for s in held:
            s.sendall(body[500_000:])
            statuses.append(int(s.recv(65536).split(b" ", 2)[1]))
            s.close()
        assert statuses.count(503) >= 25 and set(statuses) <= {422, 503}, statuses
        assert during - start < 40, f"{during - start:.0f} MB while uploads were held"

        # (4, 5) strips and bombs: answered without the memory they once took
        for data, status in [(png_bytes(2000, 9), 200), (gif_bytes((65535, 65535), (1, 1)), 413),
                             (png_bytes(40000, 40000, depth=1, rows=100), 413), (hdr_bytes(12000, 12000), 422)]:
            got, _ = raw_request(port, f"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                                       f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n", data)
            assert got == status, (got, data[:12])

        # (6) a many-part body while /v1/health must answer at once
        parts = "".join(f'--b\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\nx\r\n' for i in range(20_000))
        many = (parts + "--b--\r\n").encode()[:1_000_000]
        answer = {}
        t = threading.Thread(target=lambda: answer.setdefault("many", raw_request(
            port, f"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                  f"Content-Length: {len(many)}\r\nConnection: close\r\n\r\n", many)))
        t.start()
        t0 = time.perf_counter()
        urllib.request.urlopen(f"{base}/v1/health", timeout=5)
        health_took = time.perf_counter() - t0
        t.join(10)
        assert answer["many"][0] == 422 and health_took < 0.5, (answer, health_took)

        # (12) a client that leaves mid-upload
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall("POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                      "Content-Length: 100000\r\n\r\n".encode() + b"\xff\xd8" + b"\0" * 100)
        time.sleep(0.3)

        # (10) a bad stream option: HTTP 422 with the reason, not 403
        with pytest.raises(InvalidStatus) as info:
            connect(f"ws://127.0.0.1:{port}/v1/stream?half_life=inf")
        assert info.value.response.status_code == 422 and b"half_life must be" in info.value.response.body

        # (6) idle streams: two slots held by silent clients, a third is refused, then the idle ones close
        with contextlib.ExitStack() as stack:
            idle = [stack.enter_context(connect(f"ws://127.0.0.1:{port}/v1/stream")) for _ in range(2)]
            third = stack.enter_context(connect(f"ws://127.0.0.1:{port}/v1/stream"))
            with pytest.raises(ConnectionClosed) as info:
                third.recv(timeout=5)
            assert info.value.rcvd.code == 1013
            for ws in idle:
                with pytest.raises(ConnectionClosed) as info:
                    ws.recv(timeout=5)
                assert info.value.rcvd.code == 4408 and "no frame for 1.5 s" in info.value.rcvd.reason
        time.sleep(0.2)

        # (6) many sessions: no per-session growth
        before = vm_rss_mb(server.pid)
        for _ in range(300):
            with connect(f"ws://127.0.0.1:{port}/v1/stream") as ws:
                ws.send(frame)
                assert json.loads(ws.recv())["faces"] == []
        after = vm_rss_mb(server.pid)
        print(f"server RSS: {start:.0f} MB at start, +{during - start:.0f} while 30 uploads were held "
              f"({statuses.count(503)} got 503), +{after - before:.1f} over 300 sessions, +{after - start:.0f} in all")
        assert after - before < 20, f"{after - before:.0f} MB over 300 sessions"
        assert after - start < 60, f"{after - start:.0f} MB over the whole test"
        # the last session's close reaches the server a moment after the client returns: wait for it (bounded)
        deadline = time.monotonic() + 5
        while True:
            health = json.loads(urllib.request.urlopen(f"{base}/v1/health", timeout=5).read())
            if (health["streams"], health["pending"]) == (0, 0) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert health["streams"] == 0 and health["pending"] == 0, health
    finally:
        server.terminate()
        server.wait(10)
    text = log.read_text()
    assert "Traceback" not in text and "Exception in ASGI" not in text, text[-3000:]
    assert "client went away during the upload" in text
