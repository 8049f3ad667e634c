"""The FastAPI application of ``emolens serve`` (``create_app``).

Routes: ``POST /v1/analyze``, ``WS /v1/stream``, ``GET /v1/health``, ``GET /v1/model``,
the page (``/`` and ``/static/*``), and the API docs (``/docs``, ``/openapi.json``) with
Swagger UI's files served from the ``fastapi-offline`` package: nothing is fetched from
the internet. Analysis runs in the engine's worker threads, never on the event loop,
so ``/v1/health`` answers while the workers are busy; multipart bodies are parsed off the
loop too, and at most ``MAX_PARTS`` parts are read (python-multipart bounds each part's headers).

Limits (each answered with a status and a sentence saying what to do): request bodies
over ``max_upload_bytes`` (413); bodies held in memory, all requests together, over
``max_buffered_bytes`` (503 with Retry-After: uploads never pile up in memory); pictures
that would decode to more than ``max_pixels`` (413, the limit of every decode path,
``emolens.images.MAX_PIXELS``); more than ``max_pending`` analyses waiting (503); a client
that goes away mid-upload gets one log line, no traceback.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal, Optional

from fastapi import FastAPI, HTTPException, Query, Request, Security, WebSocket
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.requests import ClientDisconnect

from emolens import __version__
from emolens.emotions import EMOTIONS
from emolens.faces.detect import list_detectors
from emolens import options
from emolens.runtime import ModelError
from emolens.images import ImageError, PictureTooLarge
from emolens.serve.engine import MULTIPART_SLACK, ByteBudget, Engine, ServeConfig
from emolens.serve.security import ApiKeyMiddleware
from emolens.serve.stream import StreamSession
from emolens.video import DEFAULT_DETECT_EVERY, DEFAULT_HALF_LIFE, DEFAULT_MAX_MISSED

STATIC = Path(__file__).resolve().parent / "static"
MAX_PARTS = 16                       # multipart parts read per request (a picture needs one); python-multipart
                                     # itself allows 8 headers of at most 4 KB per part
RAW_TYPES = ("image/", "application/octet-stream")
log = logging.getLogger("emolens.serve")
access_log = logging.getLogger("emolens.serve.access")

DetectorName = enum.Enum("DetectorName", {name.replace("+", "_").replace("-", "_"): name
                                          for name in list_detectors()}, type=str)
# An unencoded "+" in a query string arrives as a space: accept "dlib haar" for "dlib+haar".
DetectorName._missing_ = classmethod(lambda cls, value: cls._value2member_map_.get(str(value).replace(" ", "+")))

# -- response models (documentation and schema checks; responses are built as plain dicts) --------

Emotion = Literal[tuple(EMOTIONS)]  # type: ignore[valid-type]


class FaceOut(BaseModel):
    box: list[int] = Field(description="x, y, width, height in the picture's pixels", min_length=4, max_length=4)
    emotion: Emotion = Field(description="the top emotion")
    scores: dict[str, float] = Field(description="7 probabilities summing to 1")
    intensity: dict[str, float] = Field(description="7 intensities, each 0..1")
    aligned: bool = Field(description="false: face too small for landmarks (or --no-align), box crop used")
    landmarks: Optional[list[list[float]]] = Field(description="68 points (iBUG order) or null")
    detection_score: float = Field(description="the detector's confidence (scale depends on the detector)")


class AnalyzeResult(BaseModel):
    """The same object as one line of ``emolens predict --json``."""

    file: str = Field(description="the uploaded file's name (multipart) or 'upload' (raw body)")
    faces: list[FaceOut] = Field(description="[] when no face was found")
    error: Optional[str] = Field(description="always null here: failures are HTTP errors")


class ErrorOut(BaseModel):
    detail: Any = Field(description="what went wrong and what to do")


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    workers: int
    pending: int = Field(description="analyses queued or running")
    streams: int = Field(description="open WebSocket streams")
    analyses: int = Field(description="analyses finished since start")
    uptime: float = Field(description="seconds since start")


ERRORS = {
    401: {"model": ErrorOut, "description": "API key missing (when the server was started with one)"},
    403: {"model": ErrorOut, "description": "wrong API key"},
}
ANALYZE_ERRORS = {
    **ERRORS,
    413: {"model": ErrorOut, "description": "upload larger than the server's limit, or too many pixels"},
    415: {"model": ErrorOut, "description": "not multipart/form-data, image/* or application/octet-stream"},
    422: {"model": ErrorOut, "description": "not a decodable picture, no file part, or bad query options"},
    503: {"model": ErrorOut, "description": "too many analyses waiting, or too many uploads in memory; retry "
                                            "after the Retry-After delay"},
}
BINARY = {"schema": {"type": "string", "format": "binary"}}
ANALYZE_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary",
                                                               "description": "the picture"}}}},
    "image/jpeg": BINARY, "image/png": BINARY, "image/webp": BINARY, "application/octet-stream": BINARY}}}

DESCRIPTION = """Emotion recognition on faces: the same pipeline as `emolens predict` and `emolens video`.

