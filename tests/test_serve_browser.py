"""emolens serve in a real browser: headless Chromium (Debian's chromium + chromium-driver) via Selenium.

The real server (uvicorn, in a thread, on a free loopback port) serves the page; Chromium
resolves no host but 127.0.0.1, so the page and /docs are shown to work offline. Tests:
upload a real photo and see a face with its emotion; score panels that cover no face and
no other panel (three and four real faces side by side, at desktop and phone size, checked
on the canvas's drawing calls); the page at a 390x844 phone viewport (no sideways scroll,
controls in view); the camera path with Chromium's fake camera fed from y4m clips of real
faces (``emolens.testing.clips``): camera frames analysed per second with dropped frames
apart, and persons and cuts on a clip of three shots of two people; the API docs render
from local files. Real faces: examples/astronaut.jpg and matplotlib's grace_hopper.jpg
(both public domain).

Chromium and its driver are installed with apt-get when missing (root, Debian); the tests
skip, saying why, where that cannot be done.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import json
import urllib.request

import cv2
import numpy as np
import pytest

from emolens.emotions import EMOTIONS
from emolens.testing import clips

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "astronaut.jpg"
PHONE = (390, 844)           # CSS pixels (a current phone), device pixel ratio 3
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def _install_chromium() -> str | None:
    """Install Debian's chromium and chromium-driver when missing; why not, when it cannot."""
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return None
    if not shutil.which("apt-get"):
        return "Chromium is not installed and there is no apt-get to install it (needs Debian's chromium, chromium-driver)"
    if os.geteuid() != 0:
        return "Chromium is not installed and installing it needs root: apt-get install chromium chromium-driver"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        done = subprocess.run(["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"], env=env,
                              capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"installing Chromium failed: {exc}"
    if done.returncode != 0 or not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        return f"apt-get install chromium chromium-driver failed: {done.stderr.strip()[-300:]}"
    return None


@pytest.fixture(scope="module")
def chromium():
    problem = _install_chromium()
    if problem:
        pytest.skip(problem)
    return CHROMIUM


@pytest.fixture(scope="module")
def server(chromium):
    import uvicorn

    from emolens.serve import ServeConfig, create_app

    config = ServeConfig(workers=2)
    threads = cv2.getNumThreads()
    app = create_app(config)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                        ws_max_size=config.ws_max_bytes))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)
    app.state.engine.close()
    cv2.setNumThreads(threads)           # the engine pins OpenCV's threads process-wide


def write_y4m(path: Path, frames: list[np.ndarray], fps: int) -> Path:
    """A YUV4MPEG2 file (4:2:0 planes), the format Chromium's fake camera reads."""
    h, w = frames[0].shape[:2]
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


CAMERA_FPS = 10


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory) -> Path:
    """Two seconds of the example photo's face, held still with camera-like jitter, 640x480 at 10 fps."""
    photo = cv2.imread(str(EXAMPLE))
    actors = clips.steady_face(photo[40:230, 120:310], (640, 480))
    base = clips.background((640, 480), 1)
    rng = np.random.default_rng(1)
    frames = [clips.render(base, actors, i / CAMERA_FPS, rng, jitter=2.0, noise=3.0) for i in range(2 * CAMERA_FPS)]
    return write_y4m(tmp_path_factory.mktemp("camera") / "clip.y4m", frames, CAMERA_FPS)


