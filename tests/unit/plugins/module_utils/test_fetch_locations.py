# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_fetch against real sources: files, file:// URLs and an HTTP server on 127.0.0.1.

Runs under ``ansible-test units`` (a venv with only ansible-core and pytest, the collection
loaded by Ansible's collection loader) as well as under the project's plain ``pytest``. HTTP
is tried through both of _fetch's backends: ``ansible.module_utils.urls`` (under Ansible) and
the standard library's opener (the timer CLI on a host without Ansible).
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import threading
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.gentoo_binhost.infra.plugins.module_utils import _fetch
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._fetch import (
    USER_AGENT,
    FetchError,
    digest_of_file,
    fetch_bytes,
    fetch_to_file,
    local_path_of,
)

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB: more than one read chunk


class _Handler(BaseHTTPRequestHandler):
    """``/ok`` the payload, ``/gone`` 404, ``/broken`` 500, ``/short`` half of what it announces,
    ``/slow`` nothing until the server stops. Every request's User-Agent is recorded."""

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        """Quiet."""

    def do_GET(self):  # pylint: disable=invalid-name
        self.server.agents.append(self.headers.get("User-Agent"))
        if self.path == "/ok":
            self._send(200, PAYLOAD, len(PAYLOAD))
        elif self.path == "/short":
            self._send(200, PAYLOAD[: len(PAYLOAD) // 2], len(PAYLOAD))
            self.close_connection = True
        elif self.path == "/slow":
            self.server.stopping.wait(10)
            self.close_connection = True
        else:
            self.send_error(404 if self.path == "/gone" else 500)

    def _send(self, status, body, length):
        self.send_response(status)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.agents = []
    httpd.stopping = threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd, "http://127.0.0.1:%d" % httpd.server_address[1]
    finally:
        httpd.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture(params=["ansible.module_utils.urls", "urllib"])
def http_backend(request, monkeypatch):
    """Each HTTP test runs through open_url and through the fallback the timer CLI uses."""
    if request.param == "urllib":
        monkeypatch.setattr(_fetch, "open_url", None)
    else:
        assert _fetch.open_url is not None, "ansible.module_utils.urls is importable here"
    return request.param


def test_local_path_and_file_url_read_the_same_bytes(tmp_path):
    source = tmp_path / "with space.tar.xz"
    source.write_bytes(PAYLOAD)
    url = "file://" + str(source).replace(" ", "%20")

    assert fetch_bytes(str(source), timeout=5, limit=len(PAYLOAD)) == PAYLOAD
    assert fetch_bytes(url, timeout=5, limit=len(PAYLOAD)) == PAYLOAD
    assert local_path_of(url) == str(source)
    assert local_path_of("http://127.0.0.1/x") is None


def test_fetch_to_file_returns_the_digest_of_what_it_wrote(tmp_path):
    source, dest = tmp_path / "src", tmp_path / "dest"
    source.write_bytes(PAYLOAD)

    digest = fetch_to_file(str(source), str(dest), timeout=5)

    assert dest.read_bytes() == PAYLOAD
    assert digest == hashlib.md5(PAYLOAD).hexdigest() == digest_of_file(str(dest))
    assert fetch_to_file(str(source), str(dest), 5, algorithm="sha512") == hashlib.sha512(PAYLOAD).hexdigest()


def test_missing_local_file_is_reported_as_missing(tmp_path):
    with pytest.raises(FetchError) as error:
        fetch_bytes(str(tmp_path / "gentoo-19990101.tar.xz.md5sum"), timeout=5)
    assert error.value.missing is True
    assert str(error.value) == "%s: no such file" % (tmp_path / "gentoo-19990101.tar.xz.md5sum")


def test_small_file_limit_refuses_a_large_file(tmp_path):
    source = tmp_path / "huge.md5sum"
    source.write_bytes(PAYLOAD)
    with pytest.raises(FetchError, match="larger than 1000 bytes, not a snapshot checksum/signature file"):
        fetch_bytes(str(source), timeout=5, limit=1000)


def test_http_download_sends_our_user_agent(http_backend, server, tmp_path):
    httpd, url = server
    assert fetch_bytes(url + "/ok", timeout=5, limit=len(PAYLOAD)) == PAYLOAD
    assert fetch_to_file(url + "/ok", str(tmp_path / "ok"), timeout=5) == hashlib.md5(PAYLOAD).hexdigest()
    assert httpd.agents == [USER_AGENT, USER_AGENT]


@pytest.mark.parametrize("path, missing, text", [
    ("/gone", True, "HTTP 404"),
    ("/broken", False, "HTTP 500"),
])
def test_http_errors_name_url_and_status(http_backend, server, path, missing, text):
    url = server[1]
    with pytest.raises(FetchError) as error:
        fetch_bytes(url + path, timeout=5)
    assert error.value.missing is missing
    assert str(error.value).startswith("%s%s: %s" % (url, path, text))


def test_truncated_transfer_is_an_error_not_a_short_file(http_backend, server, tmp_path):
    url = server[1]
    with pytest.raises(FetchError, match="transfer broken off"):
        fetch_to_file(url + "/short", str(tmp_path / "short"), timeout=5)


def test_silent_server_times_out_with_the_timeout_in_the_message(http_backend, server):
    url = server[1]
    with pytest.raises(FetchError, match=r"/slow: no answer within 0.5 s \(timeout\)"):
        fetch_bytes(url + "/slow", timeout=0.5)


def test_refused_connection_names_the_url(http_backend):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        url = "http://127.0.0.1:%d/snapshots/gentoo-latest.tar.xz" % port
        with pytest.raises(FetchError) as error:
            fetch_bytes(url, timeout=5)
    assert str(error.value).startswith(url + ": ")
    assert error.value.missing is False


def test_without_ansible_the_standard_library_fetches(server):
    """The timer CLI's situation: the collection's module_utils on sys.path, no ansible package."""
    httpd, url = server
    top = Path(_fetch.__file__).absolute().parents[5]  # the directory holding ansible_collections
    code = (
        "import sys; sys.modules['ansible'] = None; sys.path.insert(0, %r)\n"
        "from ansible_collections.gentoo_binhost.infra.plugins.module_utils import _fetch\n"
        "assert _fetch.open_url is None\n"
        "print(len(_fetch.fetch_bytes(%r, timeout=5, limit=1 << 21)))\n" % (str(top), url + "/ok")
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(len(PAYLOAD))
    assert httpd.agents == [USER_AGENT]


@pytest.mark.parametrize("timeout", [0, -1, 86401, 1.5, "60", None, True])
def test_timeouts_out_of_range_are_refused(timeout):
    with pytest.raises(_fetch.InfraError) as error:
        _fetch.check_timeout(timeout)
    assert str(error.value) == ("timeout %r is out of range: give the seconds to wait for a server's answer, "
                                "a whole number from 1 to 86400" % (timeout,))
    assert _fetch.check_timeout(1) == 1 and _fetch.check_timeout(86400) == 86400
