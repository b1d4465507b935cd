# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fetching snapshot and stage files from mirrors (http, https, file) or local paths, with timeouts.

Under Ansible, HTTP goes through ``ansible.module_utils.urls`` (its certificate checks, proxy
and netrc handling). The same code also runs in the mirror's timer CLI, on a host where only
these module_utils are installed and Ansible may be absent: there the standard library's
urllib opener does the same requests.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import socket
from http.client import HTTPException
from urllib.error import HTTPError, URLError
from urllib.parse import unquote, urlsplit
from urllib.request import Request, build_opener

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError

try:
    from ansible.module_utils.urls import ConnectionError as UrlsConnectionError, open_url
except ImportError:  # the timer CLI on a host without Ansible: the standard library's opener
    open_url = None
    UrlsConnectionError = OSError

CHUNK = 1 << 20
USER_AGENT = "gentoo_binhost.infra/portage_snapshot"


class FetchError(InfraError):
    """A source could not be read; ``missing`` is true for 'not there' (404, no such file)."""

    def __init__(self, message, missing=False):
        super(FetchError, self).__init__(message)
        self.missing = missing


def is_url(location):
    return "://" in location


def _local_path(location):
    if location.startswith("file://"):
        return unquote(urlsplit(location).path)
    return location


def _open(location, timeout):
    """An open binary stream for ``location``; FetchError with the reason otherwise."""
    if not is_url(location) or location.startswith("file://"):
        path = _local_path(location)
        try:
            return open(path, "rb")
        except FileNotFoundError:
            raise FetchError("%s: no such file" % path, missing=True)
        except OSError as exc:
            raise FetchError("%s: %s" % (path, exc.strerror or exc))
    try:
        return _open_http(location, timeout)
    except HTTPError as exc:
        raise FetchError("%s: HTTP %d %s" % (location, exc.code, exc.reason), missing=exc.code in (404, 410))
    except (socket.timeout, TimeoutError):
        raise FetchError("%s: no answer within %s s (timeout)" % (location, timeout))
    except URLError as exc:
        reason = exc.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise FetchError("%s: no answer within %s s (timeout)" % (location, timeout))
        raise FetchError("%s: %s" % (location, reason))
    except (HTTPException, OSError, UrlsConnectionError) as exc:
        raise FetchError("%s: %s" % (location, exc))


def _open_http(location, timeout):
    if open_url is not None:
        # decompress=False: the digests are over the bytes as served, and so is Content-Length.
        return open_url(location, timeout=timeout, http_agent=USER_AGENT, decompress=False)
    return build_opener().open(Request(location, headers={"User-Agent": USER_AGENT}), timeout=timeout)


def check_timeout(timeout):
    """Refuse a ``timeout`` option that is not a whole number of seconds from 1 to 86400."""
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= 86400:
        raise InfraError("timeout %r is out of range: give the seconds to wait for a server's answer, "
                         "a whole number from 1 to 86400" % (timeout,))
    return timeout


def _copy(stream, location, timeout, sink, limit=None):
    """Read ``stream`` to its end into ``sink``; return the number of bytes read."""
    expected = None
    headers = getattr(stream, "headers", None)
    if headers is not None and headers.get("Content-Length"):
        try:
            expected = int(headers.get("Content-Length"))
        except ValueError:
            expected = None
    total = 0
    try:
        while True:
            chunk = stream.read(CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if limit is not None and total > limit:
                raise FetchError("%s: larger than %d bytes, not a snapshot checksum/signature file" % (location, limit))
            sink(chunk)
    except (socket.timeout, TimeoutError):
        raise FetchError("%s: transfer stalled for more than %s s (timeout)" % (location, timeout))
    except HTTPException as exc:  # IncompleteRead and friends
        raise FetchError("%s: transfer broken off (%s)" % (location, exc.__class__.__name__))
    except OSError as exc:
        raise FetchError("%s: %s" % (location, exc))
    finally:
        stream.close()
    if expected is not None and total != expected:
        raise FetchError("%s: transfer broken off after %d of %d bytes" % (location, total, expected))
    return total


def fetch_bytes(location, timeout, limit=1 << 20):
    """The whole content of a small file (checksums, signatures)."""
    parts = []
    _copy(_open(location, timeout), location, timeout, parts.append, limit=limit)
    return b"".join(parts)


def fetch_to_file(location, dest, timeout, algorithm="md5"):
    """Download ``location`` to the path ``dest``; return its hex digest (``algorithm``).

    The digest is computed while the bytes arrive, so checking it costs no second read.
    """
    digest = hashlib.new(algorithm)
    with open(dest, "wb") as out:
        def sink(chunk):
            digest.update(chunk)
            out.write(chunk)

        _copy(_open(location, timeout), location, timeout, sink)
    return digest.hexdigest()


def digest_of_file(path, algorithm="md5"):
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def local_path_of(location):
    """The filesystem path for a local location, or None for a network URL."""
    if not is_url(location) or location.startswith("file://"):
        return os.path.abspath(_local_path(location))
    return None
