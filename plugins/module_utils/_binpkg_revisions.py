# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a binary package was built from: the ``REPO_REVISIONS`` it records, and the gate.

Portage (3.0.65 and later) writes ``REPO_REVISIONS``, the git HEAD of every repository an
ebuild and its eclasses came from, into the package's own metadata: inside a gpkg's
``metadata.tar``, or into the xpak segment of a ``.tbz2``/``.xpak``. That record travels with
the file, where the ``Packages`` index is unsigned and rewritten freely; so the file decides,
and an index that claims otherwise is refused. A package built without git records nothing;
a build record (``build.json``, written by the build host) may then bind that very file, by
size and checksums, to the commits the build host had checked out.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import bz2
import gzip
import io
import json
import lzma
import os
import re
import struct
import tarfile

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import find_program, run
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._packages_index import (
    DIGESTS,
    PublishError,
    entry_path,
    instance_key,
    summarise,
)

_GPKG_METADATA_RE = re.compile(r"^[^/]+/metadata\.tar(\.[a-z0-9]+)?$")


def _gpkg_metadata(path):
    """The uncompressed ``metadata.tar`` of a gpkg (``<name>/metadata.tar[.zst|.xz|...]``, the
    part a signed gpkg carries a signature for), or None when ``path`` is not a gpkg."""
    try:
        with tarfile.open(path, "r:") as outer:
            member = next((m for m in outer.getmembers() if m.isfile() and _GPKG_METADATA_RE.match(m.name)), None)
            if member is None:
                return None
            packed = outer.extractfile(member).read()
    except (tarfile.TarError, IOError, OSError):
        return None
    suffix = member.name.rsplit("metadata.tar", 1)[1]
    if suffix == ".zst":
        _rc, data, _err = run([find_program("zstd"), "-dc"], data=packed)
    elif suffix == ".lz4":
        _rc, data, _err = run([find_program("lz4"), "-dc"], data=packed)
    elif suffix in (".xz", ".lzma"):
        data = lzma.decompress(packed)
    elif suffix == ".gz":
        data = gzip.decompress(packed)
    elif suffix == ".bz2":
        data = bz2.decompress(packed)
    elif suffix == "":
        data = packed
    else:
        raise PublishError("%s: metadata compressed as %s, which this module cannot read" % (path, suffix))
    return data


def _gpkg_repo_revisions(path):
    data = _gpkg_metadata(path)
    if data is None:
        return None
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as inner:
        for m in inner.getmembers():
            if m.isfile() and m.name.endswith("metadata/REPO_REVISIONS"):
                return _parse_revisions(inner.extractfile(m).read(), path)
    return {}


