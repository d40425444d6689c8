"""The cluster suite (``make test-cluster``, also run by CI): three RabbitMQ nodes of its own, killed and cut.

It takes about two and a half minutes on two cores, so ``make test`` leaves it out: its tests run only
when ``-m`` names the ``cluster`` marker.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect this folder's tests unless ``-m`` asks for ``cluster``."""
    if "cluster" in (config.getoption("-m") or ""):
        return
    here = Path(__file__).parent
    keep, drop = [], []
    for item in items:
        (drop if here in Path(item.path).parents else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
