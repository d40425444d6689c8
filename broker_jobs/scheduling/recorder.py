"""Recording a tick: each job's last slot, the audit rows and the open fires, in one fenced transaction.

The leader remembers each job's last slot (where the next tick starts), its last
outcome and its last fire.  After a confirmed publish these go to the database
with the audit rows and the open fires in one transaction that shows the
leader's fencing token: a deposed leader's write is refused and it steps down.
Rows the database could not take are kept and written with the next ones.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from ..clock import as_utc
from ..store.scheduler_state import FencedOut
from .lease_keeper import LeaseKeeper
from .planning import Planned, log_outcome

if TYPE_CHECKING:
    from sqlalchemy import Row as StateRow

Row = dict[str, Any]


class RecordStore(Protocol):
    """The part of :class:`~broker_jobs.store.scheduler_state.SchedulerStore` the recorder writes to."""

    def states(self) -> dict[str, StateRow[Any]]:
        """Each job's recorded state."""
        ...

    def close_fires(self, fire_ids: list[str]) -> None:
        """Close the open fires (superseded runs)."""
        ...

    def commit(self, *, token: int | None, states: list[Row], audit: list[Row], fires: list[Row]) -> None:
        """Write states, audit rows and open fires in one transaction fenced by ``token``."""
        ...


@dataclass
class _Unsaved:
    states: dict[str, Row] = field(default_factory=dict)
    audit: list[Row] = field(default_factory=list)
    fires: list[Row] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.states or self.audit or self.fires)


class Recorder:
    """The leader's memory of each job's last slot and fire, and its fenced writes.

    Parameters:
      store: The shared scheduler state.
      keeper: The lease keeper (its token fences the writes; a refused write makes it step down).
      report: Called with a line when the database cannot take the rows yet.
      observe: Called with ``(job_id, slot, lag, outcome)`` for every recorded slot (the metrics).
    """

    def __init__(self, store: RecordStore, keeper: LeaseKeeper, *, report: Callable[[str], None],
                 observe: Callable[[str, datetime, float, str], None]) -> None:
        self.store, self.keeper = store, keeper
        self._report, self._observe = report, observe
        self.last_slot: dict[str, datetime] = {}
        self.last_outcome: dict[str, str | None] = {}
        self.last_fired: dict[str, tuple[str | None, str | None, datetime | None]] = {}
        self._unsaved = _Unsaved()

    def load(self) -> None:
        """Read every job's state from the database and drop unsaved rows (a new leadership)."""
        self._unsaved = _Unsaved()
        states = self.store.states()
        self.last_slot = {i: s for i, r in states.items() if (s := as_utc(r.last_slot)) is not None}
        self.last_outcome = {i: r.last_outcome for i, r in states.items()}
        self.last_fired = {i: (r.last_fire_id, r.last_message_id, as_utc(r.last_fired_at)) for i, r in states.items()}

    def start(self, job_ids: Iterable[str], now: datetime, restart: Container[str] = frozenset()) -> dict[str, Row]:
        """Jobs new to the leader (or in ``restart``: rescheduled) start at ``now``, without catch-up.

        Returns:
          Their state rows, for :meth:`save`.
        """
        fresh = {}
        for job_id in job_ids:
            if job_id not in self.last_slot or job_id in restart:
                self.last_slot[job_id] = now
                fresh[job_id] = self._state_row(job_id)
        return fresh

    def _state_row(self, job_id: str) -> Row:
        fired = self.last_fired.get(job_id, (None, None, None))
        return {"job_id": job_id, "last_slot": self.last_slot[job_id], "last_outcome": self.last_outcome.get(job_id),
                "last_fire_id": fired[0], "last_message_id": fired[1], "last_fired_at": fired[2],
                "token": self.keeper.token}

    def record(self, plans: list[Planned], confirmed: datetime) -> list[str]:
        """Record a published tick's decisions; returns the jobs whose next slot is to be pushed."""
        token = self.keeper.token
        states: dict[str, Row] = {}
        audit: list[Row] = []
        fires: list[Row] = []
        closed: list[str] = []
        for plan in plans:
            job, out = plan.job, plan.out
            lag = (confirmed - plan.slot).total_seconds() if out is not None and plan.slot else 0.0
            audit.append({"job_id": job.id, "slot": plan.slot, "outcome": plan.outcome,
                          "fire_id": out.fire_id if out else plan.superseded,
                          "message_id": out.message_id if out else None, "lag_ms": lag * 1000 if out else None,
                          "detail": plan.detail, "token": token, "recorded_at": confirmed})
            if plan.superseded:
                closed.append(plan.superseded)
                continue
            self.last_outcome[job.id] = plan.outcome
            if out is not None:
                self.last_fired[job.id] = (out.fire_id, out.message_id, confirmed)
                fires.append({"fire_id": out.fire_id, "job_id": job.id, "message_id": out.message_id,
                              "published_at": confirmed})
            states[job.id] = self._state_row(job.id)
            log_outcome(plan, lag)
            if plan.slot is not None:
                self._observe(job.id, plan.slot, lag, plan.outcome)
        if closed:
            self.store.close_fires(closed)
        self.save(states=states, audit=audit, fires=fires)
        return list(states)

    @property
    def unsaved(self) -> bool:
        """State or audit rows are waiting for the database."""
        return bool(self._unsaved.states or self._unsaved.audit)

    def save(self, states: Mapping[str, Row] | None = None, audit: list[Row] | None = None,
             fires: list[Row] | None = None) -> None:
        """Write these rows and the ones kept from before, fenced by the leader's token."""
        unsaved = self._unsaved
        unsaved.states.update(states or {})
        unsaved.audit += audit or []
        unsaved.fires += fires or []
        token = self.keeper.token
        if token is None or not unsaved:
            return
        try:
            self.store.commit(token=token, states=list(unsaved.states.values()), audit=unsaved.audit,
                              fires=unsaved.fires)
        except FencedOut as exc:
            self.keeper.step_down(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - the database is down: keep the rows, write them later
            self._report(f"cannot record slots yet: {exc!r}")
            return
        self._unsaved = _Unsaved()
