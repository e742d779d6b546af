"""`python -m abuse --short`: every attack briefly against a real server process, on each
path; the server passes its checks (probes answered, delivery on time, memory back, nothing
lost)."""

import subprocess
import sys

import pytest

from harness import ROOT, path_flags


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_short_abuse_suite_passes(path: str) -> None:
    flags = " ".join(path_flags(path))
    result = subprocess.run(
        [sys.executable, "-m", "abuse", "--short", "--server-flags", flags],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    assert "rapid-reset" in result.stdout


def test_attacks_are_registered_once_each() -> None:
    from abuse.harness import registered

    names = [attack.name for attack in registered()]
    assert "rapid-reset" in names
    assert len(names) == len(set(names))