def hopper_photo() -> np.ndarray:
    import matplotlib

    return cv2.imread(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"))


@pytest.fixture(scope="module")
def cut_clip(tmp_path_factory) -> Path:
    """Three 1.5-s shots at 10 fps: the astronaut, Grace Hopper, the astronaut again (other background
    and framing). The fake camera loops it, so the shots go on: A H A A H A ..."""
    astronaut = cv2.imread(str(EXAMPLE))[40:300, 110:330]
    hopper = hopper_photo()[80:460, 80:440]
    shots = [(astronaut, 1, [(0, 300, 240, 220), (1.5, 330, 240, 230)]),
             (hopper, 2, [(0, 330, 250, 240), (1.5, 310, 245, 240)]),
             (astronaut, 3, [(0, 250, 230, 200), (1.5, 260, 230, 210)])]
    frames = []
    for photo, seed, keys in shots:
        base, actors = clips.background((640, 480), seed), [clips.Actor(photo, keys)]
        frames += [clips.render(base, actors, i / CAMERA_FPS) for i in range(int(1.5 * CAMERA_FPS))]
    return write_y4m(tmp_path_factory.mktemp("camera") / "cuts.y4m", frames, CAMERA_FPS)


@pytest.fixture(scope="module")
def group_photos(tmp_path_factory) -> dict[str, Path]:
    """Real faces side by side: three with room below them (640x480), four packed in a 640x200 strip."""
    folder = tmp_path_factory.mktemp("groups")
    astronaut = cv2.imread(str(EXAMPLE))[32:218, 131:317]
    hopper = hopper_photo()[51:417, 85:451]
    people = [astronaut, hopper, astronaut[:, ::-1].copy(), hopper[:, ::-1].copy()]
    three = [clips.Actor(p, [(0, 110 + 210 * i, 170, 190), (1, 110 + 210 * i, 170, 190)])
             for i, p in enumerate(people[:3])]
    four = [clips.Actor(p, [(0, 80 + 160 * i, 105, 150), (1, 80 + 160 * i, 105, 150)]) for i, p in enumerate(people)]
    out = {"three": folder / "three.png", "four": folder / "four.png"}
    cv2.imwrite(str(out["three"]), clips.render(clips.background((640, 480), 4), three, 0))
    cv2.imwrite(str(out["four"]), clips.render(clips.background((640, 200), 5), four, 0))
    return out


# Recorded drawing calls: fillRect and strokeRect on the photo canvas, the texts written on the
# camera overlay (installed before the page's own script runs).
RECORD_DRAWING = """
window.__draws = []; window.__overlayTexts = new Set();
const proto = CanvasRenderingContext2D.prototype;
for (const name of ["fillRect", "strokeRect"]) {
  const original = proto[name];
  proto[name] = function (x, y, w, h) {
    if (this.canvas.id === "photo-canvas") window.__draws.push([name, x, y, w, h]);
    return original.call(this, x, y, w, h);
  };
}
const fillText = proto.fillText;
proto.fillText = function (text, ...rest) {
  if (this.canvas.id === "overlay") window.__overlayTexts.add(String(text));
  return fillText.call(this, text, ...rest);
};
"""


def make_driver(*extra: str, phone: bool = False):
    """Headless Chromium, offline, at 1280x1000 or as a 390x844 phone (device pixel ratio 3)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--no-first-run", "--disable-extensions",
                # offline: every host name but the loopback fails to resolve
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", *extra):
        options.add_argument(arg)
    if phone:   # headless windows are at least 500 px wide: the phone's viewport is emulated
        options.add_experimental_option("mobileEmulation", {"deviceMetrics": {
            "width": PHONE[0], "height": PHONE[1], "pixelRatio": 3.0, "touch": True}})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_DRAWING})
    return driver


def wait_for(driver, condition, timeout: float = 60.0, what: str = "condition"):
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)
    except Exception:
        logs = "\n".join(str(e) for e in driver.get_log("browser"))
        status = driver.execute_script("return [document.getElementById('photo-status')?.textContent, "
                                       "document.getElementById('camera-status')?.textContent]")
        pytest.fail(f"timed out waiting for {what}; page status {status}; browser log:\n{logs}")


def severe(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_upload_a_photo_and_see_the_result(server):
    from selenium.webdriver.common.by import By

    driver = make_driver()
    try:
        driver.get(server + "/")
        driver.find_element(By.ID, "file").send_keys(str(EXAMPLE))
        cards = wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#photo-faces .face"),
                         what="a face card")
        assert len(cards) == 1
        emotion = cards[0].get_attribute("data-emotion")
        assert emotion in EMOTIONS
        assert cards[0].find_element(By.CSS_SELECTOR, ".emotion").text == emotion
        assert len(cards[0].find_elements(By.CSS_SELECTOR, ".bar-row")) == len(EMOTIONS)
        assert "1 face" in driver.find_element(By.ID, "photo-status").text
        size = driver.execute_script("const c = document.getElementById('photo-canvas'); return [c.width, c.height]")
        img = cv2.imread(str(EXAMPLE))
        assert size == [img.shape[1], img.shape[0]]     # the photo drawn with its boxes
        assert severe(driver) == []
    finally:
        driver.quit()


def analyze(server: str, path: Path) -> dict:
    """The server's answer for a picture (POST /v1/analyze, raw body)."""
    request = urllib.request.Request(server + "/v1/analyze", data=path.read_bytes(),
                                     headers={"Content-Type": "image/png"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def face_extent(face: dict) -> list[float]:
    """A face's box joined with its landmarks: the part of the picture annotations must leave free."""
    x, y, w, h = face["box"]
    pts = np.array(face["landmarks"] or [[x, y]], dtype=float)
    x0, y0 = min(x, pts[:, 0].min()), min(y, pts[:, 1].min())
    x1, y1 = max(x + w, pts[:, 0].max()), max(y + h, pts[:, 1].max())
    return [x0, y0, x1 - x0, y1 - y0]


def overlap(a, b) -> float:
    """Area shared by two [x, y, w, h] rectangles."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(w, 0) * max(h, 0)


def inside(small, big, tol: float = 0.51) -> bool:
    return (small[0] >= big[0] - tol and small[1] >= big[1] - tol
            and small[0] + small[2] <= big[0] + big[2] + tol and small[1] + small[3] <= big[1] + big[3] + tol)


def upload(driver, path: Path) -> None:
    from selenium.webdriver.common.by import By

    driver.execute_script("window.__draws = []; document.getElementById('photo-faces').replaceChildren();")
    driver.find_element(By.ID, "file").send_keys(str(path))
    wait_for(driver, lambda d: path.name in d.find_element(By.ID, "photo-status").text
             and d.find_elements(By.CSS_SELECTOR, "#photo-faces .face"), what=f"the result for {path.name}")


def check_annotations(driver, server: str, path: Path) -> list[str]:
    """The score panels of the photo on the page cover no face and no other panel; their kinds."""
    faces = analyze(server, path)["faces"]
    W, H, layout = driver.execute_script(
        "const c = document.getElementById('photo-canvas'); return [c.width, c.height, JSON.parse(c.dataset.layout)]")
    draws = driver.execute_script("return window.__draws")
    assert len(layout) == len(faces) >= 3
    rects = [entry["rect"] for entry in layout]
    extents = [face_extent(f) for f in faces]
    for i, rect in enumerate(rects):
        assert inside(rect, [0, 0, W, H]), f"panel {i + 1} leaves the picture: {rect}"
        for j, face in enumerate(extents):
            assert overlap(rect, face) == 0, f"{path.name}: panel {i + 1} ({layout[i]['kind']}) covers face {j + 1}"
        for j in range(i):
            assert overlap(rect, rects[j]) == 0, f"{path.name}: panels {j + 1} and {i + 1} overlap"
    # What was drawn follows that layout: a filled background per panel, every other filled
    # rectangle inside a panel (bars) or a landmark dot on a face; each face's box outlined.
    fills = [d[1:] for d in draws if d[0] == "fillRect"]
    strokes = [d[1:] for d in draws if d[0] == "strokeRect"]
    for rect in rects:
        assert any(np.allclose(f, rect, atol=0.01) for f in fills), f"no panel drawn at {rect}"
    for f in fills:
        assert any(inside(f, r) for r in rects) or (f[2] <= 6 and any(inside(f, e, tol=6) for e in extents)), \
            f"{path.name}: something drawn outside every panel and landmark: {f}"
    for face in faces:
        assert any(np.allclose(s, face["box"], atol=0.01) for s in strokes), f"face box {face['box']} not drawn"
    return [entry["kind"] for entry in layout]


@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
def test_score_panels_cover_no_face_and_no_other_panel(server, group_photos, phone):
    driver = make_driver(phone=phone)
    try:
        driver.get(server + "/")
        upload(driver, group_photos["three"])
        kinds = check_annotations(driver, server, group_photos["three"])
        if not phone:                               # room below the faces: full panels
            assert kinds == ["panel"] * 3
        upload(driver, group_photos["four"])
        kinds = check_annotations(driver, server, group_photos["four"])
        assert "panel" not in kinds, "no room for a 7-bar panel in a 200-px strip of faces"
        assert "inside" not in kinds, "a one-line label or a tag finds room beside every face"
        assert severe(driver) == []
    finally:
        driver.quit()


FITS = """const root = document.documentElement;
  const visible = (el) => { const r = el.getBoundingClientRect(); const s = getComputedStyle(el);
    return s.visibility !== 'hidden' && s.display !== 'none' && r.width > 0 && r.height > 0
           && r.left >= 0 && r.right <= root.clientWidth; };
  return {scroll: root.scrollWidth, client: root.clientWidth, inner: innerWidth,
          controls: Object.fromEntries(arguments[0].map((id) => [id, visible(document.getElementById(id))]))};"""


def assert_fits(driver, ids: list[str], what: str) -> None:
    fit = driver.execute_script(FITS, ids)
    assert fit["inner"] == PHONE[0]
    assert fit["scroll"] <= fit["client"], f"{what}: the page scrolls sideways ({fit['scroll']} > {fit['client']} px)"
    assert all(fit["controls"].values()), f"{what}: controls out of view: {fit['controls']}"


LIVE = """const shot = document.getElementById('shot');
  return {cards: Array.from(document.querySelectorAll('#live-faces .face')).map((c) =>
            [c.dataset.person, c.dataset.track, c.dataset.shot, c.querySelector('h3').textContent]),
          shot: shot.dataset.shot, cuts: Number(shot.dataset.cuts || 0), marker: shot.textContent,
          overlay: JSON.parse(document.getElementById('overlay').dataset.layout || '[]')};"""


def test_phone_layout_persons_and_cuts(server, group_photos, cut_clip):
    """At 390x844: no sideways scroll and controls in view, with a photo's result and with the camera on;
    the live overlay names persons (the same two across the looping shots) and marks every cut."""
    from selenium.webdriver.common.by import By

    driver = make_driver("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                         f"--use-file-for-fake-video-capture={cut_clip}", phone=True)
    try:
        driver.get(server + "/")
        assert_fits(driver, ["drop", "file", "camera-btn"], "the empty page")
        upload(driver, group_photos["three"])
        assert_fits(driver, ["photo-canvas", "photo-faces", "camera-btn"], "with a photo's result")
        # every shot change is recorded as it is shown; cards are sampled at every redraw
        driver.execute_script("""window.__cutMarks = []; window.__cards = [];
          new MutationObserver(() => { const s = document.getElementById('shot');
            if (s.classList.contains('cut')) window.__cutMarks.push(s.textContent); })
            .observe(document.getElementById('shot'), {attributes: true, childList: true, characterData: true});
          new MutationObserver(() => window.__cards.push(Array.from(document.querySelectorAll('#live-faces .face'))
            .map((c) => [c.dataset.person, c.dataset.track, c.dataset.shot, c.querySelector('h3').textContent])))
            .observe(document.getElementById('live-faces'), {childList: true});""")
        driver.find_element(By.ID, "camera-btn").click()
        wait_for(driver, lambda d: d.execute_script(LIVE)["cards"] and d.find_element(By.ID, "fps").text,
                 what="a live face card and the frame rate")
        assert_fits(driver, ["camera-btn", "video", "overlay", "rates", "live-faces"], "with the camera on")
        state = wait_for(driver, lambda d: (lambda s: s if s["cuts"] >= 4 else None)(d.execute_script(LIVE)),
                         timeout=90, what="four cuts")
        for entry in state["overlay"]:          # the live annotations leave the face free too
            assert overlap(entry["rect"], entry["face"]) == 0
        cards = [c for frame in driver.execute_script("return window.__cards") for c in frame]
        marks = driver.execute_script("return window.__cutMarks")
        texts = driver.execute_script("return Array.from(window.__overlayTexts)")
        driver.find_element(By.ID, "camera-btn").click()
        assert severe(driver) == []
    finally:
        driver.quit()
    assert {f"cut: shot {k}" for k in range(1, 5)} <= set(marks), marks
    person_of_shot, shots_of_track = {}, {}
    for person, track, shot, title in cards:
        assert person and title.startswith(f"Person {person}: "), title       # persons, not track ids
        person_of_shot.setdefault(int(shot), set()).add(int(person))
        shots_of_track.setdefault(track, set()).add(int(shot))
    assert all(len(v) == 1 for v in shots_of_track.values()), f"a track crosses a cut: {shots_of_track}"
    assert all(len(v) == 1 for v in person_of_shot.values()), person_of_shot
    people = [person_of_shot[k].pop() for k in sorted(person_of_shot)]
    assert set(people) == {1, 2}, f"two people in the clip, persons seen: {people}"
    # shots run A H A | A H A | ...: Grace Hopper's shots never follow each other
    hopper = people[1] if people[0] == 1 else people[0]
    assert all(not (a == b == hopper) for a, b in zip(people, people[1:])), people
    assert any(t.startswith("person 1 ") for t in texts) and any(t.startswith("person 2") for t in texts)
    assert not any(t.startswith("track") for t in texts)


RATES = """const r = document.getElementById('rates');
  return {totals: Object.fromEntries(Object.entries(r.dataset).map(([k, v]) => [k, Number(v)])),
          fps: document.getElementById('fps').textContent, camera: document.getElementById('camera-fps').textContent,
          dropped: document.getElementById('dropped').textContent,
          cards: Array.from(document.querySelectorAll('#live-faces .face')).map((c) => [c.dataset.person,
                                                                                       c.dataset.emotion])};"""


def test_camera_counts_frames_analysed_and_dropped(server, face_clip):
    """The figure is camera frames analysed per second (never more than the camera gives), dropped apart."""
    from selenium.webdriver.common.by import By

    driver = make_driver("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                         f"--use-file-for-fake-video-capture={face_clip}")
    try:
        driver.get(server + "/")
        driver.find_element(By.ID, "camera-btn").click()
        state = wait_for(driver, lambda d: (lambda s: s if s["totals"].get("analysed", 0) >= 30 and s["fps"]
                                            else None)(d.execute_script(RATES)), what="30 frames analysed")
        assert driver.find_element(By.ID, "camera-btn").text == "Stop camera"
        driver.find_element(By.ID, "camera-btn").click()
        assert driver.find_element(By.ID, "camera-btn").text == "Start camera"
        assert severe(driver) == []
    finally:
        driver.quit()
    t = state["totals"]
    assert 0 <= t["sent"] - t["analysed"] <= 1, t           # one frame in flight at most
    assert 0 <= t["camera"] - t["dropped"] - t["sent"] <= 1, t   # a camera frame is sent once, or dropped
    analysed = float(re.fullmatch(r"(\d+\.\d) frames/s analysed", state["fps"]).group(1))
    camera = float(re.fullmatch(r"of (\d+\.\d) from the camera;", state["camera"]).group(1))
    dropped = re.fullmatch(r"(\d+\.\d)/s dropped \(server busy\)|none dropped", state["dropped"])
    assert dropped, state["dropped"]
    assert 0.7 * CAMERA_FPS <= camera <= 1.2 * CAMERA_FPS, f"the fake camera gives {CAMERA_FPS} frames/s"
    assert 0 < analysed <= camera + 0.6, "more frames analysed than the camera gave"
    dropped_rate = float(dropped.group(1) or 0)
    assert analysed + dropped_rate == pytest.approx(camera, abs=1.1)
    assert state["cards"] and state["cards"][0][0] == "1" and state["cards"][0][1] in EMOTIONS


def test_api_docs_render_offline(server):
    from selenium.webdriver.common.by import By

    driver = make_driver()
    try:
        driver.get(server + "/docs")
        blocks = wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"),
                          what="Swagger UI's operations")
        paths = {b.text.strip() for b in blocks}
        assert {"/v1/analyze", "/v1/health", "/v1/model"} <= paths
    finally:
        driver.quit()
