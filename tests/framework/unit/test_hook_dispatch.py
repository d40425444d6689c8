"""JobsBroker calls each hook only on the middleware that implement it, as Dramatiq would."""

from __future__ import annotations

import dramatiq
import pytest
from dramatiq.middleware import SkipMessage

from broker_jobs.broker import JobsBroker


class Recorder(dramatiq.Middleware):
    def __init__(self, name: str, calls: list[str], fail: BaseException | None = None) -> None:
        self.name, self.calls, self.fail = name, calls, fail

    def before_process_message(self, broker, message):  # type: ignore[no-untyped-def]
        self.calls.append(f"before:{self.name}")
        if self.fail is not None:
            raise self.fail

    def after_process_message(self, broker, message, *, result=None, exception=None):  # type: ignore[no-untyped-def]
        self.calls.append(f"after:{self.name}")


class Silent(dramatiq.Middleware):
    """Implements no hook: never called."""


def broker(*middleware: dramatiq.Middleware) -> JobsBroker:
    return JobsBroker(url="amqp://guest:guest@127.0.0.1:1/%2F", middleware=list(middleware))


def test_before_hooks_run_in_stack_order_and_after_hooks_in_reverse():
    calls: list[str] = []
    b = broker(Recorder("a", calls), Silent(), Recorder("b", calls))
    b.emit_before("process_message", None)
    b.emit_after("process_message", None, result=None)
    assert calls == ["before:a", "before:b", "after:b", "after:a"]
    assert b._hook("before_ack") == []


def test_a_middleware_added_after_a_signal_was_sent_is_called_from_then_on():
    calls: list[str] = []
    b = broker(Recorder("a", calls))
    b.emit_before("process_message", None)
    b.add_middleware(Recorder("late", calls))
    b.emit_before("process_message", None)
    b.middleware[:] = b.middleware[1:]  # a stack changed in place is noticed by its length
    b.emit_before("process_message", None)
    assert calls == ["before:a", "before:a", "before:late", "before:late"]


def test_a_failing_hook_is_logged_and_the_rest_run_but_a_middleware_error_stops_the_message():
    calls: list[str] = []
    b = broker(Recorder("boom", calls, RuntimeError("boom")), Recorder("next", calls))
    b.emit_before("process_message", None)
    assert calls == ["before:boom", "before:next"]
    calls.clear()
    b = broker(Recorder("skip", calls, SkipMessage()), Recorder("next", calls))
    with pytest.raises(SkipMessage):
        b.emit_before("process_message", None)
    assert calls == ["before:skip"]


def test_a_delivery_reads_its_fields_without_the_proxy_and_still_shares_its_options():
    from dramatiq.broker import MessageProxy
    from dramatiq.message import Message

    seen: list[object] = []

    class Reader(dramatiq.Middleware):
        def before_process_message(self, broker, message):  # type: ignore[no-untyped-def]
            seen.append(message.__dict__.get("options"))
            message.options["marked"] = True

    inner = Message(queue_name="q", actor_name="a", args=(1,), kwargs={"k": 2}, options={"retries": 1})
    delivery = MessageProxy(inner)
    broker(Reader()).emit_before("process_message", delivery)
    assert seen == [inner.options]  # plain attributes by the time middleware run
    assert inner.options["marked"] is True  # one dict: what middleware write, the message carries
    for name in ("queue_name", "actor_name", "args", "kwargs", "message_id", "message_timestamp"):
        assert getattr(delivery, name) == getattr(inner, name)
