"""Shared pytest setup: the collection is importable in place, fixture builders are on sys.path."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT / ".collections", ROOT / "tests" / "fixtures"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from httpmirror import HttpMirror  # noqa: E402 - needs the sys.path set-up above
from snapmirror import GENTOO_UID, make_signing_key  # noqa: E402


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
