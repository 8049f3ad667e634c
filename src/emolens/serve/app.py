"""The FastAPI application of ``emolens serve`` (``create_app``).

Routes: ``POST /v1/analyze``, ``WS /v1/stream``, ``GET /v1/health``, ``GET /v1/model``,
the page (``/`` and ``/static/*``), and the API docs (``/docs``, ``/openapi.json``) with
Swagger UI's files served from the ``fastapi-offline`` package: nothing is fetched from
the internet. Analysis runs in the engine's worker threads, never on the event loop,
so ``/v1/health`` answers while the workers are busy.
"""

from __future__ import annotations

import enum
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal, Optional

from fastapi import FastAPI, HTTPException, Query, Request, Security, WebSocket
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from emolens import __version__
from emolens.emotions import EMOTIONS
from emolens.faces.detect import list_detectors
from emolens.images import ImageError
from emolens.serve.engine import Engine, PictureTooLarge, ServeConfig
from emolens.serve.security import ApiKeyMiddleware
from emolens.serve.stream import StreamSession
from emolens.video import DEFAULT_DETECT_EVERY, DEFAULT_HALF_LIFE, DEFAULT_MAX_MISSED

STATIC = Path(__file__).resolve().parent / "static"
MULTIPART_SLACK = 64 * 1024          # multipart headers and boundaries on top of the picture's bytes
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
    503: {"model": ErrorOut, "description": "too many analyses waiting; retry after the Retry-After delay"},
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
  one JSON message per analysed frame with track ids and smoothed scores. Frames arriving while one is
  analysed are dropped (latest frame wins). Options as query parameters: `detector`, `align`,
  `detect_every`, `half_life`, `max_missed`.

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
        body = await read_body(request, limit + (MULTIPART_SLACK if multipart else 0), limit)
        name = "upload"
        if multipart:
            name, body = picture_part(body, content_type)
        if len(body) > limit:
            raise HTTPException(413, too_large(len(body), limit))
        try:
            result = await engine.run(engine.analyze_bytes, body, name,
                                      detector.value if detector is not None else None, align, config.max_pixels)
        except PictureTooLarge as exc:
            raise HTTPException(413, str(exc)) from None
        except ImageError as exc:
            raise HTTPException(422, str(exc)) from None
        return JSONResponse(result)

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
    async def stream(
        websocket: WebSocket,
        detector: Optional[DetectorName] = Query(None),
        align: bool = Query(True),
        detect_every: int = Query(DEFAULT_DETECT_EVERY, ge=1, le=100),
        half_life: float = Query(DEFAULT_HALF_LIFE, ge=0.0, le=60.0),
        max_missed: int = Query(DEFAULT_MAX_MISSED, ge=0, le=1000),
    ):
        session = StreamSession(websocket, engine, config, detector.value if detector is not None else None, align,
                                detect_every=detect_every, half_life=half_life, max_missed=max_missed)
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


async def read_body(request: Request, limit: int, picture_limit: int) -> bytes:
    """The request body, in memory, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, too_large(int(declared), picture_limit))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, too_large(size, picture_limit))
        chunks.append(chunk)
    return b"".join(chunks)


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
    state: dict = {}

    def on_part_begin():
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