* `POST /v1/analyze`: a picture as a multipart upload (field `file`) or as the raw body
  (`Content-Type: image/jpeg`, `image/png`, ... or `application/octet-stream`) → faces and emotions,
  the JSON of `emolens predict --json`.
* `WS /v1/stream` (WebSocket, not shown below): send camera frames as binary JPEG messages, receive
  one JSON message per analysed frame with smoothed scores, track ids, person ids (stable across
  shots), the shot number and `cut` (a new shot: every track ended), head pose and `frontal`: the
  tracker of `emolens video`. Frames arriving while one is analysed are dropped (latest frame wins).
  Options as query parameters: `detector`, `align`, `detect_every` (1-1000), `half_life` (0-60 s),
  `max_missed` (0-100000), `shots` (hash, content, histogram, off), `persons` (true, false),
  `same_person` (0.2-1.0, default 0.5: the face-descriptor distance under which two faces are one person); a bad
  value is refused with HTTP 422 naming it. A stream with no message for the server's idle time
  (default 30 s) is closed with code 4408.

Limits: uploads over the server's size limit (default 10 MB) or that would decode to more than
50 M pixels get 413; when the uploads held in memory reach the server's budget, or too many analyses
wait, new ones get 503 with `Retry-After`.

When the server has an API key, every request needs it: header `X-API-Key` (or `Authorization: Bearer`),
or `?api_key=` (browsers then get a cookie). Click *Authorize* to try the API here with a key.
"""


def create_app(config: ServeConfig | None = None, engine: Engine | None = None) -> FastAPI:
    """The application; loads the models (``Engine``) unless one is given."""
    config = config or (engine.config if engine is not None else ServeConfig())
    owns_engine = engine is None
    engine = engine or Engine(config)

    @asynccontextmanager
    async def lifespan(app):
        yield
        if owns_engine:
            engine.close()

    app = FastAPI(title="emolens", version=__version__, description=DESCRIPTION, docs_url=None, redoc_url=None,
                  swagger_ui_oauth2_redirect_url=None, lifespan=lifespan,
                  swagger_ui_parameters={"validatorUrl": None})
    app.state.engine = engine
    app.state.config = config
    budget = ByteBudget(config.max_buffered_bytes)
    app.state.budget = budget
    # The key is enforced by ApiKeyMiddleware on every route; this documents it (when there is one)
    # so that Swagger UI offers "Authorize" and the schema tells clients what to send.
    secured = [Security(APIKeyHeader(name="X-API-Key", auto_error=False,
                                     description="the key the server was started with"))] if config.api_key else []

    # -- API ---------------------------------------------------------------------------

    @app.post("/v1/analyze", response_model=AnalyzeResult, responses=ANALYZE_ERRORS, openapi_extra=ANALYZE_BODY,
              summary="Faces and emotions in a picture", tags=["api"], dependencies=secured)
    async def analyze(
        request: Request,
        detector: Optional[DetectorName] = Query(None, description=f"face detector (default: {config.detector})"),
        align: bool = Query(True, description="align faces by their landmarks (false: crop the detector box)"),
    ):
        content_type = request.headers.get("content-type", "")
        mime = content_type.split(";", 1)[0].strip().lower()
        multipart = mime == "multipart/form-data"
        if not multipart and not mime.startswith(RAW_TYPES):
            raise HTTPException(415, f"unsupported content type {mime or '(none)'!r}: send the picture as "
                                     "multipart/form-data (field 'file') or as the raw body with an image/* "
                                     "or application/octet-stream content type")
        if engine.pending >= config.max_pending:
            raise HTTPException(503, "server busy: too many analyses waiting; retry shortly",
                                headers={"Retry-After": "1"})
        limit = config.max_upload_bytes
        cap = limit + (MULTIPART_SLACK if multipart else 0)
        declared = declared_length(request)
        if declared is not None and declared > cap:
            raise HTTPException(413, too_large(declared, limit))
        reserved = cap if declared is None else declared
        if not budget.take(reserved):
            raise HTTPException(503, f"server busy: {budget.used >> 20} MB of uploads are already in memory "
                                     f"(limit {budget.limit >> 20} MB); retry shortly", headers={"Retry-After": "1"})
        try:
            try:
                body = await read_body(request, reserved, limit)
            except ClientDisconnect:
                log.info("client went away during the upload (%s %s)", request.method, request.url.path)
                return Response(status_code=499)      # nobody reads it; the access log says what happened
            name = "upload"
            if multipart:                             # parsed in a thread: many small parts cost time
                name, body = await asyncio.to_thread(picture_part, body, content_type)
            if len(body) > limit:
                raise HTTPException(413, too_large(len(body), limit))
            try:
                result = await engine.run(engine.analyze_bytes, body, name,
                                          detector.value if detector is not None else None, align, config.max_pixels)
            except PictureTooLarge as exc:
                raise HTTPException(413, str(exc)) from None
            except ImageError as exc:
                raise HTTPException(422, str(exc)) from None
            except ModelError as exc:                 # a model whose scores are not finite: our fault, said so
                raise HTTPException(500, str(exc)) from None
            return JSONResponse(result)
        finally:
            budget.give(reserved)

    @app.get("/v1/health", response_model=Health, responses=ERRORS, summary="Liveness and load", tags=["api"],
             dependencies=secured)
    async def health():
        return JSONResponse({"status": "ok", "version": __version__, "workers": engine.config.workers,
                             "pending": engine.pending, "streams": engine.streams, "analyses": engine.analyses,
                             "uptime": round(time.time() - engine.started, 1)})

    @app.get("/v1/model", response_model=dict[str, Any], responses=ERRORS,
             summary="The model card of the emotion model", tags=["api"], dependencies=secured)
    async def model_card():
        return JSONResponse(engine.model.card)

    @app.websocket("/v1/stream")
    async def stream(websocket: WebSocket):
        # Query values are checked here, not by FastAPI, whose refusal (close 1008 before the
        # handshake) reads as HTTP 403, an API-key failure: a bad value gets 422 naming it.
        try:
            choice = stream_options(websocket.query_params)
        except options.OptionError as exc:
            return await refuse_websocket(websocket, str(exc))
        session = StreamSession(websocket, engine, config, choice.pop("detector"), choice.pop("align"), **choice)
        await session.run()

    # -- page and docs -------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    docs_assets = swagger_assets()
    app.mount("/docs-assets", StaticFiles(directory=docs_assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title="emolens API",
                                   swagger_js_url=f"{root}/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}/docs-assets/swagger-ui.css",
                                   swagger_favicon_url=f"{root}/docs-assets/favicon.png",
                                   oauth2_redirect_url=None, swagger_ui_parameters=app.swagger_ui_parameters)

    app.add_middleware(ApiKeyMiddleware, api_key=config.api_key)
    app.add_middleware(AccessLog)
    return app


def swagger_assets() -> Path:
    """Swagger UI's JavaScript and CSS as shipped by the ``fastapi-offline`` package."""
    import importlib.util

    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the API docs need the fastapi-offline package: pip install 'emolens[serve]'")
    return Path(list(spec.submodule_search_locations)[0]) / "static"


