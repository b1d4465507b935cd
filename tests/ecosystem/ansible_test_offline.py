"""Run ``ansible-test`` on this collection offline, from a throwaway collection layout.

ansible-test only runs inside ``.../ansible_collections/<namespace>/<name>``, and it must never
run in the checkout itself (its ``tests/output`` and delegation venvs would land there, and the
checkout's ``.collections`` symlink loops back into the tree). So this script:

1. copies the collection's files -- git's tracked files plus untracked, not ignored ones, minus
   galaxy.yml's ``build_ignore`` (what ``ansible-galaxy collection build`` would ship) and minus
   the project's pytest harness and benchmarks (``HARNESS`` below) -- into
   ``<tmp>/ansible_collections/gentoo_binhost/infra``;
2. writes an offline stand-in for the get-pip script ansible-test bootstraps its venvs with
   (it downloads the real one from a host a CI machine without general internet cannot reach):
   ``python -m ensurepip``, then ``python -m pip install`` of the packages ansible-test asks for;
3. runs ``ansible-test <command> --venv --python X.Y`` there and reports the wall time, with the
   ansible-test of this venv's ansible-core or, with ``--ansible-core 2.N``, of that minor
   version (installed once into a venv of its own). ``units`` also gets the fixtures the unit
   tests build their inputs with (``UNITS_HARNESS``) and installs tests/unit/requirements.txt.

Usage::

    .venv/bin/python tests/ecosystem/ansible_test_offline.py sanity [ansible-test args...]
    .venv/bin/python tests/ecosystem/ansible_test_offline.py units [ansible-test args...]
    .venv/bin/python tests/ecosystem/ansible_test_offline.py sanity --with-harness  # see HARNESS
    .venv/bin/python tests/ecosystem/ansible_test_offline.py units --ansible-core 2.17
    .venv/bin/python tests/ecosystem/ansible_test_offline.py sanity --ansible-core claimed  # meta/runtime.yml's

Requirements for the sanity venvs come from PyPI (the only index reachable); ansible-test keeps
those venvs in ``~/.ansible/test/venv``, so only the first run on a machine is slow.
"""
from __future__ import annotations

import argparse
import fcntl
import fnmatch
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# Where the ansible-test of each other ansible-core minor version gets its venv (made once).
CORE_VENVS = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gentoo_binhost.infra"

# Developer tooling that only ever runs in the project's own venv under pytest (Python 3.11,
# Portage, python-gnupg, the fixtures on sys.path), never on a managed host or in a controller's
# collection: the integration tests, the fixtures and the benchmarks.
# ansible-test's code rules for content that ships to hosts (no ``_`` variable, explicit
# ``check=`` for subprocess.run, allowed shebangs...) are not this code's rules, so it is left
# out of the layout rather than listed line by line in an ignore file. ``--with-harness`` puts
# it back to see those findings. What is tested: plugins/, roles/, playbooks/, meta/, docs,
# changelogs and the tests written for ansible-test (tests/unit/, tests/sanity/) and this
# directory (tests/ecosystem/).
HARNESS = ("bench", "tests/conftest.py", "tests/fixtures", "tests/integration")

# What ``units`` needs of the harness: the unit tests build their inputs with the fixture
# builders (real git repositories, PKGDIRs, signed snapshots), which tests/conftest.py puts on
# sys.path; ansible-test's pytest loads that conftest because it sits between its rootdir (the
# collection root) and tests/unit. Sanity still never sees them.
UNITS_HARNESS = ("tests/conftest.py", "tests/fixtures")

# get-pip.py is called as ``python get_pip_X_Y.py [pip options] <package==version>...``; these
# two options belong to get-pip only (pip install does not know them).
GET_PIP_STANDIN = '''\
"""Offline stand-in for get-pip.py, written by gentoo_binhost.infra's tests/ecosystem/ansible_test_offline.py.

ansible-test bootstraps pip into each venv it creates with a get-pip.py it downloads; without
that host, ``ensurepip`` plus ``pip install`` of the same pinned packages does the same job.
"""
import subprocess
import sys

GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")

args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
if any(not arg.startswith("-") for arg in args):
    subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
'''


def collection_name(root: Path = ROOT) -> tuple[str, str]:
    galaxy = yaml.safe_load((root / "galaxy.yml").read_text())
    return galaxy["namespace"], galaxy["name"]


