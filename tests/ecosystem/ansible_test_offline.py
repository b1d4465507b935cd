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
3. runs ``ansible-test <command> --venv --python X.Y`` there and reports the wall time.

Usage::

    .venv/bin/python tests/ecosystem/ansible_test_offline.py sanity [ansible-test args...]
    .venv/bin/python tests/ecosystem/ansible_test_offline.py units [ansible-test args...]
    .venv/bin/python tests/ecosystem/ansible_test_offline.py sanity --with-harness  # see HARNESS

Requirements for the sanity venvs come from PyPI (the only index reachable); ansible-test keeps
those venvs in ``~/.ansible/test/venv``, so only the first run on a machine is slow.
"""
from __future__ import annotations

import argparse
import fnmatch
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

# Developer tooling that only ever runs in the project's own venv under pytest (Python 3.11,
# Portage, python-gnupg, the fixtures on sys.path), never on a managed host or in a controller's
# collection: the integration and fixture-based unit tests, their fixtures and the benchmarks.
# ansible-test's code rules for content that ships to hosts (no ``_`` variable, explicit
# ``check=`` for subprocess.run, allowed shebangs...) are not this code's rules, so it is left
# out of the layout rather than listed line by line in an ignore file. ``--with-harness`` puts
# it back to see those findings. What is tested: plugins/, roles/, playbooks/, meta/, docs,
# changelogs and the tests written for ansible-test (tests/unit/plugins/, tests/sanity/) and
# this directory (tests/ecosystem/).
HARNESS = ("bench", "tests/conftest.py", "tests/fixtures", "tests/integration", "tests/unit/test_*.py")

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


def collection_files(root: Path = ROOT, *, with_harness: bool = False) -> list[str]:
    """The files the collection consists of: tracked or new (not git-ignored), minus build_ignore
    (and minus ``HARNESS`` unless ``with_harness``)."""
    listed = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True, capture_output=True,
    ).stdout.decode().split("\0")
    patterns = list(yaml.safe_load((root / "galaxy.yml").read_text()).get("build_ignore") or [])
    if not with_harness:
        patterns += HARNESS
    files = []
    for path in sorted(set(filter(None, listed))):
        # Tracked but deleted in the work tree: not part of what is being tested.
        if not os.path.lexists(root / path) or build_ignored(path, patterns):
            continue
        files.append(path)
    return files


def make_layout(dest: Path, root: Path = ROOT, *, with_harness: bool = False) -> Path:
    """Copy the collection to ``dest/ansible_collections/<ns>/<name>``; returns that directory."""
    namespace, name = collection_name(root)
    target = dest / "ansible_collections" / namespace / name
    for path in collection_files(root, with_harness=with_harness):
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / path, target / path, follow_symlinks=False)
    return target


def pip_bootstrap_version() -> str:
    """The pip version whose get-pip script ansible-test looks for in its cache."""
    import ansible_test  # the package only; its internals need ansible-test's own start-up

    source = Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
    found = re.search(r"default_packages = dict\(\s*pip='([0-9.]+)'", source.read_text())
    if not found:
        raise SystemExit(f"cannot find the pip bootstrap version in {source}; update {__file__}")
    return found.group(1)


def install_get_pip_standin() -> Path:
    """Write the stand-in where ansible-test looks for a cached get-pip script (no download then)."""
    version = pip_bootstrap_version()
    path = Path.home() / ".ansible" / "test" / "cache" / f"get_pip_{version.replace('.', '_')}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != GET_PIP_STANDIN:
        path.write_text(GET_PIP_STANDIN)
    return path


def run_ansible_test(command: str, args: list[str], *, python: str, workdir: Path,
                     keep_output: Path | None = None, with_harness: bool = False) -> tuple[int, float]:
    """``ansible-test <command> --venv --python <python> <args>`` in a fresh layout in ``workdir``.

    Returns the exit status and the wall time in seconds of ansible-test itself.
    """
    install_get_pip_standin()
    layout = make_layout(workdir, with_harness=with_harness)
    env = dict(os.environ)
    env["PATH"] = f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    env.pop("ANSIBLE_CONFIG", None)  # the checkout's ansible.cfg points at the checkout
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    cmd = [str(BIN / "ansible-test"), command, "--venv", "--python", python, "--color", "no", *args]
    print("+ (cd %s && %s)" % (layout, " ".join(cmd)), flush=True)
    started = time.monotonic()
    rc = subprocess.run(cmd, cwd=layout, env=env, check=False).returncode
    elapsed = time.monotonic() - started
    if keep_output is not None and (layout / "tests" / "output").exists():
        shutil.rmtree(keep_output, ignore_errors=True)
        shutil.copytree(layout / "tests" / "output", keep_output, symlinks=True)
    print(f"ansible-test {command}: rc={rc}, {elapsed:.1f} s", flush=True)
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
    options, rest = parser.parse_known_args(argv)
    if options.command == "units" and not any(not arg.startswith("-") for arg in rest):
        # Only the tests written for ansible-test's units venv; tests/unit/*.py need the
        # project's venv (Portage, python-gnupg, fixtures) and run under plain pytest.
        rest.append("tests/unit/plugins/")
    run = dict(python=options.python, keep_output=options.keep_output, with_harness=options.with_harness)
    if options.workdir:
        options.workdir.mkdir(parents=True, exist_ok=True)
        return run_ansible_test(options.command, rest, workdir=options.workdir, **run)[0]
    with tempfile.TemporaryDirectory(prefix="ansible-test-") as workdir:
        return run_ansible_test(options.command, rest, workdir=Path(workdir), **run)[0]


if __name__ == "__main__":
    sys.exit(main())
