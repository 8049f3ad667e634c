"""emolens serve in a real browser: headless Chromium (Debian's chromium + chromium-driver) via Selenium.

The real server (uvicorn, in a thread, on a free loopback port) serves the page; Chromium
resolves no host but 127.0.0.1, so the page and /docs are shown to work offline. Tests:
upload a real photo and see a face with its emotion; the camera path with Chromium's fake
camera fed from a y4m clip of a real face (``emolens.testing.clips``), seeing tracked faces
and the frame rate; the API docs render from local files.

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

import cv2
import numpy as np
import pytest

from emolens.emotions import EMOTIONS
from emolens.testing import clips

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "astronaut.jpg"
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


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory) -> Path:
    """Two seconds of the example photo's face, held still with camera-like jitter, 640x480 at 15 fps."""
    photo = cv2.imread(str(EXAMPLE))
    actors = clips.steady_face(photo[40:230, 120:310], (640, 480))
    base = clips.background((640, 480), 1)
    rng = np.random.default_rng(1)
    frames = [clips.render(base, actors, i / 15, rng, jitter=2.0, noise=3.0) for i in range(30)]
    return write_y4m(tmp_path_factory.mktemp("camera") / "clip.y4m", frames, 15)


def make_driver(*extra: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--no-first-run", "--disable-extensions",
                # offline: every host name but the loopback fails to resolve
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", *extra):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
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


LIVE_FACES = """return Array.from(document.querySelectorAll('#live-faces .face'))
                 .map((c) => [c.dataset.track, c.dataset.emotion]);"""


def test_camera_stream_shows_faces_and_frame_rate(server, face_clip):
    from selenium.webdriver.common.by import By

    driver = make_driver("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                         f"--use-file-for-fake-video-capture={face_clip}")
    try:
        driver.get(server + "/")
        driver.find_element(By.ID, "camera-btn").click()
        faces = wait_for(driver, lambda d: d.execute_script(LIVE_FACES), what="a live face card")
        track, emotion = faces[0]                       # cards are redrawn every frame: read them in one go
        assert track.isdigit() and emotion in EMOTIONS
        fps = wait_for(driver, lambda d: re.fullmatch(r"(\d+\.\d) frames/s", d.find_element(By.ID, "fps").text),
                       what="the frame rate")
        assert float(fps.group(1)) > 0
        seen = []
        for _ in range(10):                             # results keep arriving, with a face each time
            time.sleep(0.1)
            seen.append(driver.execute_script(LIVE_FACES))
        assert sum(bool(s) for s in seen) >= 8
        assert driver.find_element(By.ID, "camera-btn").text == "Stop camera"
        driver.find_element(By.ID, "camera-btn").click()
        assert driver.find_element(By.ID, "camera-btn").text == "Start camera"
        assert severe(driver) == []
    finally:
        driver.quit()


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