def build_ignored(path: str, patterns: list[str]) -> bool:
    """True when ``path`` or one of its parent directories matches a build_ignore pattern."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))] + [parts[-1]]
    return any(fnmatch.fnmatch(candidate, pattern) for pattern in patterns for candidate in candidates)


def left_out(command: str, *, with_harness: bool = False) -> tuple[str, ...]:
    """The ``HARNESS`` entries the layout for ``command`` leaves out."""
    if with_harness:
        return ()
    if command == "units":
        return tuple(path for path in HARNESS if path not in UNITS_HARNESS)
    return HARNESS


def collection_files(root: Path = ROOT, *, leave_out: tuple[str, ...] = HARNESS) -> list[str]:
    """The files the collection consists of: tracked or new (not git-ignored), minus build_ignore
    and minus ``leave_out`` (by default the whole ``HARNESS``)."""
    listed = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True, capture_output=True,
    ).stdout.decode().split("\0")
    patterns = list(yaml.safe_load((root / "galaxy.yml").read_text()).get("build_ignore") or [])
    patterns += leave_out
    files = []
    for path in sorted(set(filter(None, listed))):
        # Tracked but deleted in the work tree: not part of what is being tested.
        if not os.path.lexists(root / path) or build_ignored(path, patterns):
            continue
        files.append(path)
    return files


def make_layout(dest: Path, root: Path = ROOT, *, leave_out: tuple[str, ...] = HARNESS) -> Path:
    """Copy the collection to ``dest/ansible_collections/<ns>/<name>``; returns that directory."""
    namespace, name = collection_name(root)
    target = dest / "ansible_collections" / namespace / name
    for path in collection_files(root, leave_out=leave_out):
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / path, target / path, follow_symlinks=False)
    return target


def claimed_core_versions(root: Path = ROOT) -> tuple[str, ...]:
    """The ansible-core minor versions meta/runtime.yml's ``requires_ansible: ">=2.N.0"`` admits,
    up to the one in this venv (the newest that runs on this Python): what CI tests."""
    claim = str(yaml.safe_load((root / "meta" / "runtime.yml").read_text())["requires_ansible"])
    lowest = re.fullmatch(r">=\s*2\.([0-9]+)(\.[0-9]+)?", claim.strip())
    if not lowest:
        raise SystemExit(f"meta/runtime.yml: requires_ansible {claim!r} is not \">=2.N.0\"; update {__file__}")
    newest = int(importlib.metadata.version("ansible-core").split(".")[1])
    return tuple(f"2.{minor}" for minor in range(int(lowest.group(1)), newest + 1))


def ansible_core_bin(version: str | None = None) -> Path:
    """The bin directory holding the ansible-test of ansible-core ``version`` ("2.16"; None: the
    one in this venv). Each other minor gets its own venv with the newest patch release from the
    package index, made once and reused: ``~/.cache/gentoo_binhost.infra/ansible-core-X.Y``."""
    if version is None or version == installed_core_minor(BIN):
        return BIN
    if not re.fullmatch(r"2\.[0-9]+", version):
        raise SystemExit(f"--ansible-core wants a minor version such as 2.16, not {version!r}")
    venv = CORE_VENVS / f"ansible-core-{version}"
    CORE_VENVS.mkdir(parents=True, exist_ok=True)
    with open(CORE_VENVS / f".ansible-core-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two runs at once: the second waits, then reuses it
        done = venv / ".installed"
        if not done.exists():
            print(f"creating {venv} (ansible-core=={version}.*)", flush=True)
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                            "--disable-pip-version-check", f"ansible-core=={version}.*"], check=True)
            done.write_text(installed_core_minor(venv / "bin") + "\n")
    return venv / "bin"


def installed_core_minor(bin_dir: Path) -> str:
    """The ansible-core minor version ("2.19") installed next to ``bin_dir``'s Python."""
    return ".".join(ansible_test_source(bin_dir, "version").split(".")[:2])


def ansible_test_source(bin_dir: Path, what: str) -> str:
    """``what`` of the ansible-core beside ``bin_dir``'s Python: "version" or "ansible_test"
    (the directory of its ansible_test package), asked of that Python."""
    code = {"version": "from ansible.release import __version__ as v; print(v)",
            "ansible_test": "import ansible_test, os; print(os.path.dirname(ansible_test.__file__))"}[what]
    return subprocess.run([str(bin_dir / "python"), "-c", code], check=True,
                          capture_output=True, text=True).stdout.strip()


