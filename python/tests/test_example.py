"""examples/fraud.py runs end to end against a server of its own."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO

# The package under test, whether or not it is installed.
ENV = {**os.environ, "PYTHONPATH": str(REPO / "python")}


def test_the_fraud_example_runs_end_to_end(own_server):
    run = subprocess.run(
        [sys.executable, str(REPO / "examples" / "fraud.py"), "--dsn", own_server, "--rows", "30000"],
        capture_output=True,
        text=True,
        timeout=600,
        env=ENV,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "DuckDB gives the same training set: True" in run.stdout, run.stdout
    assert "training AUC:" in run.stdout and "p_fraud" in run.stdout
    again = subprocess.run(
        [sys.executable, str(REPO / "examples" / "fraud.py"), "--dsn", own_server, "--rows", "1000"],
        capture_output=True,
        text=True,
        timeout=600,
        env=ENV,
    )
    assert again.returncode != 0 and "--reset" in again.stderr
