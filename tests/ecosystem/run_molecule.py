"""Run the collection's molecule scenarios (``molecule test -s <role>``) and time them.

Each scenario lives in ``molecule/<role>/`` and runs on localhost with molecule's default
(delegated) driver: its create playbook builds what the role needs (signed snapshot mirrors,
the test stage, package directories, servers on free 127.0.0.1 ports), destroy stops those by
PID. ``molecule test`` runs as its own child in a private mount namespace (``unshare --mount
--propagation private``): the build_host role mounts proc, /dev and /sys into a chroot, and
nothing it mounts can outlive the run; its verify step checks that the role unmounted
everything itself (inside the namespace, where a forgotten mount would still be visible).

The environment: the venv's bin first on PATH (molecule calls ansible-config,
ansible-playbook), ``MOLECULE_PROJECT_DIRECTORY`` = this checkout (the scenarios put
``<checkout>/.collections`` on the collections path, so ``gentoo_binhost.infra`` resolves from
the checkout), ``ANSIBLE_CONFIG`` of the checkout for anything molecule runs before it writes
its own ansible.cfg (molecule then points ANSIBLE_CONFIG at that one), no colours, and
``MOLECULE_NO_LOG=false`` so that a failure shows the task output.

Usage: ``python tests/ecosystem/run_molecule.py [role ...] [--json FILE]``; prints one line
per scenario with its wall time, and the output of any that failed. Exit status 0 only when
every scenario passed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SCENARIOS = ["mirror_server", "build_host", "binpkg_server", "binpkg_client"]
TIMEOUT = 1200


def molecule_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in [k for k in env if k.startswith("MOLECULE_")]:
        del env[name]  # e.g. a MOLECULE_EPHEMERAL_DIRECTORY would be shared by every scenario
    env.update({
        "PATH": f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}",
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "NO_COLOR": "1",
        "PY_COLORS": "0",
        "MOLECULE_PROJECT_DIRECTORY": str(ROOT),
        "MOLECULE_NO_LOG": "false",
    })
    return env


def run_scenario(name: str, timeout: int = TIMEOUT) -> dict:
    """``molecule test -s name`` in a private mount namespace; its result and wall time."""
    cmd = ["unshare", "--mount", "--propagation", "private",
           str(BIN / "molecule"), "test", "--scenario-name", name]
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=molecule_env(), capture_output=True, text=True,
                              timeout=timeout, check=False)
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc = -1
        out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = f"timed out after {timeout} s"
    return {"scenario": name, "rc": rc, "seconds": round(time.monotonic() - start, 1),
            "command": " ".join(cmd), "stdout": out, "stderr": err}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("scenarios", nargs="*", default=SCENARIOS, metavar="ROLE",
                        help="scenarios to run (default: all, in this order: %s)" % ", ".join(SCENARIOS))
    parser.add_argument("--json", type=Path, help="also write the results (with the output) here")
    parser.add_argument("--timeout", type=int, default=TIMEOUT, help="seconds per scenario")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"no such scenario: {', '.join(unknown)} (there are {', '.join(SCENARIOS)})")
    if os.geteuid() != 0:
        parser.error("needs root: the scenarios unpack stages, chroot and mount")
    results = []
    for name in args.scenarios:
        print(f"--- molecule test -s {name}", flush=True)
        result = run_scenario(name, args.timeout)
        results.append(result)
        status = "passed" if result["rc"] == 0 else f"FAILED (rc={result['rc']})"
        print(f"{name:15s} {status:20s} {result['seconds']:7.1f} s", flush=True)
        if result["rc"] != 0:
            print(result["stdout"][-20000:], result["stderr"][-10000:], sep="\n", flush=True)
    total = sum(r["seconds"] for r in results)
    print(f"{'total':15s} {'':20s} {total:7.1f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0 if all(r["rc"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
