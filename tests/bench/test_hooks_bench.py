"""``python -m benchmarks.hooks`` (µs of middleware per message) runs and prints its table."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support import ROOT


def test_the_middleware_cost_table_names_every_stack_with_a_positive_figure():
    out = subprocess.run([sys.executable, "-m", "benchmarks.hooks", "--n", "300", "--repeat", "1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = dict(re.findall(r"^\| ([^|]+?) \| ([0-9.]+) \|", out.stdout, re.M))
    assert float(rows["bare Dramatiq (default middleware)"]) > 0
    assert float(rows["broker_jobs full stack"]) > 0
