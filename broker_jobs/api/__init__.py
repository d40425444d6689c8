"""The HTTP side: API, health probes, ``/metrics`` and the dashboard (``broker-jobs serve``).

:func:`broker_jobs.api.app.create_app` builds the FastAPI application.
"""
