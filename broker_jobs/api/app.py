"""The FastAPI application: health probes, ``/metrics``, ``/api/v1`` and the dashboard."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError, InterfaceError, OperationalError

from .. import __version__
from ..cli.common import load_jobs as import_jobs
from ..settings import Settings, get_settings
from .admin import router as admin_router
from .auth import secret_of
from .collector import StateCollector
from .console import router as console_router
from .dashboard import router as dashboard_router
from .headers import SecurityHeaders
from .health import HealthMonitor
from .health import router as health_router
from .live import router as live_router
from .routes import router as api_router

logger = logging.getLogger(__name__)

DESCRIPTION = """Operate broker_jobs: queues, schedules, run history, dead letters, workers, the schedule ahead.

Every `/api/v1` route needs `Authorization: Bearer <JWT>` (mint one with
`broker-jobs token --scope read|operate`); `read` looks, `operate` also acts.
Health probes and `/metrics` are open."""


def _field_of(error: dict[str, Any]) -> str:
    loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
    return ".".join(loc) or "body"


def create_app(settings: Settings | None = None, *, jwt_secret: str | None = None, monitor: HealthMonitor | None = None,
               load_jobs: bool = True) -> FastAPI:
    """Build the application.

    Parameters:
      settings: The settings (default: the process's).
      jwt_secret: Overrides ``API_JWT_SECRET`` (a development server given none).
      monitor: The health monitor (default: one checking every 5 s).
      load_jobs: Import the jobs so the sync routes can enqueue them.
    """
    if settings is None:
        settings = get_settings()
    secret = jwt_secret or secret_of(settings)
    if load_jobs:
        import_jobs()
    monitor = monitor or HealthMonitor(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        monitor.start()
        yield
        monitor.stop()

    app = FastAPI(title="broker_jobs", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.jwt_secret = secret
    app.state.health = monitor

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [dict(e) for e in exc.errors()]
        fields = sorted({_field_of(e) for e in errors})
        detail = [{"field": _field_of(e), "msg": e.get("msg"), "type": e.get("type"), "loc": list(e.get("loc", ()))}
                  for e in errors]
        return JSONResponse({"detail": detail, "message": "invalid " + ", ".join(fields)}, status_code=422)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        logger.warning("database unavailable: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return JSONResponse({"detail": "the database does not answer"}, status_code=503)

    @app.exception_handler(DataError)
    async def value_refused(request: Request, exc: DataError) -> JSONResponse:
        # A value the database cannot store (out of its range): the request's fault.
        return JSONResponse({"detail": "a value of the request cannot be stored"}, status_code=422)

    app.add_middleware(SecurityHeaders)

    collector = StateCollector(settings)

    @app.get("/metrics", tags=["health"], include_in_schema=True,
             response_class=Response, summary="Prometheus metrics (queue depths, history counts)")
    def get_metrics() -> Response:
        """Cluster-wide state for Prometheus; worker metrics are on each worker host's ``METRICS_PORT``."""
        import prometheus_client as prom  # deferred: loaded after env.configure()

        registry = prom.CollectorRegistry()
        registry.register(collector)
        return Response(prom.generate_latest(registry), media_type=prom.CONTENT_TYPE_LATEST)

    app.include_router(health_router)
    app.include_router(console_router)  # before api_router: /dlq/groups must not be read as /dlq/{id}
    app.include_router(api_router)
    app.include_router(live_router)
    app.include_router(admin_router)
    app.include_router(dashboard_router)
    return app
