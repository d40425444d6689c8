"""Fault 6: a memory alarm blocks publishers: `broker-jobs send` reports it and exits, never hangs."""

from __future__ import annotations

import time

import pytest

from tests.support import run_cli, wait_for

pytestmark = pytest.mark.rabbitmq


def test_a_memory_alarm_makes_send_exit_non_zero_with_one_line_and_recovery_needs_nothing(
        rabbit, fault_env):
    env = {**fault_env, "PUBLISH_TIMEOUT": "2"}
    started = time.monotonic()
    assert run_cli("send", "diagnostics", env=env).returncode == 0  # the queues exist, the node is fine
    normal = time.monotonic() - started

    rabbit.set_memory_watermark(0.0001)
    wait_for(lambda: "memory" in rabbit.eval("rabbit_alarm:get_alarms()."), "the memory alarm")
    started = time.monotonic()
    blocked = run_cli("send", "diagnostics", env=env, timeout=120)
    waited = time.monotonic() - started
    print(f'{{"test": "memory alarm", "send_exit": {blocked.returncode}, "seconds_to_report": {waited:.1f}, '
          f'"seconds_for_a_normal_send": {normal:.1f}}}')

    assert blocked.returncode == 4
    lines = blocked.stderr.strip().splitlines()
    assert len(lines) == 1, blocked.stderr
    assert "blocking publishers" in lines[0] and "PUBLISH_TIMEOUT=2" in lines[0]
    assert blocked.stdout == ""

    rabbit.set_memory_watermark(0.4)
    wait_for(lambda: "memory" not in rabbit.eval("rabbit_alarm:get_alarms()."), "the alarm to clear")
    again = run_cli("send", "diagnostics", env=env)
    assert again.returncode == 0, again.stderr
