"""emolens serve: the HTTP API, its errors and limits, the WebSocket stream, the API key, the docs.

One ``Engine`` (conftest.py's ``engine`` fixture: the shipped model, landmarks, BlazeFace) is loaded for the whole
file; each test builds a light app around it with the settings it needs and talks to it
through FastAPI's ``TestClient``. Real faces: the bundled example photo (``make demo``'s),
photos-dev when present, and video frames made from the example photo
(``emolens.testing.clips``).
"""

from __future__ import annotations

import re
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from starlette.websockets import WebSocketDisconnect  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

with warnings.catch_warnings():   # Starlette now prefers the httpx2 fork; httpx works the same here
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402
    from starlette.testclient import WebSocketDenialResponse  # noqa: E402

from emolens.cli import app as cli_app  # noqa: E402
from emolens.emotions import EMOTIONS  # noqa: E402
from emolens.predict import predict_files  # noqa: E402
from emolens.serve import ServeConfig, create_app  # noqa: E402
from emolens.serve.security import bind_problem, is_loopback  # noqa: E402
from emolens.testing import clips  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "astronaut.jpg"
KEY = "test-key-5c1f"


def client_for(engine, **settings) -> TestClient:
    return TestClient(create_app(ServeConfig(**settings), engine))


@pytest.fixture(scope="module")
def client(engine):
    return client_for(engine)


@pytest.fixture(scope="module")
def example_bytes() -> bytes:
    return EXAMPLE.read_bytes()


def face_frames(n: int, seed: int = 0) -> list[bytes]:
    """JPEG frames (640x480) of the example photo's face, still with camera-like jitter and noise."""
    photo = cv2.imread(str(EXAMPLE))
    face = photo[40:230, 120:310]                    # the astronaut's head with some margin
    actors = clips.steady_face(face, (640, 480))
    base = clips.background((640, 480), seed)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        frame = clips.render(base, actors, i / 15, rng, jitter=2.0, noise=3.0)
        out.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
    return out


# -- POST /v1/analyze ------------------------------------------------------------------------


def test_analyze_raw_body_is_the_predict_json(client, engine, example_bytes):
    r = client.post("/v1/analyze", content=example_bytes, headers={"content-type": "image/jpeg"})
    assert r.status_code == 200, r.text
    body = r.json()
    expected = next(predict_files(engine.base, [str(EXAMPLE)])).to_dict()   # what `emolens predict --json` prints
    assert set(body) == {"file", "faces", "error"}
    assert body["file"] == "upload" and body["error"] is None
    assert body["faces"] == expected["faces"]
    assert len(body["faces"]) == 1
    face = body["faces"][0]
    assert face["emotion"] in EMOTIONS and set(face["scores"]) == set(EMOTIONS)
    assert abs(sum(face["scores"].values()) - 1) < 1e-3
    assert len(face["landmarks"]) == 68 and face["aligned"] is True


def test_analyze_multipart_upload(client, example_bytes):
    r = client.post("/v1/analyze", files={"file": ("astronaut.jpg", example_bytes, "image/jpeg")})
    assert r.status_code == 200, r.text
    assert r.json()["file"] == "astronaut.jpg"
    assert len(r.json()["faces"]) == 1
    # a browser's FormData blob without a type, and a path-like file name
    r = client.post("/v1/analyze", files={"file": ("C:\\photos\\me.jpg", example_bytes, "application/octet-stream")})
    assert r.status_code == 200 and r.json()["file"] == "me.jpg"


def test_analyze_photos_dev(client, photos_dev):
    paths = clips.photo_paths(photos_dev)[:4]
    for path in paths:
        r = client.post("/v1/analyze", files={"file": (path.name, path.read_bytes(), "image/jpeg")})
        assert r.status_code == 200, r.text
        assert r.json()["file"] == path.name
        assert len(r.json()["faces"]) >= 1, path


def test_analyze_query_options(client, example_bytes):
    r = client.post("/v1/analyze?detector=dlib&align=false", content=example_bytes,
                    headers={"content-type": "image/jpeg"})
    assert r.status_code == 200, r.text
    faces = r.json()["faces"]
    assert faces and all(f["aligned"] is False for f in faces)
    r = client.post("/v1/analyze?detector=nope", content=example_bytes, headers={"content-type": "image/jpeg"})
    assert r.status_code == 422
    # An unencoded "+" arrives as a space; "dlib+haar" still means the combined detector.
    r = client.post("/v1/analyze?detector=dlib+haar", content=example_bytes, headers={"content-type": "image/jpeg"})
    assert r.status_code == 200, r.text