def _xpak_repo_revisions(path):
    """``REPO_REVISIONS`` from the xpak segment Portage appends to a ``.tbz2``/``.xpak``
    package (… XPAKPACK, index and data lengths, index of name/offset/length, data, XPAKSTOP,
    the segment's length, STOP); None when the file has no readable segment."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            if size < 8 + 24:
                return None
            handle.seek(size - 8)
            tail = handle.read(8)
            length = struct.unpack(">I", tail[:4])[0]
            if tail[4:] != b"STOP" or length < 24 or length > size - 8:
                return None
            handle.seek(size - 8 - length)
            segment = handle.read(length)
    except (IOError, OSError):
        return None
    if segment[:8] != b"XPAKPACK" or segment[-8:] != b"XPAKSTOP":
        return None
    index_len, data_len = struct.unpack(">II", segment[8:16])
    index, data = segment[16:16 + index_len], segment[16 + index_len:16 + index_len + data_len]
    if 16 + index_len + data_len + 8 != length:
        return None
    pos = 0
    while pos + 4 <= len(index):
        name_len = struct.unpack(">I", index[pos:pos + 4])[0]
        name = index[pos + 4:pos + 4 + name_len]
        offset, value_len = struct.unpack(">II", index[pos + 4 + name_len:pos + 12 + name_len])
        pos += 12 + name_len
        if name == b"REPO_REVISIONS":
            return _parse_revisions(data[offset:offset + value_len], path)
    return {}


def _parse_revisions(raw, path):
    try:
        value = json.loads(raw.decode("utf-8") or "{}")
    except ValueError:
        raise PublishError("%s: unreadable REPO_REVISIONS" % path)
    return value if isinstance(value, dict) else {}


def package_revisions(path):
    """``REPO_REVISIONS`` a package file records itself (Portage writes the git HEAD of every
    repository its ebuild and eclasses came from): from a gpkg's metadata, or from the xpak
    segment of a ``.tbz2``/``.xpak``. ``{}`` when the package records none; None when
    ``path`` is neither format."""
    found = _gpkg_repo_revisions(path)
    return found if found is not None else _xpak_repo_revisions(path)


def _short(revisions):
    return ", ".join("::%s %s" % (repo, str(commit)[:12]) for repo, commit in sorted(revisions.items())) or "none"


def same_file(item, entry):
    """Whether a build record's package ``item`` (``digests``, ``size``) names the very file
    the index ``entry`` lists: at least one shared checksum, all shared ones equal, the same
    size when the index lists one."""
    digests = item.get("digests") or {}
    shared = [key for key, _name in DIGESTS if key in digests and key in entry]
    if not shared or any(digests[key].lower() != entry[key].lower() for key in shared):
        return False
    return "SIZE" not in entry or str(item.get("size")) == entry["SIZE"]


def _bound_by_record(entry, record_packages):
    """The revisions a build record binds this very package file to, or None. A binding holds
    only when the record names the same path with the same size and checksums that the
    index lists (and that validate_pkgdir has checked against the file)."""
    bound = record_packages.get(entry_path(entry))
    if not bound or not same_file(bound, entry):
        return None
    revisions = bound.get("repo_revisions")
    return revisions if isinstance(revisions, dict) and revisions else None


def _index_claim_problem(key, entry, own):
    """What is wrong with the revisions the index claims for a package, or None."""
    try:
        claimed = json.loads(entry["REPO_REVISIONS"])
    except ValueError:
        claimed = None
    if not isinstance(claimed, dict):
        return "%s: the index's REPO_REVISIONS cannot be read" % key
    if own is not None and claimed != own:
        # Portage without git writes "{}" in both: that is agreement, on nothing.
        return "%s: the index says %s, the package records %s" % (key, _short(claimed), _short(own))
    return None


def resolve_revisions(root, entries, reuse=None, record=None, sources=None):
    """instance key → the repositories' revisions each package was built from.

    The package file's own ``REPO_REVISIONS`` decide, never the index: the index is not
    signed and is rewritten freely, so an index entry that claims other revisions than its
    package file records is refused. A package that records none (its build root had no
    git, so Portage could not ask the repositories their HEAD) takes the revisions a build
    ``record`` (the build host's ``build.json``) binds to that very file, if any. ``reuse``
    (path → (inode, revisions)) skips files that are the very inode already read for the
    previous generation. ``sources``, a dict, is filled with instance key → ``package`` or
    ``build record``: where the revisions came from."""
    out = {}
    disagree = []
    record_packages = dict((p.get("path"), p) for p in (record or {}).get("packages") or [] if isinstance(p, dict))
    for entry in entries:
        key = instance_key(entry)
        rel = entry_path(entry)
        path = os.path.join(root, rel)
        known = (reuse or {}).get(rel)
        if known is not None and known[0] == os.stat(path).st_ino and isinstance(known[1], dict):
            own = known[1]
        else:
            own = package_revisions(path)
        if entry.get("REPO_REVISIONS"):
            problem = _index_claim_problem(key, entry, own)
            if problem:
                disagree.append(problem)
        source = "package"
        if own == {}:
            bound = _bound_by_record(entry, record_packages)
            if bound:
                own, source = bound, "build record"
        out[key] = own
        if sources is not None:
            sources[key] = source
    if disagree:
        raise PublishError("the Packages index and the package files disagree on what the packages were built "
                           "from: %s" % summarise(disagree))
    return out


def check_revisions(entries, revisions, expected):
    """Every package of a repository in ``expected`` (name → commit) must have been built
    from that commit, as the package's ``REPO_REVISIONS`` (or its build record) says."""
    if not expected:
        return
    wrong = []
    for entry in entries:
        key = instance_key(entry)
        found = revisions.get(key)
        if not isinstance(found, dict):
            wrong.append("%s: its revisions cannot be read (not a gpkg or xpak package)" % key)
            continue
        own = entry.get("REPO")
        if own in expected and own not in found:
            wrong.append("%s: no revision of ::%s recorded, neither in the package nor by a build record of "
                         "the build host" % (key, own))
            continue
        for repo, commit in sorted(found.items()):
            if repo in expected and commit != expected[repo]:
                wrong.append("%s: built from ::%s %s, not the pinned %s" % (key, repo, commit[:12], expected[repo][:12]))
    if wrong:
        raise PublishError("packages built from another tree than the pinned one: %s" % summarise(wrong))
