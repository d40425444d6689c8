"""The fixes of :mod:`broker_jobs.compat`, and what they rely on in the installed libraries.

A Dramatiq upgrade that changes its worker-process signal handler fails here, so
the group-stop fix is checked again (``tests/framework/scaleout/test_group_stop.py`` runs it
on real workers).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from types import CodeType

import dramatiq.cli

from broker_jobs import compat


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_copy_of_the_stop_signal_within_the_window_is_not_passed_on_a_later_one_is():
    calls: list[int] = []
    clock = Clock()
    one = compat.OneStop(lambda signum, frame: calls.append(signum), window=2.0, clock=clock)
    one(signal.SIGTERM, None)
    assert calls == [signal.SIGTERM], "the first stops"
    clock.now += 0.001
    one(signal.SIGTERM, None)  # forwarded by the master: the same stop
    clock.now += 1.9
    one(signal.SIGHUP, None)
    assert calls == [signal.SIGTERM], "copies within the window count once"
    clock.now += 0.2  # 2.101 s after the first: someone means it
    one(signal.SIGTERM, None)
    assert calls == [signal.SIGTERM, signal.SIGTERM]


def test_the_installed_dramatiq_still_has_the_worker_handler_the_fix_wraps():
    assert compat.dramatiq_major() in compat.CHECKED_DRAMATIQ_MAJORS, (
        f"Dramatiq {dramatiq.__version__}: check its worker_process signal handling, then CHECKED_DRAMATIQ_MAJORS")
    module, qualname = compat.DRAMATIQ_WORKER_HANDLER
    assert dramatiq.cli.__name__ == module
    nested = [c for c in dramatiq.cli.worker_process.__code__.co_consts if isinstance(c, CodeType)]
    assert qualname in {c.co_qualname for c in nested}
    # The behaviour the fix exists for: a second signal kills.
    [handler] = [c for c in nested if c.co_qualname == qualname]
    assert "Killing worker process..." in handler.co_consts


def test_the_fix_wraps_only_dramatiqs_worker_handler():
    before = signal.getsignal(signal.SIGTERM)
    assert compat.install_one_stop() is False  # pytest's process: not a Dramatiq worker process
    assert signal.getsignal(signal.SIGTERM) is before


def test_in_a_process_with_dramatiqs_worker_handler_importing_the_broker_wraps_it_once():
    # Dramatiq's own handler, made the way worker_process makes it, then the broker module imported.
    code = textwrap.dedent("""
        import signal, types, dramatiq.cli
        from broker_jobs import compat
        [code] = [c for c in dramatiq.cli.worker_process.__code__.co_consts
                  if isinstance(c, types.CodeType) and c.co_name == "termhandler"]
        cell = types.CellType(True)
        handler = types.FunctionType(code, dramatiq.cli.__dict__, "termhandler", None, (cell,) * len(code.co_freevars))
        handler.__qualname__ = code.co_qualname
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGHUP, handler)
        import broker_jobs.broker
        wrapped = signal.getsignal(signal.SIGTERM)
        assert isinstance(wrapped, compat.OneStop) and wrapped.handler is handler
        assert signal.getsignal(signal.SIGHUP) is wrapped
        assert compat.install_one_stop() is False  # once
        print("wrapped")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "wrapped", result.stderr