def test_option_variants_equal_a_fresh_recognizer(engine, example_bytes):
    """The engine's light copies (shared models, own detector) analyse as a Recognizer built from scratch."""
    from emolens.recognize import Recognizer

    image = cv2.imread(str(EXAMPLE))
    fresh = Recognizer(detector="dlib", align=False, model=engine.model)
    mine = engine.recognizer("dlib", align=False)
    assert [f.to_dict() for f in mine.analyze(image)] == [f.to_dict() for f in fresh.analyze(image)]
    assert mine.detector is not engine.base.detector and mine.landmarker is engine.base.landmarker


def test_413_upload_too_large(engine, example_bytes):
    small = client_for(engine, max_upload_bytes=20_000)
    r = small.post("/v1/analyze", content=example_bytes, headers={"content-type": "image/jpeg"})
    assert r.status_code == 413 and "20000 bytes" in r.json()["detail"]
    r = small.post("/v1/analyze", files={"file": ("a.jpg", example_bytes, "image/jpeg")})
    assert r.status_code == 413

    def chunks():                                    # no Content-Length: counted while reading
        for i in range(0, len(example_bytes), 8192):
            yield example_bytes[i:i + 8192]

    r = small.post("/v1/analyze", content=chunks(), headers={"content-type": "image/jpeg"})
    assert r.status_code == 413
    few_pixels = client_for(engine, max_pixels=100 * 100)
    r = few_pixels.post("/v1/analyze", content=example_bytes, headers={"content-type": "image/jpeg"})
    assert r.status_code == 413 and "pixels" in r.json()["detail"]


def test_415_wrong_content_type(client, example_bytes):
    for headers in ({"content-type": "text/plain"}, {"content-type": "application/json"}, {}):
        r = client.post("/v1/analyze", content=example_bytes, headers=headers)
        assert r.status_code == 415, headers
        assert "multipart/form-data" in r.json()["detail"]
    r = client.post("/v1/analyze", files={"file": ("notes.txt", b"hello", "text/plain")})
    assert r.status_code == 415


