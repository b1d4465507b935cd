#!/usr/bin/env python3
"""An idempotent re-run of playbooks/build_chroot.yml on ready chroots, per chroot.

Sets up a real served mirror (mirror_server role, signed snapshot of the test stage's
repository, git daemon and nginx on 127.0.0.1) and ``--chroots`` chroots from the test stage
with ``build_host_build=false`` (unpacked, tree and overlay pinned, configured: "ready"), then
re-runs the playbook ``--runs`` times on 1 chroot and on all of them. A callback
(bench/callback_plugins/task_timer.py) records every task's duration; the time of the tasks of
the per-chroot task files (chroot, configure, repository, build) divided by the number of
chroots is the per-chroot time (target <= 1 s). The anchor, run in the same process, is
``ansible-playbook`` of a one-task play on the same inventory: the fixed cost of any run.
Every re-run must report changed=0; nothing is asserted about time.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "fixtures")]

from buildenv import ServedMirror, mounts_below, run_build  # noqa: E402
from snapmirror import GENTOO_UID, make_signing_key  # noqa: E402
from stage_repo import stage_repo_tree  # noqa: E402
from teststage import build_stage  # noqa: E402

TARGET = 1.0
PER_CHROOT_FILES = {"chroot.yml", "configure.yml", "repository.yml", "build.yml"}
ANCHOR_PLAY = """\
- name: Anchor, the fixed cost of a playbook run
  hosts: buildhost
  gather_facts: false
  tasks:
    - name: One task
      ansible.builtin.debug:
        msg: anchor
"""


def timed_run(extra_vars: dict, playbook: str | None = None) -> tuple[float, list[dict], dict]:
    with tempfile.NamedTemporaryFile("r", suffix=".json") as times:
        env = {"ANSIBLE_CALLBACK_PLUGINS": str(ROOT / "bench/callback_plugins"),
               "ANSIBLE_CALLBACKS_ENABLED": "task_timer", "GBH_TASK_TIMES": times.name}
        t0 = time.monotonic()
        kwargs = {"playbook": playbook} if playbook else {}
        proc, recap = run_build(extra_vars, env=env, **kwargs)
        wall = time.monotonic() - t0
        if proc.returncode != 0:
            raise SystemExit("run failed:\n" + proc.stdout[-4000:] + proc.stderr[-2000:])
        records = json.loads(times.read() or "[]")
    return wall, records, recap


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chroots", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()

    stage = build_stage()
    root = Path(tempfile.mkdtemp(prefix="bench-rerun-", dir="/var/tmp"))
    root.chmod(0o755)
    failures = []
    result: dict = {"chroots": args.chroots, "runs": args.runs}
    try:
        with make_signing_key(uid=GENTOO_UID) as key, \
                ServedMirror(root, key, [("20250106", stage_repo_tree(0))]) as mirror:
            overlay = make_overlay(root / "overlay")
            chroots = [{"name": f"c{i}", "snapshot": "2025-01-06",
                        "stage": {"src": str(stage.tarball), "key": str(stage.pubkey),
                                  "fingerprint": stage.fingerprint},
                        "overlays": [{"name": "benchoverlay", "url": str(overlay), "version": "main"}],
                        "make_conf": {"MAKEOPTS": "-j2"}}
                       for i in range(args.chroots)]
            t0 = time.monotonic()
            setup_wall, _records, recap = timed_run(mirror.build_vars(chroots, build_host_build=False))
            print(f"setup of {args.chroots} chroots (unpack, clone, configure): {setup_wall:.1f} s, "
                  f"changed={recap.get('changed')}")
            with tempfile.NamedTemporaryFile("w", suffix=".yml", prefix="anchor-") as play:
                play.write(ANCHOR_PLAY)
                play.flush()
                anchor = [timed_run({}, play.name)[0] for _ in range(args.runs)]
            rows = {}
            for n in sorted({1, args.chroots}):
                walls, per_chroot, module_sums = [], [], []
                for _ in range(args.runs):
                    wall, records, recap = timed_run(mirror.build_vars(chroots[:n], build_host_build=False))
                    if recap.get("changed") != 0:
                        failures.append(f"re-run on {n} chroots changed {recap.get('changed')} tasks")
                    mine = [r for r in records if r["file"] in PER_CHROOT_FILES]
                    walls.append(wall)
                    per_chroot.append(sum(r["seconds"] for r in mine) / n)
                    module_sums.append(sum(r["seconds"] for r in mine if "." in r["action"]
                                           and r["action"].startswith("gentoo_binhost.")) / n)
                    slowest = sorted(mine, key=lambda r: -r["seconds"])[:5]
                rows[n] = {"wall": statistics.median(walls), "per_chroot_tasks": statistics.median(per_chroot),
                           "per_chroot_collection_modules": statistics.median(module_sums),
                           "tasks_per_chroot": len(mine) / n,
                           "slowest": [(r["name"], r["seconds"]) for r in slowest]}
            result.update(anchor=statistics.median(anchor), rows=rows, bench_seconds=time.monotonic() - t0)
    finally:
        left = mounts_below(root)
        if left:
            failures.append(f"mounts left behind: {left}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    if "rows" in result:
        a = result["anchor"]
        print(f"\nanchor (one-task playbook): {a:.2f} s")
        print(f"{'chroots':>7} {'wall':>7} {'/anchor':>8} {'tasks/chroot':>13} {'per chroot':>11} {'of which modules':>17}")
        for n, row in result["rows"].items():
            print(f"{n:>7} {row['wall']:>6.2f}s {row['wall'] / a:>7.2f}x {row['tasks_per_chroot']:>13.0f} "
                  f"{row['per_chroot_tasks']:>10.2f}s {row['per_chroot_collection_modules']:>16.2f}s")
        n_max = max(result["rows"])
        per = result["rows"][n_max]["per_chroot_tasks"]
        if n_max > 1:
            marginal = (result["rows"][n_max]["wall"] - result["rows"][1]["wall"]) / (n_max - 1)
            result["marginal_wall_per_chroot"] = marginal
            print(f"marginal wall time per extra chroot: {marginal:.2f} s")
        print(f"\nper-chroot task time of an idempotent re-run: {per:.2f} s (target <= {TARGET:.1f} s): "
              f"{'PASS' if per <= TARGET else 'MISS'}")
        print("slowest per-chroot tasks (last run): " + ", ".join(
            f"{name} {sec:.2f}s" for name, sec in result["rows"][n_max]["slowest"]))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    for failure in failures:
        print("FAIL: " + failure)
    return 1 if failures else 0


def make_overlay(path: Path) -> Path:
    """A one-commit git overlay with one ebuild (branch main)."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.org",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.org"}
    files = {"profiles/repo_name": "benchoverlay\n", "metadata/layout.conf": "masters = gentoo\n",
             "app-misc/extra/extra-1.ebuild": 'EAPI=8\nDESCRIPTION="x"\nHOMEPAGE="https://example.org"\n'
                                              'S="${WORKDIR}"\nLICENSE="MIT"\nSLOT="0"\nKEYWORDS="amd64"\n'}
    for rel, text in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    for cmd in (["init", "--quiet", "--initial-branch=main"], ["add", "-A"], ["commit", "--quiet", "-m", "one"]):
        subprocess.run(["git", "-C", str(path), *cmd], check=True, env=env)
    return path


if __name__ == "__main__":
    sys.exit(main())
