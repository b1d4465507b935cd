"""Shared pytest setup: the collection is importable in place, fixture builders are on sys.path."""
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT / ".collections", ROOT / "tests" / "fixtures"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from httpmirror import HttpMirror  # noqa: E402 - needs the sys.path set-up above
from snapmirror import GENTOO_UID, make_signing_key  # noqa: E402


# ansible_run.py runs the ansible CLI installed beside this Python (the project's venv).
ANSIBLE_CLI = Path(sys.executable).parent / "ansible"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "requires_root: mounts, chowns or chroots for real; skipped when not run as root")
    config.addinivalue_line(
        "markers", "ansible_cli: drives a module through the ansible CLI (tests/fixtures/ansible_run.py);"
                   " skipped where no ansible CLI is beside the Python, as in ansible-test's units venv")


def pytest_runtest_setup(item):
    if item.get_closest_marker("requires_root") and os.geteuid() != 0:
        pytest.skip("needs root (mounts, ownership or chroot); run as root to include it")
    if item.get_closest_marker("ansible_cli") and not ANSIBLE_CLI.exists():
        pytest.skip(f"drives the ansible CLI and there is no {ANSIBLE_CLI} (ansible-test's units venv has"
                    " only ansible.module_utils); `make unit` runs it")


@pytest.fixture
def signing_key():
    """A throwaway ed25519 key with Gentoo's release UID; its gpg-agent is stopped afterwards."""
    with make_signing_key(uid=GENTOO_UID) as key:
        yield key


@pytest.fixture
def other_key():
    """An unrelated key claiming the same UID: an impostor only the fingerprint tells apart."""
    with make_signing_key(uid=GENTOO_UID) as key:
        yield key


@pytest.fixture
def http_mirror():
    """Factory: ``http_mirror(directory)`` serves it on 127.0.0.1; all are stopped afterwards."""
    mirrors = []

    def start(directory):
        mirror = HttpMirror(directory).start()
        mirrors.append(mirror)
        return mirror

    yield start
    for mirror in mirrors:
        mirror.stop()
