"""What a message must look like on the wire before a worker dispatches it.

Dramatiq's own decoding accepts any JSON object with the right keys: a body
whose fields have the wrong types then fails deep inside the worker, where it
can crash the consumer (which restarts every 3 s and meets the same message
again), kill a worker thread, or be acknowledged with neither a history row
nor a dead letter.  :func:`parse` checks every field, and every option that
Dramatiq or broker_jobs reads, for its type and size once, when the body
arrives; anything else is :class:`Malformed`, with a reason naming the field,
and the consumer dead-letters it at once (see
:class:`broker_jobs.consumer.CheckingConsumer`).

The same check tells the dead-letter tools which stored letters can be
replayed.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Annotated, Any

import dramatiq
from dramatiq.message import Message
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, create_model

from . import protocol

#: What a worker notes on a message while it handles it (outcome, error, report): never
#: meaningful on arrival (a dead letter re-sent by other tools still carries them), so dropped.
IN_PROCESS_OPTIONS = protocol.IN_PROCESS_OPTIONS

#: The widest ids and names the history and archive columns hold.
MAX_ID, MAX_NAME, MAX_FIRE_ID = 64, 200, 300
#: 9999-12-31 in epoch milliseconds: the last instant a date column can hold.
MAX_MILLIS = 253_402_300_799_999


def _storable(value: str) -> str:
    # PostgreSQL refuses NUL in text and the drivers refuse lone surrogates:
    # a field that goes into a history or archive row must be neither.
    if "\x00" in value:
        raise ValueError("contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid UTF-8 text") from None
    return value


def _finite(value: float) -> float:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


Text = Annotated[str, Field(strict=True), AfterValidator(_storable)]
Id = Annotated[Text, Field(min_length=1, max_length=MAX_ID)]
Name = Annotated[Text, Field(min_length=1, max_length=MAX_NAME)]
Millis = Annotated[float, Field(strict=True, ge=0, le=MAX_MILLIS), AfterValidator(_finite)]
Count = Annotated[int, Field(strict=True, ge=0, le=1_000_000)]
Seconds = Annotated[float, Field(strict=True, ge=0, le=MAX_MILLIS), AfterValidator(_finite)]
Level = Annotated[str, Field(strict=True, pattern=r"^\s*(?i:high|medium|low|[123])\s*$")] | Annotated[
    int, Field(strict=True, ge=1, le=3)]


#: Every option somebody reads, with its wire type: Dramatiq's middleware, then ours
#: (named by :mod:`broker_jobs.protocol`).  Others pass through unread.
OPTION_TYPES: dict[str, tuple[Any, Any]] = {
    protocol.RETRIES: (Count, 0),
    "max_retries": (Count, 0),
    protocol.DEFERRALS: (Count, 0),
    "min_backoff": (Seconds, 0),
    "max_backoff": (Seconds, 0),
    "time_limit": (Seconds | None, None),
    "max_age": (Seconds | None, None),
    protocol.ETA: (Millis | None, None),
    protocol.BJ_ETA: (Millis | None, None),
    protocol.REQUEUE_TIMESTAMP: (Millis | None, None),
    protocol.PRIORITY: (Level | None, None),
    protocol.BROKER_PRIORITY: (Annotated[int, Field(strict=True, ge=0, le=255)] | None, None),
    protocol.FIRE_ID: (Annotated[Text, Field(max_length=MAX_FIRE_ID)] | None, None),
    protocol.REPLAY_OF: (Id | None, None),
    protocol.JOB_ID: (Annotated[Text, Field(max_length=MAX_FIRE_ID)] | None, None),
    "on_success": (Name | None, None),
    "on_failure": (Name | None, None),
    "on_retry_exhausted": (Name | None, None),
    "pipe_target": (dict[str, Any] | None, None),
    "pipe_ignore": (bool | None, None),
    "notify_shutdown": (bool | None, None),
    # Exception classes and callables: only in-process, never on the wire.
    "throws": (None, None),
    "retry_when": (None, None),
    protocol.TRACEBACK: (str | None, None),
}

#: The options somebody reads (:data:`OPTION_TYPES`).  Others pass through unread.
Options = create_model("Options", __config__=ConfigDict(extra="allow", strict=True),
                       **OPTION_TYPES)  # type: ignore[call-overload]  # fields as **kwargs


class Body(BaseModel):
    """A Dramatiq message as encoded: exactly these seven fields."""

    model_config = ConfigDict(extra="forbid", strict=True)

    queue_name: Name
    actor_name: Name
    args: list[Any]
    kwargs: dict[str, Any]
    options: Options
    message_id: Id
    message_timestamp: Annotated[int, Field(strict=True, ge=0, le=MAX_MILLIS)]


@dataclass(frozen=True)
class Malformed:
    """A body that must not be dispatched.

    Attributes:
      reason: One line naming the field (``options.retries: ...``).
      id: The message id if it is a usable one, else ``raw-`` and a hash of the body.
      actor: The actor name if it is a usable one.
      fields: The decoded JSON object, if the body was one.
    """

    reason: str
    id: str
    actor: str | None = None
    fields: dict[str, Any] | None = None


def raw_id(body: bytes) -> str:
    """The id of a body without a usable message id (what ``dlq list`` shows)."""
    return "raw-" + hashlib.sha1(body).hexdigest()[:16]


def _reason(error: ValidationError) -> str:
    first = error.errors()[0]
    loc = first["loc"]
    # Deeper parts of a location are pydantic's union branches, not fields.
    where = ".".join(str(part) for part in (loc[:2] if loc and loc[0] == "options" else loc[:1])) or "body"
    kind = type(first.get("input")).__name__
    detail = first["msg"]
    if first["type"] == "extra_forbidden":
        detail = "unknown field"
    elif first["type"] == "missing":
        detail = "missing"
    else:
        detail = f"{detail} (got {kind})"
    return f"malformed message: {where}: {detail}"[:500]


def _usable(fields: dict[str, Any], key: str, limit: int) -> str | None:
    value = fields.get(key)
    if isinstance(value, str) and 0 < len(value) <= limit:
        try:
            return _storable(value)
        except ValueError:
            return None
    return None


# -- the fast path: a plainly valid body, as our publishers and Dramatiq's write them --------
#
# Checking a body with pydantic costs more than decoding it.  Most bodies are plainly
# valid: :func:`_plainly_valid` accepts those with a few type and range checks, and
# anything it is not sure of goes to pydantic, which decides (and names the field).  It
# only ever accepts what :class:`Body` accepts (tests/framework/unit/test_wire_fast_path.py).

_BODY_KEYS = frozenset(Body.model_fields)


def _plain_text(value: object, low: int, high: int) -> bool:
    # ASCII without NUL: storable, and its length is its length in any encoding.
    return type(value) is str and low <= len(value) <= high and value.isascii() and "\x00" not in value


def _count(value: object) -> bool:
    return type(value) is int and 0 <= value <= 1_000_000


def _number(value: object) -> bool:
    # Seconds and Millis: an int, or a finite float, within the range of a date column.
    if type(value) is int:
        return 0 <= value <= MAX_MILLIS
    return type(value) is float and 0 <= value <= MAX_MILLIS  # NaN and infinities fail


def _optional(check: Any) -> Any:
    return lambda value: value is None or check(value)


#: The options the fast path understands; any other option Dramatiq or we read sends the
#: body to pydantic.  An option nobody reads passes through, as :data:`Options` lets it.
_FAST_OPTIONS: dict[str, Any] = {
    protocol.RETRIES: _count,
    "max_retries": _count,
    protocol.DEFERRALS: _count,
    "min_backoff": _number,
    "max_backoff": _number,
    "time_limit": _optional(_number),
    "max_age": _optional(_number),
    protocol.ETA: _optional(_number),
    protocol.BJ_ETA: _optional(_number),
    protocol.REQUEUE_TIMESTAMP: _optional(_number),
    protocol.PRIORITY: lambda value: value is None or value in ("high", "medium", "low"),
    protocol.BROKER_PRIORITY: lambda value: value is None or (type(value) is int and 0 <= value <= 255),
    protocol.FIRE_ID: _optional(lambda value: _plain_text(value, 0, MAX_FIRE_ID)),
    protocol.JOB_ID: _optional(lambda value: _plain_text(value, 0, MAX_FIRE_ID)),
    protocol.REPLAY_OF: _optional(lambda value: _plain_text(value, 1, MAX_ID)),
    protocol.TRACEBACK: lambda value: value is None or type(value) is str,
}
_READ_OPTIONS = frozenset(OPTION_TYPES)


def _plainly_valid(fields: dict[str, Any]) -> bool:
    """True only for a body :class:`Body` accepts; False means "ask pydantic"."""
    if fields.keys() != _BODY_KEYS:
        return False
    timestamp, options = fields["message_timestamp"], fields["options"]
    if not (_plain_text(fields["queue_name"], 1, MAX_NAME) and _plain_text(fields["actor_name"], 1, MAX_NAME)
            and _plain_text(fields["message_id"], 1, MAX_ID) and type(fields["args"]) is list
            and type(fields["kwargs"]) is dict and type(timestamp) is int and 0 <= timestamp <= MAX_MILLIS
            and type(options) is dict):
        return False
    for key, value in options.items():
        check = _FAST_OPTIONS.get(key)
        if check is None:
            if key in _READ_OPTIONS:
                return False
        elif not check(value):
            return False
    return True


def parse(body: bytes, queue: str | None = None, max_bytes: int | None = None) -> Message[Any] | Malformed:
    """Decode ``body`` into a message, or say why it must be dead-lettered.

    Parameters:
      body: The delivery's body.
      queue: The queue it arrived on: its ``queue_name`` must name that queue, or the
        worker would settle it on another queue's channel.  ``None`` skips the check.
      max_bytes: ``MAX_MESSAGE_BYTES``: a larger body is refused (``None`` skips the check).
    """
    try:
        fields = dramatiq.get_encoder().decode(body)
    except Exception as exc:  # noqa: BLE001 - any decoder failure means the same: not a message
        return Malformed(f"undecodable body: not a Dramatiq message ({type(exc).__name__})", raw_id(body))
    if not isinstance(fields, dict):
        return Malformed(f"undecodable body: not a Dramatiq message (a JSON {type(fields).__name__})",
                         raw_id(body))
    message_id = _usable(fields, "message_id", MAX_ID)
    actor = _usable(fields, "actor_name", MAX_NAME)
    if max_bytes is not None and len(body) > max_bytes:
        return Malformed(f"malformed message: body: {len(body)} bytes, over MAX_MESSAGE_BYTES={max_bytes}",
                         message_id or raw_id(body), actor, fields)
    if not _plainly_valid(fields):
        try:
            Body.model_validate(fields)
        except ValidationError as error:
            return Malformed(_reason(error), message_id or raw_id(body), actor, fields)
    if queue is not None and fields["queue_name"] != queue:
        return Malformed(f"malformed message: queue_name: names {fields['queue_name'][:MAX_NAME]!r}, "
                         f"not the queue {queue!r} it arrived on", message_id or raw_id(body), actor, fields)
    options = fields["options"]
    for key in IN_PROCESS_OPTIONS:
        options.pop(key, None)
    fields["args"] = tuple(fields["args"])
    return Message(**fields)
