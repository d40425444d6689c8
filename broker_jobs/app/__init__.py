"""The built-in application: jobs, connectors, vectors, entities, their tables and settings.

Built on the framework (everything else in :mod:`broker_jobs`); nothing in the framework imports it.
Importing this package imports nothing: :mod:`broker_jobs.app.jobs` declares the jobs.
"""
