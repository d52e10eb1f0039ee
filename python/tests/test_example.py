"""examples/fraud.py runs end to end against a server of its own."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO

# The package under test, whether or not it is installed.
ENV = {**os.environ, "PYTHONPATH": str(REPO / "python")}


def example(dsn: str, rows: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "examples" / "fraud.py"), "--dsn", dsn, "--rows", str(rows)],
        capture_output=True,
        text=True,
        timeout=600,
        env=ENV,
    )


def test_the_fraud_example_runs_end_to_end(own_server):
    run = example(own_server, 30_000)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "DuckDB gives the same training set: True" in run.stdout, run.stdout
    assert "training AUC:" in run.stdout and "p_fraud" in run.stdout
    # A second run refuses to drop the table the first made.
    again = example(own_server, 1_000)
    assert again.returncode != 0 and "--reset" in again.stderr