def too_large(size: int, limit: int) -> str:
    return (f"upload of {size} bytes is larger than this server's limit of {limit} bytes; "
            "send a smaller (or more compressed) picture")


def declared_length(request: Request) -> int | None:
    """The Content-Length a request declares (None: none, or not a number)."""
    declared = request.headers.get("content-length")
    return int(declared) if declared is not None and declared.isdigit() else None


async def read_body(request: Request, limit: int, picture_limit: int) -> bytes:
    """The request body, in memory, refused with 413 as soon as it passes ``limit`` bytes.

    Raises ``ClientDisconnect`` when the client goes away before the end.
    """
    declared = declared_length(request)
    if declared is not None and declared > limit:
        raise HTTPException(413, too_large(declared, picture_limit))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, too_large(size, picture_limit))
        chunks.append(chunk)
    return b"".join(chunks)


BOOLEAN = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def stream_options(query) -> dict:
    """``WS /v1/stream``'s query parameters, checked (``emolens.options``): detector, align and tracking."""
    detector = query.get("detector")
    if detector is not None:
        name = DetectorName._missing_(detector)
        if name is None:
            raise options.OptionError("detector", detector, f"one of {', '.join(list_detectors())}")
        detector = name.value
    align_text = query.get("align")
    align = True if align_text is None else BOOLEAN.get(align_text.strip().lower())
    if align is None:
        raise options.OptionError("align", align_text, "true or false")
    from emolens.people.persons import SAME_PERSON
    from emolens.people.shots import DEFAULT_SHOT_METHOD, SHOT_METHODS

    shots = (query.get("shots") or DEFAULT_SHOT_METHOD).strip().lower()
    if shots not in SHOT_METHODS:
        raise options.OptionError("shots", query.get("shots"), f"one of {', '.join(SHOT_METHODS)}")
    persons_text = query.get("persons")
    persons = True if persons_text is None else BOOLEAN.get(persons_text.strip().lower())
    if persons is None:
        raise options.OptionError("persons", persons_text, "true or false")
    return {"detector": detector, "align": align,
            "detect_every": options.parse("detect_every", query.get("detect_every"), DEFAULT_DETECT_EVERY),
            "half_life": options.parse("half_life", query.get("half_life"), DEFAULT_HALF_LIFE),
            "max_missed": options.parse("max_missed", query.get("max_missed"), DEFAULT_MAX_MISSED),
            "shots": shots, "persons": persons,
            "same_person": options.parse("same_person", query.get("same_person"), SAME_PERSON)}


