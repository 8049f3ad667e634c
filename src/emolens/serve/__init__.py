"""``emolens serve``: an HTTP API and a browser page for emotion recognition (the ``[serve]`` extra).

- ``POST /v1/analyze``: a picture (multipart upload or raw body) -> the JSON of
  ``emolens predict --json`` (``{"file", "faces", "error"}``, see ``emolens.predict``).
- ``WS /v1/stream``: camera frames (binary JPEG messages) in, per-frame tracked and
  smoothed results out (``emolens.video.FaceTracker``, one per connection).
- ``GET /v1/health``, ``GET /v1/model`` (the model card), ``GET /docs`` (Swagger UI
  served from local files), and the page at ``/``.

Modules: ``engine`` (models, worker threads, the analysis), ``security`` (API key,
bind check), ``stream`` (the WebSocket session), ``app`` (the FastAPI app factory),
``static/`` (the page). Run it with ``emolens serve`` or::

    from emolens.serve import ServeConfig, create_app
    app = create_app(ServeConfig(api_key="secret"))      # any ASGI server
"""

from __future__ import annotations

from emolens.serve.engine import ServeConfig

__all__ = ["ServeConfig", "create_app"]


def create_app(config: ServeConfig | None = None, engine=None):
    """The FastAPI application (models load here unless an ``engine`` is given)."""
    from emolens.serve.app import create_app as _create

    return _create(config, engine)