def test_422_undecodable(client, example_bytes):
    cases = [b"", b"not a picture at all", example_bytes[: len(example_bytes) // 2], b"\x89PNG\r\n\x1a\n" + b"\0" * 50]
    for data in cases:
        r = client.post("/v1/analyze", content=data, headers={"content-type": "image/jpeg"})
        assert r.status_code == 422, data[:20]
        assert r.json()["detail"].startswith("upload:")
    r = client.post("/v1/analyze", files={"file": ("x.jpg", b"garbage", "image/jpeg")})
    assert r.status_code == 422 and r.json()["detail"].startswith("x.jpg:")
    r = client.post("/v1/analyze", data={"other": "field"}, files={"notes": (None, b"x")})
    assert r.status_code == 422 and "field named 'file'" in r.json()["detail"]
    r = client.post("/v1/analyze", content=b"--x\r\n", headers={"content-type": "multipart/form-data"})
    assert r.status_code == 422


def test_uploads_are_never_written_to_disk(client, monkeypatch):
    """A 3 MB multipart upload goes through without any temporary file (Starlette would spool it)."""
    def no_disk(*args, **kwargs):
        raise AssertionError("an upload was about to be written to a temporary file")

    for name in ("SpooledTemporaryFile", "NamedTemporaryFile", "TemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, no_disk)
    rng = np.random.default_rng(0)
    big = cv2.imencode(".png", rng.integers(0, 255, (1000, 1000, 3), dtype=np.uint8))[1].tobytes()
    assert len(big) > 2_000_000
    r = client.post("/v1/analyze", files={"file": ("noise.png", big, "image/png")})
    assert r.status_code == 200, r.text
    assert r.json()["faces"] == []


def test_503_when_too_many_analyses_wait(engine, example_bytes):
    busy = client_for(engine, max_pending=1)
    engine.pending += 1
    try:
        r = busy.post("/v1/analyze", content=example_bytes, headers={"content-type": "image/jpeg"})
    finally:
        engine.pending -= 1
    assert r.status_code == 503 and r.headers["retry-after"] == "1"


def test_health_answers_while_the_workers_are_busy(client, engine):
    blockers = [engine.executor.submit(time.sleep, 1.5) for _ in range(engine.config.workers)]
    t0 = time.perf_counter()
    r = client.get("/v1/health")
    took = time.perf_counter() - t0
    for b in blockers:
        b.result()
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert took < 1.0, f"health took {took:.2f} s while the workers were busy"


def test_model_card(client, engine):
    r = client.get("/v1/model")
    assert r.status_code == 200
    assert r.json() == engine.model.card
    assert r.json()["labels"] == list(EMOTIONS)


# -- docs and page: local assets only --------------------------------------------------------

URL = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


def test_docs_and_page_load_nothing_from_the_internet(client):
    for page in ("/docs", "/"):
        r = client.get(page)
        assert r.status_code == 200
        assert not re.search(r"https?://", r.text), f"{page} refers to an outside URL"
        for ref in URL.findall(r.text):
            if ref.startswith("data:"):
                continue
            target = ref if ref.startswith("/") else "/" + ref
            assert client.get(target).status_code == 200, f"{page} loads {ref}, which is not served"
    for asset in ("/static/app.js", "/static/style.css"):
        assert not re.search(r"https?://", client.get(asset).text), asset
    assert "SwaggerUIBundle" in client.get("/docs-assets/swagger-ui-bundle.js").text
    spec = client.get("/openapi.json").json()
    content = spec["paths"]["/v1/analyze"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "image/jpeg", "application/octet-stream"} <= set(content)
    assert {"413", "415", "422"} <= set(spec["paths"]["/v1/analyze"]["post"]["responses"])


# -- API key ---------------------------------------------------------------------------------


def test_api_key_is_required_everywhere(engine, example_bytes):
    locked = client_for(engine, api_key=KEY)
    for path in ("/v1/health", "/v1/model", "/", "/static/app.js", "/docs", "/openapi.json", "/docs-assets/swagger-ui.css"):
        r = locked.get(path)
        assert r.status_code == 401, path
        assert locked.get(path, headers={"x-api-key": "wrong"}).status_code == 403, path
        assert locked.get(path, headers={"x-api-key": KEY}).status_code == 200, path
    r = locked.post("/v1/analyze", content=example_bytes, headers={"content-type": "image/jpeg"})
    assert r.status_code == 401 and "X-API-Key" in r.json()["detail"]
    r = locked.post("/v1/analyze", content=example_bytes,
                    headers={"content-type": "image/jpeg", "authorization": "Bearer nope"})
    assert r.status_code == 403
    r = locked.post("/v1/analyze", content=example_bytes,
                    headers={"content-type": "image/jpeg", "authorization": f"Bearer {KEY}"})
    assert r.status_code == 200 and len(r.json()["faces"]) == 1
    assert locked.get(f"/v1/health?api_key={KEY}").status_code == 200


def test_browser_login_sets_a_cookie(engine):
    browser = client_for(engine, api_key=KEY)
    r = browser.get("/", headers={"accept": "text/html"})
    assert r.status_code == 401 and "<form" in r.text          # a page asking for the key
    r = browser.get(f"/?api_key={KEY}", headers={"accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and KEY not in cookie
    assert browser.get("/v1/health").status_code == 200          # the client kept the cookie
    with browser.websocket_connect("/v1/stream") as ws:
        ws.send_bytes(face_frames(1)[0])
        assert "faces" in ws.receive_json()


def test_websocket_needs_the_key(engine):
    locked = client_for(engine, api_key=KEY)
    with pytest.raises(WebSocketDisconnect) as info:
        with locked.websocket_connect("/v1/stream") as ws:
            ws.receive_json()
    assert info.value.code == 1008
    with locked.websocket_connect("/v1/stream", headers={"x-api-key": KEY}) as ws:
        ws.send_bytes(face_frames(1)[0])
        assert len(ws.receive_json()["faces"]) == 1


def test_bind_refuses_non_loopback_without_key():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("127.8.0.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")
    assert bind_problem("127.0.0.1", None, False) is None
    assert bind_problem("0.0.0.0", KEY, False) is None
    assert bind_problem("0.0.0.0", None, True) is None
    assert "--api-key" in bind_problem("0.0.0.0", None, False)
    runner = CliRunner()
    for host in ("0.0.0.0", "::", "10.1.2.3"):
        result = runner.invoke(cli_app, ["serve", "--host", host], env={"EMOLENS_API_KEY": ""})
        assert result.exit_code == 2, result.output
        assert "refusing to listen" in result.output and "--insecure" in result.output
    result = runner.invoke(cli_app, ["serve", "--help"])
    assert result.exit_code == 0 and "--api-key" in result.output and "EMOLENS_API_KEY" in result.output


# -- WS /v1/stream ---------------------------------------------------------------------------


def test_stream_tracks_and_smooths_a_real_face(client):
    frames = face_frames(8)
    replies = []
    with client.websocket_connect("/v1/stream?detect_every=4&half_life=0.5") as ws:
        for data in frames:
            ws.send_bytes(data)
            replies.append(ws.receive_json())
    assert [r["frame"] for r in replies] == list(range(8))
    assert all(len(r["faces"]) == 1 for r in replies), [len(r["faces"]) for r in replies]
    assert all(r["dropped"] == 0 and r["width"] == 640 and r["height"] == 480 for r in replies)
    faces = [r["faces"][0] for r in replies]
    assert {f["track_id"] for f in faces} == {1}
    assert [f["detected"] for f in faces] == [True, False, False, False, True, False, False, False]
    first = faces[0]
    assert first["scores"] == first["raw"]["scores"]             # nothing to smooth with yet
    later = faces[1:]
    assert any(f["scores"] != f["raw"]["scores"] for f in later)
    for f in later:                                              # smoothed values lie between old and new
        assert abs(sum(f["scores"].values()) - 1) < 1e-3
        assert f["emotion"] == max(f["scores"], key=f["scores"].get)
    times = [r["time"] for r in replies]
    assert times == sorted(times)


def test_stream_latest_frame_wins(client):
    frames = face_frames(3)
    n = 12
    with client.websocket_connect("/v1/stream") as ws:
        for i in range(n):
            ws.send_bytes(frames[i % 3])
        replies = []
        while not replies or replies[-1]["frame"] != n - 1:
            replies.append(ws.receive_json())
    assert len(replies) < n
    assert len(replies) + sum(r["dropped"] for r in replies) == n
    assert [r["frame"] for r in replies] == sorted(r["frame"] for r in replies)


def test_stream_bad_frames_and_text(client):
    good = face_frames(1)[0]
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_bytes(b"definitely not a jpeg")
        bad = ws.receive_json()
        assert bad["frame"] == 0 and "not a picture" in bad["error"]
        ws.send_text("hello")
        assert "binary" in ws.receive_json()["error"]
        ws.send_bytes(good)
        ok = ws.receive_json()
        assert ok["frame"] == 1 and len(ok["faces"]) == 1


def test_stream_message_size_limit(engine):
    small = client_for(engine, ws_max_bytes=10_000)
    with pytest.raises(WebSocketDisconnect) as info:
        with small.websocket_connect("/v1/stream") as ws:
            ws.send_bytes(b"\xff" * 20_000)
            ws.receive_json()
    assert info.value.code == 1009


def test_stream_refuses_other_origins_bad_options_and_too_many_streams(engine, client):
    with pytest.raises(WebSocketDisconnect) as info:
        with client.websocket_connect("/v1/stream", headers={"origin": "http://evil.example"}) as ws:
            ws.receive_json()
    assert info.value.code == 1008
    with client.websocket_connect("/v1/stream", headers={"origin": "http://testserver"}) as ws:
        ws.send_bytes(face_frames(1)[0])
        assert "faces" in ws.receive_json()
    with pytest.raises(WebSocketDenialResponse) as denied:   # a bad option is 422 naming it, not 403
        with client.websocket_connect("/v1/stream?detect_every=0") as ws:
            ws.receive_json()
    assert denied.value.status_code == 422
    assert denied.value.json()["detail"] == "detect_every must be an integer from 1 to 1000 (analysed frames), got '0'"
    one = client_for(engine, max_streams=1)
    with one.websocket_connect("/v1/stream") as first:
        first.send_bytes(face_frames(1)[0])
        first.receive_json()
        with pytest.raises(WebSocketDisconnect) as info:
            with one.websocket_connect("/v1/stream") as second:
                second.receive_json()
        assert info.value.code == 1013


def hopper_path() -> Path:
    """Grace Hopper's portrait that matplotlib ships (public domain), a second real face."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


# Three shots, as tests/test_people_cli.py's clip: the astronaut, Grace Hopper, the astronaut again.
SHOTS = [("astronaut", 1, [(0, 300, 240, 220), (1.5, 330, 240, 230)]),
         ("hopper", 2, [(0, 330, 250, 240), (1.5, 310, 245, 240)]),
         ("astronaut", 3, [(0, 250, 230, 200), (1.5, 260, 230, 210)])]


@pytest.fixture(scope="module")
def cut_stream(client):
    """The three shots sent through one WebSocket at 20 frames per shot-second: (JPEGs, replies, shot of each).

    A shot goes on until 0.6 s of stream time have passed since its first frame (the shot
    detector ignores a cut less than 0.4 s after the last), holding its last frame when the
    server analyses faster than 20 frames/s: the wait is on the replies' times, not a sleep.
    """
    photos = {"astronaut": cv2.imread(str(EXAMPLE))[40:300, 110:330],
              "hopper": cv2.imread(str(hopper_path()))[80:460, 80:440]}
    jpegs, replies, truth = [], [], []
    with client.websocket_connect("/v1/stream") as ws:
        for k, (who, seed, keys) in enumerate(SHOTS):
            actors = [clips.Actor(photos[who], keys)]
            base = clips.background((640, 480), seed)
            start = None
            for i in range(400):
                frame = clips.render(base, actors, min(i / 20, 1.45))
                data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
                ws.send_bytes(data)
                reply = ws.receive_json()
                jpegs.append(data)
                replies.append(reply)
                truth.append(k)
                start = reply["time"] if start is None else start
                if i >= 10 and reply["time"] - start >= 0.6:
                    break
    return jpegs, replies, truth


def test_stream_cuts_end_tracks_and_persons_come_back(cut_stream):
    _, replies, truth = cut_stream
    assert all(not r.get("error") for r in replies)
    assert [r["shot"] for r in replies] == truth, "a shot per scene, starting at the cut"
    cuts = [i for i, r in enumerate(replies) if r["cut"]]
    assert cuts == [truth.index(1), truth.index(2)]
    assert sum(len(r["faces"]) == 1 for r in replies) >= len(replies) - 2
    tracks, persons = {}, {}
    for r in replies:
        for f in r["faces"]:
            assert f["shot"] == r["shot"]
            assert set(f["pose"]) == {"yaw", "pitch", "roll"} and isinstance(f["frontal"], bool)
            tracks.setdefault(f["track_id"], set()).add(r["shot"])
            persons.setdefault(r["shot"], set()).add(f["person"])
    assert all(len(shots) == 1 for shots in tracks.values()), f"a track crosses a cut: {tracks}"
    assert len(tracks) == 3, "a new track in every shot"
    assert persons == {0: {1}, 1: {2}, 2: {1}}, "Grace Hopper is a new person; the astronaut is person 1 again"
    first = [f for r in replies if r["shot"] == 1 for f in r["faces"]][0]
    assert first["scores"] == first["raw"]["scores"], "smoothing restarts after the cut"


def test_stream_tracker_is_the_cli_tracker(cut_stream, engine):
    """The same frames at the same times through ``emolens video``'s tracker give the same answers."""
    from emolens.recognize import Recognizer
    from emolens.video import FaceTracker, Frame

    jpegs, replies, _ = cut_stream
    tracker = FaceTracker(Recognizer())               # the CLI's defaults: shots "hash", persons on
    for data, reply in zip(jpegs, replies):
        image, _ = engine.decode(data)
        local = tracker.process(Frame(reply["frame"], reply["time"], image, reply["dropped"])).to_dict()
        assert (local["shot"], bool(local.get("cut", reply["cut"]))) == (reply["shot"], reply["cut"])
        key = ("track_id", "person", "shot", "box", "emotion", "frontal")
        assert [[f[k] for k in key] for f in local["faces"]] == [[f[k] for k in key] for f in reply["faces"]]
        for mine, theirs in zip(local["faces"], reply["faces"]):
            assert mine["scores"] == pytest.approx(theirs["scores"], abs=1e-4)


def test_stream_shot_and_person_options(client):
    frame = face_frames(1)[0]
    with client.websocket_connect("/v1/stream?shots=off&persons=false") as ws:
        ws.send_bytes(frame)
        reply = ws.receive_json()
    assert reply["shot"] == 0 and reply["cut"] is False
    assert [f["person"] for f in reply["faces"]] == [None]
    for query, detail in (("shots=magic", "shots must be one of hash, content, histogram, off, got 'magic'"),
                          ("persons=maybe", "persons must be true or false, got 'maybe'")):
        with pytest.raises(WebSocketDenialResponse) as denied:
            with client.websocket_connect(f"/v1/stream?{query}") as ws:
                ws.receive_json()
        assert denied.value.status_code == 422 and denied.value.json()["detail"] == detail


# -- fuzzing (short; the long run is in BENCHMARKS.md) -----------------------------------------


def test_schema_fuzzing_finds_no_server_error(engine):
    """Schemathesis cases for every documented operation (valid and invalid data): never a 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error

    app = create_app(ServeConfig(), engine)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.generation.update(modes=list(schemathesis.GenerationMode))

    @given(case=schema.as_strategy())
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None,
              derandomize=True)
    def fuzz(case):
        case.call_and_validate(checks=[not_a_server_error])

    fuzz()
    assert TestClient(app).get("/v1/health").status_code == 200
