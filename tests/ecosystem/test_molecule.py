"""The molecule scenarios (molecule/<role>/): ``molecule test -s <role>`` for each role.

Each runs create → converge → idempotence → verify → destroy on localhost through
tests/ecosystem/run_molecule.py (private mount namespace, the checkout's collection); the
behaviour checks live in each scenario's verify.yml. Afterwards nothing may be left: no work
directory below /var/tmp, no server still running from it.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_molecule import SCENARIOS, run_scenario  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the scenarios need root (chroot, mounts, servers)")


def processes_mentioning(path: str) -> list[str]:
    """Command lines of running processes that name ``path`` (servers a destroy missed)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if path in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(scenario):
    work = f"/var/tmp/molecule-{scenario}"
    result = run_scenario(scenario)
    output = result["stdout"][-12000:] + "\n--- stderr\n" + result["stderr"][-6000:]
    assert result["rc"] == 0, output
    # molecule itself reports the sequence it ran; every step must have run and succeeded.
    for action in ("create", "converge", "idempotence", "verify", "destroy"):
        assert f"[{scenario} > {action}] Executed: Successful" in result["stderr"], output
    assert not Path(work).exists(), f"destroy left {work} behind"
    assert processes_mentioning(work) == [], "servers left running"
