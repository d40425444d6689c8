"""Job priorities: ``high``/``medium``/``low`` (or 1/2/3, 1 highest).

Two different knobs are called "priority" underneath, with opposite
directions:

* RabbitMQ's message priority (Dramatiq's ``broker_priority`` option) orders
  the queue's backlog, **higher first**, from 0 to the queue's
  ``x-max-priority``.
* Dramatiq's actor ``priority`` orders only the messages one worker process
  has already prefetched, **lower first**.

:func:`amqp_priority` and :func:`actor_priority` map our level onto each so
that ``high`` wins on both.
"""

from __future__ import annotations

from enum import IntEnum

#: ``x-max-priority`` of every queue; decided once, see the README.
MAX_PRIORITY = 10


class Priority(IntEnum):
    """A job priority; the value is the user-facing number (1 is highest)."""

    HIGH = 1
    MEDIUM = 2
    LOW = 3

    @property
    def label(self) -> str:
        """The lower-case name used in config files and the CLI."""
        return self.name.lower()


_AMQP = {Priority.HIGH: 9, Priority.MEDIUM: 5, Priority.LOW: 1}
_ACTOR = {Priority.HIGH: 0, Priority.MEDIUM: 10, Priority.LOW: 20}


def parse_priority(value: object) -> Priority:
    """Read a priority from a name (``high``), a number (1) or a :class:`Priority`.

    Raises:
      ValueError: naming the accepted values.
    """
    if isinstance(value, Priority):
        return value
    if isinstance(value, bool):
        raise ValueError(f"invalid priority {value!r}: use high, medium, low or 1, 2, 3")
    if isinstance(value, int):
        try:
            return Priority(value)
        except ValueError:
            pass
    if isinstance(value, str):
        text = value.strip().lower()
        if text.isdigit():
            return parse_priority(int(text))
        for level in Priority:
            if level.label == text:
                return level
    raise ValueError(f"invalid priority {value!r}: use high, medium, low or 1, 2, 3")


def amqp_priority(level: Priority) -> int:
    """The RabbitMQ message priority (higher first) for ``level``."""
    return _AMQP[level]


def actor_priority(level: Priority) -> int:
    """Dramatiq's actor priority (lower first) for ``level``."""
    return _ACTOR[level]


def from_amqp(value: int | None) -> Priority:
    """The nearest level to an AMQP priority (``medium`` when there is none)."""
    if value is None:
        return Priority.MEDIUM
    return min(Priority, key=lambda level: abs(_AMQP[level] - value))


#: What the history records for a message delivered without an AMQP priority (or with 0):
#: RabbitMQ ranks it 0, below ``low`` (1), so it is served after every job of ours.
UNSET = "none"


def delivered_label(value: int | None) -> str:
    """The history's name for the AMQP priority a message was really delivered with.

    ``none`` for no priority or 0 (served after ``low``); otherwise the nearest
    level (9 ``high``, 5 ``medium``, 1 ``low``).
    """
    if not value:
        return UNSET
    label = _DELIVERED.get(value)
    return label if label is not None else from_amqp(value).label


#: Every AMQP priority's level name (an octet: 1-255), looked up once per delivery by the history.
_DELIVERED = {value: from_amqp(value).label for value in range(1, 256)}
