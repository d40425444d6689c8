"""Deterministic point ids: a row keeps its point whatever job writes it, however often."""

from __future__ import annotations

import uuid
from typing import Any

_NAMESPACE = uuid.UUID("8f2b7f39-4a63-4c8e-9d55-1d0b1c7e6a10")


def point_id(kind: str, row_id: Any) -> str:
    """The point id of row ``row_id`` of ``kind`` (``uuid5``)."""
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{row_id}"))
