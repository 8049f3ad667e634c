"""``WS /v1/stream``: camera frames in, tracked and smoothed faces out, one tracker per connection.

Protocol: the client sends each frame as one **binary** message (a JPEG, or any picture
format the API reads). The server answers each frame it analyses with one text message,
the JSON of ``emolens.video.FrameResult.to_dict()`` plus a few fields::

    {"frame": 12,            # number of the message (0-based; dropped frames count too)
     "time": 0.41,           # seconds since the connection opened, at the frame's arrival
     "dropped": 1,           # frames dropped just before this one (see below)
     "shot": 2,              # shot number: 0 from the first frame, +1 at every cut
     "cut": false,           # this frame starts a new shot (every track ended at the cut)
     "faces": [{"track_id": 4,          # a face followed across frames; a new one after every cut
                "person": 1,            # the same person across tracks and shots (dlib face
                                        # descriptors); null until the face is described
                                        # (faces under 40 px never are)
                "shot": 2,              # the shot the track belongs to
                "box": [x, y, w, h], "emotion": "happy",
                "scores": {...}, "intensity": {...},          # smoothed (exponential, real time)
                "raw": {"emotion", "scores", "intensity"},    # this frame alone
                "aligned": true, "detected": false,
                "pose": {"yaw": -8.1, "pitch": 3.0, "roll": 1.2} | null,   # degrees; null: no
                                        # landmarks that fit a face
                "frontal": true,        # |yaw| <= 30 degrees: the answers to trust most
                "landmarks": [[x, y], ...] | null}],
     "width": 640, "height": 480,   # the decoded frame (box coordinates are in its pixels)
     "seconds": 0.012}              # analysis time of this frame

Each connection has its own ``FaceTracker``, the tracker of ``emolens video``: the same
frames at the same times give the same tracks, persons, shots and scores. Person ids are
per connection (person 1 is the first person this stream saw). Times are arrival times,
so the shot detector's minimum shot length (0.4 s) and the descriptor spacing count in
seconds of the stream, whatever the client's frame rate.

A frame that cannot be decoded (or holds more pixels than the server decodes) is answered
with ``{"frame": n, "error": "..."}`` and the stream goes on. **Latest frame wins**: while a
frame is analysed, the newest frame that arrives waits and older waiting ones are dropped
(counted in ``dropped``), so a client sending faster than the server analyses never builds
a queue.

Closing codes: 1009, a message larger than the server's limit (``--ws-max-mb``); 1013, too
many open streams (``--max-streams``), try again later; 4408, no message for
``--ws-idle-seconds`` (default 30; a reply the client does not read for as long counts too),
so idle connections cannot hold the stream slots. Each close carries a reason in words.

Query options: ``detector``, ``align``, ``detect_every``, ``half_life``, ``max_missed``,
``shots`` (hash, content, histogram or off), ``persons`` (true or false) and ``same_person``:
``emolens video``'s options of those names, with its defaults and ranges (``emolens.options``). A bad
value is refused before the handshake completes with HTTP 422 and a JSON ``detail`` naming
the parameter and its range (where the server cannot send that, the stream opens and
closes at once with 1008 and the same words as the reason); a missing or wrong API key is 401 / 403.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from starlette.websockets import WebSocket, WebSocketDisconnect

from emolens.images import ImageError
from emolens.serve.engine import Engine, ServeConfig

log = logging.getLogger("emolens.serve")
IDLE_CLOSE = 4408      # no message (or no reply read) for ws_idle_seconds: 4000 + HTTP 408 Request Timeout


class StreamSession:
    """One WebSocket connection: a receiver task keeping only the newest frame, a processor task."""

    def __init__(self, ws: WebSocket, engine: Engine, config: ServeConfig, detector: str | None = None,
                 align: bool = True, **tracking):
        self.ws = ws
        self.engine = engine
        self.config = config
        self.detector = detector
        self.align = align
        self.tracking = tracking
        self.tracker = None
        self.latest: tuple[int, float, bytes] | None = None
        self.waiting_drops = 0
        self.received = 0
        self.processed = 0
        self.dropped = 0
        self.closed = False
        self.start = time.monotonic()
        self._ready = asyncio.Event()

    async def run(self) -> None:
        await self.ws.accept()
        engine = self.engine
        if engine.streams >= self.config.max_streams:
            await self.ws.close(code=1013, reason=f"server busy: {self.config.max_streams} streams open; "
                                                  "try again later")
            return
        engine.streams += 1
        try:
            loop = asyncio.get_running_loop()
            self.tracker = await loop.run_in_executor(engine.executor, self._make_tracker)
            receiver = asyncio.create_task(self._receive())
            processor = asyncio.create_task(self._process())
            done, pending = await asyncio.wait({receiver, processor}, return_when=asyncio.FIRST_COMPLETED)
            if receiver in done and not processor.done():
                # the client is gone (or was closed): finish the frame under analysis, then stop
                self.closed = True
                self._ready.set()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(processor, timeout=5)
            for task in (receiver, processor):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
        finally:
            engine.streams -= 1

    def _make_tracker(self):
        return self.engine.tracker(self.detector, self.align, **self.tracking)

    async def _receive(self) -> None:
        limit = self.config.ws_max_bytes
        idle = self.config.ws_idle_seconds
        while True:
            try:
                message = await asyncio.wait_for(self.ws.receive(), timeout=idle)
            except asyncio.TimeoutError:
                await self._close(IDLE_CLOSE, f"no frame for {idle:g} s: closed to free the stream for others; "
                                              "reconnect to go on")
                return
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            text = message.get("text")
            size = len(data) if data is not None else len((text or "").encode())
            if size > limit:
                await self._close(1009, f"message of {size} bytes is over the {limit}-byte limit")
                return
            if data is None:
                await self._send({"error": "send frames as binary messages (JPEG bytes), not text"})
                continue
            if self.latest is not None:
                self.waiting_drops += 1
                self.dropped += 1
            self.latest = (self.received, time.monotonic() - self.start, data)
            self.received += 1
            self._ready.set()

    async def _process(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            if self.closed:
                return
            if self.latest is None:
                continue
            (index, t, data), self.latest = self.latest, None
            drops, self.waiting_drops = self.waiting_drops, 0
            try:
                reply = await self.engine.run(self._analyze, index, t, data, drops)
            except ImageError as exc:          # PictureTooLarge too
                reply = {"frame": index, "error": str(exc)}
            except Exception as exc:  # keep the stream alive; the client sees what failed
                log.exception("stream frame %d failed", index)
                reply = {"frame": index, "error": f"analysis failed ({type(exc).__name__})"}
            self.processed += 1
            if not await self._send(reply) or self.closed:
                return

    def _analyze(self, index: int, t: float, data: bytes, drops: int) -> dict:
        from emolens.video import Frame

        t0 = time.perf_counter()
        image, _ = self.engine.decode(data, f"frame {index}", self.config.max_pixels)
        result = self.tracker.process(Frame(index, t, image, drops))
        out = result.to_dict()
        out.setdefault("cut", bool(result.cut))
        out.update(width=int(image.shape[1]), height=int(image.shape[0]),
                   seconds=round(time.perf_counter() - t0, 4))
        return out

    async def _send(self, payload: dict) -> bool:
        """Send one reply; False when the client is gone or has not read replies for ``ws_idle_seconds``."""
        try:
            await asyncio.wait_for(self.ws.send_json(payload), timeout=self.config.ws_idle_seconds)
            return True
        except asyncio.TimeoutError:
            self.closed = True
            self._ready.set()
            await self._close(IDLE_CLOSE, f"replies not read for {self.config.ws_idle_seconds:g} s; reconnect to go on")
            return False
        except (WebSocketDisconnect, RuntimeError, OSError):
            self.closed = True
            return False

    async def _close(self, code: int, reason: str) -> None:
        """Close with a code and a reason (at most 123 bytes, the protocol's limit), if still open."""
        reason = reason.encode()[:123].decode(errors="ignore")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(code=code, reason=reason), timeout=5)
