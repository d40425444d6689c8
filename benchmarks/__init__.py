"""Benchmarks of broker_jobs against its peers: ``python benchmarks/run.py`` (``make bench``)."""