async def refuse_websocket(websocket: WebSocket, reason: str) -> None:
    """HTTP 422 instead of the handshake, with the reason as JSON ``detail`` (where the server can send
    it: uvicorn can); elsewhere accept and close at once with 1008 and the reason."""
    try:
        await websocket.send_denial_response(JSONResponse({"detail": reason}, status_code=422))
    except RuntimeError:
        await websocket.accept()
        await websocket.close(code=1008, reason=reason.encode()[:123].decode(errors="ignore"))


def picture_part(body: bytes, content_type: str) -> tuple[str, bytes]:
    """``(filename, bytes)`` of the picture in a multipart body (field ``file``, else the first file part).

    Parsed in memory with python-multipart's streaming parser: nothing goes to a temporary file.
    """
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise HTTPException(422, "multipart/form-data without a boundary; let your HTTP client build the body")
    parts: list[dict] = []
    state: dict = {"count": 0}

    def on_part_begin():
        state["count"] += 1
        if state["count"] > MAX_PARTS:
            raise TooManyParts(f"multipart body with more than {MAX_PARTS} parts; send the picture alone "
                               "in a field named 'file'")
        state["part"] = {"headers": {}, "data": []}
        state["field"] = b""

    def on_header_field(data, start, end):
        state["field"] += data[start:end]

    def on_header_value(data, start, end):
        part = state["part"]
        name = state["field"].lower()
        part["headers"][name] = part["headers"].get(name, b"") + data[start:end]

    def on_header_end():
        state["field"] = b""

    def on_part_data(data, start, end):
        state["part"]["data"].append(data[start:end])

    def on_part_end():
        parts.append(state.pop("part"))

    parser = MultipartParser(boundary, {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                                        "on_header_value": on_header_value, "on_header_end": on_header_end,
                                        "on_part_data": on_part_data, "on_part_end": on_part_end})
    try:
        parser.write(body)
        parser.finalize()
    except TooManyParts as exc:
        raise HTTPException(422, str(exc)) from None
    except Exception as exc:  # python-multipart raises its own error types for malformed bodies
        raise HTTPException(422, f"malformed multipart body ({exc})") from None
    chosen = None
    for part in parts:
        _, disp = parse_options_header(part["headers"].get(b"content-disposition", b""))
        part["name"] = disp.get(b"name", b"").decode("utf-8", "replace")
        part["filename"] = disp.get(b"filename", b"").decode("utf-8", "replace")
        if part["name"] in ("file", "image"):
            chosen = part
            break
        if chosen is None and part["filename"]:
            chosen = part
    if chosen is None:
        raise HTTPException(422, "multipart body without a picture: send it in a field named 'file'")
    mime = chosen["headers"].get(b"content-type", b"").split(b";")[0].strip().lower().decode("latin-1")
    if mime and not mime.startswith(RAW_TYPES):
        raise HTTPException(415, f"the 'file' part is {mime!r}, not a picture (image/* or application/octet-stream)")
    name = Path(chosen["filename"].replace("\\", "/")).name or "upload"
    return name, b"".join(chosen["data"])


class TooManyParts(Exception):
    """Raised from the multipart parser's callbacks to stop it early."""


class AccessLog:
    """One log line per request: method, path (never the query string, which may hold the key), status, time."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not access_log.isEnabledFor(logging.INFO):
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = {"code": 0}

        async def send_logged(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        finally:
            access_log.info("%s %s %d %.1f ms", scope.get("method"), scope.get("path"), status["code"],
                            (time.perf_counter() - start) * 1000)