def pip_bootstrap_version(bin_dir: Path = BIN) -> str:
    """The pip version whose get-pip script the ansible-test in ``bin_dir`` looks for in its cache."""
    source = Path(ansible_test_source(bin_dir, "ansible_test")) / "_internal" / "python_requirements.py"
    found = re.search(r"default_packages = dict\(\s*pip='([0-9.]+)'", source.read_text())
    if not found:
        raise SystemExit(f"cannot find the pip bootstrap version in {source}; update {__file__}")
    return found.group(1)


def install_get_pip_standin(bin_dir: Path = BIN) -> Path:
    """Write the stand-in where ansible-test looks for a cached get-pip script (no download then)."""
    version = pip_bootstrap_version(bin_dir)
    path = Path.home() / ".ansible" / "test" / "cache" / f"get_pip_{version.replace('.', '_')}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != GET_PIP_STANDIN:
        path.write_text(GET_PIP_STANDIN)
    return path


def run_ansible_test(command: str, args: list[str], *, python: str, workdir: Path,
                     keep_output: Path | None = None, with_harness: bool = False,
                     ansible_core: str | None = None) -> tuple[int, float]:
    """``ansible-test <command> --venv --python <python> <args>`` in a fresh layout in ``workdir``,
    with the ansible-test of ansible-core ``ansible_core`` (X.Y; default: this venv's).

    Returns the exit status and the wall time in seconds of ansible-test itself.
    """
    bin_dir = ansible_core_bin(ansible_core)
    install_get_pip_standin(bin_dir)
    layout = make_layout(workdir, leave_out=left_out(command, with_harness=with_harness))
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}"
    env.pop("ANSIBLE_CONFIG", None)  # the checkout's ansible.cfg points at the checkout
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    cmd = [str(bin_dir / "ansible-test"), command, "--venv", "--python", python, "--color", "no", *args]
    print("+ (cd %s && %s)" % (layout, " ".join(cmd)), flush=True)
    started = time.monotonic()
    rc = subprocess.run(cmd, cwd=layout, env=env, check=False).returncode
    elapsed = time.monotonic() - started
    if keep_output is not None and (layout / "tests" / "output").exists():
        shutil.rmtree(keep_output, ignore_errors=True)
        shutil.copytree(layout / "tests" / "output", keep_output, symlinks=True)
    print(f"ansible-test {command} (ansible-core {installed_core_minor(bin_dir)}): rc={rc}, {elapsed:.1f} s",
          flush=True)
    return rc, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("command", choices=["sanity", "units"])
    parser.add_argument("--python", default="%d.%d" % sys.version_info[:2],
                        help="Python version for ansible-test's venvs (default: this one)")
    parser.add_argument("--keep-output", type=Path,
                        help="copy the layout's tests/output (junit, reports) here afterwards")
    parser.add_argument("--with-harness", action="store_true",
                        help="also test the pytest harness and benchmarks (see HARNESS; expect findings)")
    parser.add_argument("--workdir", type=Path,
                        help="build the layout here (kept) instead of a temporary directory")
    parser.add_argument("--ansible-core", metavar="X.Y",
                        help="run the ansible-test of this ansible-core minor version (a venv of its own"
                             " below %s, made on first use; default: this venv's), or 'claimed': each"
                             " version meta/runtime.yml admits, in turn" % CORE_VENVS)
    options, rest = parser.parse_known_args(argv)
    versions = claimed_core_versions() if options.ansible_core == "claimed" else [options.ansible_core]
    failed = []
    for version in versions:
        run = dict(python=options.python, keep_output=options.keep_output, with_harness=options.with_harness,
                   ansible_core=version)
        if options.workdir:
            options.workdir.mkdir(parents=True, exist_ok=True)
            rc = run_ansible_test(options.command, rest, workdir=options.workdir, **run)[0]
        else:
            with tempfile.TemporaryDirectory(prefix="ansible-test-") as workdir:
                rc = run_ansible_test(options.command, rest, workdir=Path(workdir), **run)[0]
        if rc != 0:
            failed.append(version or "default")
    if failed:
        print(f"ansible-test {options.command} failed with ansible-core {', '.join(failed)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
