# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Publication of a Portage PKGDIR as immutable generations of a binary package server.

Layout of one stack (``dest``)::

    dest/current -> generations/<id>      # the only thing clients follow; switched by rename
    dest/generations/<id>/                # a complete PKGDIR: Packages, files, manifest.json
    dest/generations/.partial-<id>/       # a publication in progress (removed if abandoned)
    dest/index.html                       # the stack's status page
    dest/.lock                            # serialises publications and rollbacks

A publication copies the source with ``rsync --link-dest`` against the current generation
(unchanged packages become hard links; only changed ones cross the wire), validates the
``Packages`` index against the files (path inside the generation, size, every checksum the
index lists; ``Packages.gz`` equal to ``Packages``), checks every package's
``REPO_REVISIONS`` (Portage records the git HEAD of the repositories an ebuild came from)
against the pinned commits, writes ``manifest.json``, renames the directory into place and
switches ``current`` with one ``rename(2)``. Until that rename nothing a client can see has
changed; a killed publication leaves a ``.partial-*`` directory the next one removes.

With ``base_url`` the generation's index gets Portage's ``URI`` header pointing at the
generation's own immutable directory, so a client that read an index fetches that
generation's files even if ``current`` moves on meanwhile.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import bz2
import datetime
import errno
import fcntl
import gzip
import hashlib
import html
import io
import json
import lzma
import os
import re
import shutil
import struct
import tarfile
import tempfile

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import (
    InfraError,
    find_program,
    run,
    write_file_atomic,
)

GENERATIONS = "generations"
CURRENT = "current"
PARTIAL_PREFIX = ".partial-"
MANIFEST = "manifest.json"
# The build record a build host writes beside the packages of one build (see _build_record).
RECORD = "build.json"
INDEX_HTML = "index.html"
MANIFEST_FORMAT = 1
GENERATION_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z(-[0-9]+)?$")
# Checksums Portage may list per package (BINPKG digests), with their hashlib names.
DIGESTS = (("MD5", "md5"), ("SHA1", "sha1"), ("SHA256", "sha256"), ("SHA512", "sha512"),
           ("BLAKE2B", "blake2b"))


class PublishError(InfraError):
    """A publication or rollback that was refused; nothing clients see has changed."""


# -- the Packages index ---------------------------------------------------------------------
def parse_packages(text):
    """``(header, entries)`` of a Portage ``Packages`` index: blocks of ``KEY: value`` lines
    separated by blank lines, the first block being the header."""
    blocks, block = [], {}
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            if block:
                blocks.append(block)
                block = {}
            continue
        key, sep, value = line.partition(":")
        if not sep or not key or key != key.strip():
            raise PublishError("Packages line %d is not 'KEY: value': %r" % (line_no, line[:80]))
        block[key] = value[1:] if value.startswith(" ") else value
    if block:
        blocks.append(block)
    if not blocks:
        raise PublishError("the Packages index is empty")
    header, entries = blocks[0], blocks[1:]
    if "CPV" in header:
        raise PublishError("the Packages index has no header block")
    for number, entry in enumerate(entries, 1):
        if "CPV" not in entry:
            raise PublishError("entry %d of the Packages index has no CPV" % number)
    return header, entries


def entry_path(entry):
    """Where a package's file lives, relative to the PKGDIR (Portage's rule: ``PATH`` if
    given, else ``<CPV>.tbz2``)."""
    return entry.get("PATH") or entry["CPV"] + ".tbz2"


def instance_key(entry):
    return "%s-%s" % (entry["CPV"], entry.get("BUILD_ID", "0"))


def set_header_uri(text, uri):
    """``text`` with the header's ``URI`` set to ``uri`` (or removed when ``uri`` is None);
    entries are left byte for byte."""
    head, sep, rest = text.partition("\n\n")
    lines = [line for line in head.split("\n") if not line.startswith("URI:")]
    if uri:
        lines.append("URI: " + uri)
        lines.sort(key=lambda line: line.split(":", 1)[0])
    return "\n".join(lines) + sep + rest


def _file_digests(path, names):
    hashes = dict((key, hashlib.new(name)) for key, name in names)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            for digest in hashes.values():
                digest.update(chunk)
    return dict((key, digest.hexdigest()) for key, digest in hashes.items())


def validate_pkgdir(root, known=None):
    """Check ``root``'s ``Packages`` against its files; returns ``(header, entries, text)``.

    ``known`` (path → (inode, {checksum name: value})) names files already verified for the
    previous generation: the same inode listed with the same checksums is not read again.

    Raises PublishError listing every problem: a missing or escaping file, a wrong size, a
    checksum that differs, a ``PACKAGES`` count that does not match, a ``Packages.gz`` that
    is not the same index.
    """
    index = os.path.join(root, "Packages")
    try:
        with open(index, "rb") as handle:
            raw = handle.read()
    except (IOError, OSError) as exc:
        raise PublishError("no Packages index in %s: %s" % (root, exc.strerror or exc))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PublishError("the Packages index is not UTF-8: %s" % exc)
    header, entries = parse_packages(text)
    problems = []
    if "PACKAGES" in header and header["PACKAGES"] != str(len(entries)):
        problems.append("header says PACKAGES: %s but the index lists %d" % (header["PACKAGES"], len(entries)))
    seen = set()
    real_root = os.path.realpath(root)
    for entry in entries:
        rel = entry_path(entry)
        label = "%s (%s)" % (instance_key(entry), rel)
        if rel in seen:
            problems.append("%s: listed twice" % label)
            continue
        seen.add(rel)
        parts = rel.split("/")
        if rel.startswith("/") or ".." in parts or "" in parts:
            problems.append("%s: path leaves the package directory" % label)
            continue
        path = os.path.join(root, rel)
        if os.path.islink(path) or not os.path.isfile(path) or \
                not os.path.realpath(path).startswith(real_root + os.sep):
            problems.append("%s: file missing" % label)
            continue
        size = os.path.getsize(path)
        if "SIZE" in entry and entry["SIZE"] != str(size):
            problems.append("%s: size %d, index says %s" % (label, size, entry["SIZE"]))
            continue
        listed = [(key, name) for key, name in DIGESTS if key in entry]
        if not listed:
            problems.append("%s: the index lists no checksum" % label)
            continue
        previous = (known or {}).get(rel)
        if previous is not None and previous[0] == os.stat(path).st_ino and \
                all(previous[1].get(key.lower()) == entry[key].lower() for key, _name in listed):
            continue
        actual = _file_digests(path, listed)
        for key, _name in listed:
            if actual[key] != entry[key].lower():
                problems.append("%s: %s %s, index says %s" % (label, key, actual[key], entry[key]))
    gz = index + ".gz"
    if os.path.exists(gz):
        try:
            with gzip.open(gz, "rb") as handle:
                same = handle.read() == raw
        except (IOError, OSError, EOFError) as exc:
            same = False
            problems.append("Packages.gz is unreadable: %s" % exc)
        else:
            if not same:
                problems.append("Packages.gz is not the same index as Packages")
    if problems:
        shown = problems[:20] + (["... and %d more" % (len(problems) - 20)] if len(problems) > 20 else [])
        raise PublishError("the Packages index of %s does not match its files: %s" % (root, "; ".join(shown)))
    return header, entries, text


def _gpkg_metadata(path):
    """The uncompressed ``metadata.tar`` of a gpkg (``<name>/metadata.tar[.zst|.xz|...]``, the
    part a signed gpkg carries a signature for), or None when ``path`` is not a gpkg."""
    try:
        with tarfile.open(path, "r:") as outer:
            member = next((m for m in outer.getmembers()
                           if m.isfile() and re.match(r"^[^/]+/metadata\.tar(\.[a-z0-9]+)?$", m.name)), None)
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


def _bound_by_record(entry, record_packages):
    """The revisions a build record binds this very package file to, or None. A binding holds
    only when the record names the same path with the same size and checksums that the
    index lists (and that validate_pkgdir has checked against the file)."""
    bound = record_packages.get(entry_path(entry))
    if not bound:
        return None
    digests = bound.get("digests") or {}
    shared = [key for key, _name in DIGESTS if key in digests and key in entry]
    if not shared or any(digests[key].lower() != entry[key].lower() for key in shared):
        return None
    if "SIZE" in entry and str(bound.get("size")) != entry["SIZE"]:
        return None
    revisions = bound.get("repo_revisions")
    return revisions if isinstance(revisions, dict) and revisions else None


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
            try:
                claimed = json.loads(entry["REPO_REVISIONS"])
            except ValueError:
                claimed = None
            if not isinstance(claimed, dict):
                disagree.append("%s: the index's REPO_REVISIONS cannot be read" % key)
            elif own is not None and claimed != own:
                # Portage without git writes "{}" in both: that is agreement, on nothing.
                disagree.append("%s: the index says %s, the package records %s" % (key, _short(claimed), _short(own)))
        source = "package"
        if own == {}:
            bound = _bound_by_record(entry, record_packages)
            if bound:
                own, source = bound, "build record"
        out[key] = own
        if sources is not None:
            sources[key] = source
    if disagree:
        shown = disagree[:20] + (["... and %d more" % (len(disagree) - 20)] if len(disagree) > 20 else [])
        raise PublishError("the Packages index and the package files disagree on what the packages were built "
                           "from: %s" % "; ".join(shown))
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
        shown = wrong[:20] + (["... and %d more" % (len(wrong) - 20)] if len(wrong) > 20 else [])
        raise PublishError("packages built from another tree than the pinned one: %s" % "; ".join(shown))


def package_list(entries, revisions=None, sources=None):
    """The manifest's view of the packages, sorted."""
    out = []
    for entry in entries:
        item = {
            "cpv": entry["CPV"],
            "build_id": entry.get("BUILD_ID"),
            "build_time": entry.get("BUILD_TIME"),
            "use": entry.get("USE", "").split(),
            "repo": entry.get("REPO"),
            "path": entry_path(entry),
            "size": int(entry["SIZE"]) if entry.get("SIZE", "").isdigit() else None,
            "repo_revisions": (revisions or {}).get(instance_key(entry)),
        }
        if sources and sources.get(instance_key(entry)):
            item["revisions_from"] = sources[instance_key(entry)]
        for key, _name in DIGESTS:
            if key in entry:
                item[key.lower()] = entry[key]
        out.append(item)
    return sorted(out, key=lambda item: (item["cpv"], item["build_id"] or ""))


def compare(previous, current):
    """Packages added, removed and rebuilt (same CPV, other build) between two package lists,
    keyed by CPV."""
    def by_cpv(items):
        out = {}
        for item in items or []:
            out.setdefault(item["cpv"], set()).add((item.get("build_id"), item.get("sha1") or item.get("md5")))
        return out
    before, after = by_cpv(previous), by_cpv(current)
    return {
        "added": sorted(set(after) - set(before)),
        "removed": sorted(set(before) - set(after)),
        "rebuilt": sorted(cpv for cpv in set(before) & set(after) if before[cpv] != after[cpv]),
    }


# -- the stack directory ----------------------------------------------------------------------
class Stack(object):
    def __init__(self, dest):
        if not os.path.isabs(dest):
            raise PublishError("dest must be an absolute path, got %r" % dest)
        self.dest = os.path.normpath(dest)
        self.generations = os.path.join(self.dest, GENERATIONS)
        self.current_link = os.path.join(self.dest, CURRENT)

    def current(self):
        """Id of the generation ``current`` points at, or None."""
        try:
            target = os.readlink(self.current_link)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.EINVAL):
                return None
            raise
        name = os.path.basename(target.rstrip("/"))
        return name if os.path.dirname(target.rstrip("/")) == GENERATIONS and GENERATION_RE.match(name) else None

    def list(self):
        """Complete generations, oldest first."""
        try:
            names = os.listdir(self.generations)
        except OSError:
            return []
        return sorted((n for n in names if GENERATION_RE.match(n) and os.path.isdir(os.path.join(self.generations, n))),
                      key=_generation_key)

    def path(self, generation):
        return os.path.join(self.generations, generation)

    def manifest(self, generation):
        try:
            with open(os.path.join(self.path(generation), MANIFEST)) as handle:
                return json.load(handle)
        except (IOError, OSError, ValueError):
            return None

    def partials(self):
        try:
            return [n for n in os.listdir(self.generations) if n.startswith(PARTIAL_PREFIX)]
        except OSError:
            return []

    def lock(self):
        if not os.path.isdir(self.dest):
            os.makedirs(self.dest, 0o755)
        handle = open(os.path.join(self.dest, ".lock"), "a")
        fcntl.flock(handle, fcntl.LOCK_EX)
        return handle

    def switch(self, generation):
        """Point ``current`` at ``generation`` with one rename."""
        tmp = os.path.join(self.dest, ".%s.%d" % (CURRENT, os.getpid()))
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(os.path.join(GENERATIONS, generation), tmp)
        os.rename(tmp, self.current_link)
        _fsync_dir(self.dest)

    def new_id(self, now):
        base = now.strftime("%Y%m%dT%H%M%SZ")
        taken = self.list() + [n[len(PARTIAL_PREFIX):] for n in self.partials()]
        # Ids only grow: a pruned id handed out again would make a client that still holds its
        # index (URI .../generations/<id>) fetch another generation's files, and would sort
        # before the generations it follows. If the clock went back, stay after the latest.
        latest = max((_generation_key(n) for n in taken if GENERATION_RE.match(n)), default=None)
        if latest is None or latest[0] < base:
            return base
        return "%s-%d" % (latest[0], latest[1] + 1)


def _generation_key(name):
    """Sort key of a generation id: its time, then its numeric suffix (``-10`` after ``-9``)."""
    stamp, _sep, suffix = name.partition("-")
    return stamp, int(suffix or 0)


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _rsync(src, dest, link_dest=None, extra=None):
    """rsync ``src``/ into ``dest``; returns rsync's --stats as a dict of ints."""
    # Nanosecond mtimes: by default rsync's quick check compares whole seconds, and a gpkg (a
    # tar padded to 10 KiB) or a Packages index rewritten within the same second often keeps
    # its size, so --link-dest would link the previous generation's stale copy.
    argv = [find_program("rsync"), "-a", "--delete", "--stats", "--modify-window=-1", "--exclude", "/.partial-*"]
    if link_dest:
        argv += ["--link-dest", link_dest]
    argv += list(extra or []) + [src.rstrip("/") + "/", dest.rstrip("/") + "/"]
    _rc, out, _err = run(argv)
    stats = {}
    for line in out.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            number = re.match(r"\s*([0-9,]+)", value)
            if number:
                stats[key.strip()] = int(number.group(1).replace(",", ""))
    return {
        "files": stats.get("Number of regular files transferred", 0),
        "bytes": stats.get("Total transferred file size", 0),
        "total_files": stats.get("Number of files", 0),
        "total_bytes": stats.get("Total file size", 0),
    }


def _fetch_index(src, work):
    """The source's Packages bytes (rsync for remote sources)."""
    if _is_local(src):
        path = os.path.join(src, "Packages")
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except (IOError, OSError) as exc:
            raise PublishError("no Packages index in %s: %s" % (src, exc.strerror or exc))
    target = os.path.join(work, "Packages")
    run([find_program("rsync"), "-a", src.rstrip("/") + "/Packages", target])
    with open(target, "rb") as handle:
        return handle.read()


def _fetch_record(src, work):
    """The source's build record (``build.json``, written by the build host next to the
    packages it binds), or None when it has none."""
    if _is_local(src):
        path = os.path.join(src, RECORD)
        if not os.path.lexists(path):
            return None
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except (IOError, OSError) as exc:
            raise PublishError("cannot read the build record %s: %s" % (path, exc.strerror or exc))
    else:
        target = os.path.join(work, RECORD)
        rc, _out, err = run([find_program("rsync"), "-a", src.rstrip("/") + "/" + RECORD, target], check=False)
        if rc != 0:
            if b"No such file" in err:
                return None
            raise PublishError("cannot fetch the build record of %s: %s" % (src, err.decode("utf-8", "replace").strip()))
        with open(target, "rb") as handle:
            raw = handle.read()
    try:
        record = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        raise PublishError("the build record %s/%s is not valid JSON: %s" % (src.rstrip("/"), RECORD, exc))
    if not isinstance(record, dict) or not isinstance(record.get("packages", []), list):
        raise PublishError("the build record %s/%s is not a build record (no package list)" % (src.rstrip("/"), RECORD))
    return record


def content_id(index_bytes, provenance, base_url=None, record=None):
    digest = hashlib.sha256(index_bytes)
    digest.update(json.dumps(provenance or {}, sort_keys=True).encode("utf-8"))
    if record:  # another binding of the same files is another publication
        digest.update(json.dumps(record.get("packages"), sort_keys=True).encode("utf-8"))
    if base_url:  # the published index carries it: another base_url is another publication
        digest.update(b"\0URI " + base_url.rstrip("/").encode("utf-8"))
    return digest.hexdigest()


# -- the status page --------------------------------------------------------------------------
def render_index(stack_name, stack):
    """A static page: the generations, newest first, with their provenance and changes."""
    current = stack.current()
    rows = []
    for generation in reversed(stack.list()):
        manifest = stack.manifest(generation) or {}
        prov = manifest.get("provenance") or {}
        changes = manifest.get("changes") or {}
        snapshot = prov.get("snapshot") or {}
        pkgs = manifest.get("packages") or []

        def chips(kind, items):
            return "".join('<li class="%s">%s</li>' % (kind, html.escape(i)) for i in items)

        change_html = (chips("added", changes.get("added", [])) + chips("removed", changes.get("removed", []))
                       + chips("rebuilt", changes.get("rebuilt", [])))
        rows.append(
            '<section class="generation%s" id="g-%s">\n'
            '<h2><a href="%s/%s/">%s</a>%s</h2>\n'
            '<dl>'
            '<dt>Published</dt><dd>%s</dd>'
            '<dt>Tree</dt><dd>%s <code>%s</code></dd>'
            '<dt>Overlays</dt><dd>%s</dd>'
            '<dt>Stage</dt><dd>%s</dd>'
            '<dt>Built</dt><dd>%s on %s with Portage %s</dd>'
            '<dt>Packages</dt><dd>%d (%s)</dd>'
            '<dt>Transferred</dt><dd>%s files, %s bytes</dd>'
            '</dl>\n'
            '<h3>Changes from the previous generation</h3>\n<ul class="changes">%s</ul>\n'
            '<details><summary>All packages</summary><table><tr><th>Package</th><th>Build</th><th>USE</th>'
            '<th>Size</th></tr>%s</table></details>\n'
            '<p><a href="%s/%s/%s">manifest.json</a></p>\n</section>'
            % (
                " current" if generation == current else "", html.escape(generation),
                GENERATIONS, html.escape(generation), html.escape(generation),
                ' <span class="badge">current</span>' if generation == current else "",
                html.escape(manifest.get("published_at", "?")),
                html.escape(snapshot.get("tag") or "?"), html.escape((snapshot.get("commit") or "")[:12]),
                html.escape(", ".join("%s %s" % (o.get("name"), (o.get("commit") or "")[:12])
                                      for o in prov.get("overlays") or []) or "none"),
                html.escape(os.path.basename((prov.get("stage") or {}).get("file") or "?")),
                html.escape(prov.get("built_at") or "?"), html.escape(prov.get("built_on") or "?"),
                html.escape(prov.get("portage_version") or "?"),
                len(pkgs), html.escape(_human(sum(p.get("size") or 0 for p in pkgs))),
                (manifest.get("transfer") or {}).get("files", "?"), (manifest.get("transfer") or {}).get("bytes", "?"),
                change_html or '<li class="none">no changes</li>',
                "".join("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>" % (
                    html.escape(p["cpv"]), html.escape(str(p.get("build_id") or "")),
                    html.escape(" ".join(p.get("use") or [])), html.escape(_human(p.get("size") or 0)))
                    for p in pkgs),
                GENERATIONS, html.escape(generation), MANIFEST,
            ))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
        "<title>%(name)s - binary packages</title>\n<style>\n"
        "body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222;padding:0 1em}\n"
        "h1{border-bottom:3px solid #54487a;padding-bottom:.3em}\n"
        "section{border:1px solid #ccc;border-radius:6px;padding:0 1em 1em;margin:1em 0}\n"
        "section.current{border:2px solid #54487a;background:#f7f5fc}\n"
        ".badge{background:#54487a;color:#fff;border-radius:4px;padding:0 .4em;font-size:70%%;margin-left:.5em}\n"
        "dl{display:grid;grid-template-columns:9em 1fr;gap:.2em}dt{font-weight:bold}dd{margin:0}\n"
        "ul.changes{list-style:none;padding:0}ul.changes li{display:inline-block;margin:.15em;padding:.1em .5em;"
        "border-radius:4px}\n"
        "li.added{background:#d9f2d9}li.added::before{content:'+ '}"
        "li.removed{background:#f6d5d5}li.removed::before{content:'- '}"
        "li.rebuilt{background:#fdf0c4}li.rebuilt::before{content:'\\21BB  '}li.none{color:#777}\n"
        "table{border-collapse:collapse}td,th{padding:.1em .6em;text-align:left;border-bottom:1px solid #eee}\n"
        "</style></head><body>\n<h1>%(name)s</h1>\n"
        "<p>Binary packages served from <code>current/</code> (now <strong>%(current)s</strong>); "
        "%(count)d generation(s) kept. Clients: <code>sync-uri = &lt;this directory&gt;/current</code> "
        "in binrepos.conf.</p>\n%(rows)s\n</body></html>\n"
        % {"name": html.escape(stack_name), "current": html.escape(current or "none"),
           "count": len(rows), "rows": "\n".join(rows)}
    )


def _human(size):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return ("%d %s" % (size, unit)) if unit == "B" else ("%.1f %s" % (size, unit))
        size /= 1024.0
    return str(size)


# -- the two operations -----------------------------------------------------------------------
def _write_index_html(stack, name):
    write_file_atomic(os.path.join(stack.dest, INDEX_HTML), render_index(name, stack).encode("utf-8"), 0o644)


def _prune(stack, keep):
    current = stack.current()
    generations = stack.list()
    kept = set(generations[-keep:]) | ({current} if current else set())
    removed = [g for g in generations if g not in kept]
    for generation in removed:
        # Renamed out of the served name space first, so a half-removed generation is never listed.
        doomed = os.path.join(stack.generations, PARTIAL_PREFIX + "removed-" + generation)
        os.rename(stack.path(generation), doomed)
        shutil.rmtree(doomed)
    return removed


def rollback(params, check_mode=False):
    stack = Stack(params["dest"])
    name = params.get("name") or os.path.basename(stack.dest)
    target = params["rollback_to"]
    result = {"changed": False, "dest": stack.dest, "generation": target, "previous": stack.current()}
    if not GENERATION_RE.match(target) or target not in stack.list():
        raise PublishError("cannot roll back %s to %s: no such generation (have: %s)"
                           % (stack.dest, target, ", ".join(stack.list()) or "none"))
    validate_pkgdir(stack.path(target))
    if stack.current() == target:
        return result
    result["changed"] = True
    if check_mode:
        return result
    with stack.lock():
        stack.switch(target)
        _write_index_html(stack, name)
    return result


def _previous_files(stack, generation, manifest):
    """What the previous generation verified: path → (inode, checksums) and path → (inode,
    revisions), for the files still there."""
    known, reuse = {}, {}
    if not generation or not manifest:
        return known, reuse
    for item in manifest.get("packages") or []:
        try:
            inode = os.stat(os.path.join(stack.path(generation), item["path"])).st_ino
        except (OSError, KeyError):
            continue
        known[item["path"]] = (inode, dict((key.lower(), item.get(key.lower())) for key, _n in DIGESTS
                                           if item.get(key.lower())))
        if item.get("revisions_from", "package") == "package":
            reuse[item["path"]] = (inode, item.get("repo_revisions"))
    return known, reuse


def _is_local(src):
    return not src.startswith("rsync://") and ":" not in src.split("/")[0]


def publish(params, check_mode=False, now=None):
    """Publish ``params['src']`` as a new generation of ``params['dest']`` (module options)."""
    stack = Stack(params["dest"])
    name = params.get("name") or os.path.basename(stack.dest)
    keep = params.get("keep") or 5
    if keep < 1:
        raise PublishError("keep must be at least 1, got %d" % keep)
    provenance = params.get("provenance") or {}
    expected = params.get("expect_revisions") or {}
    src = params["src"]
    previous = stack.current()
    result = {"changed": False, "dest": stack.dest, "generation": previous, "previous": previous,
              "transfer": {"files": 0, "bytes": 0}, "changes": {"added": [], "removed": [], "rebuilt": []}}
    work = tempfile.mkdtemp(prefix="gbh-publish-")
    try:
        index = _fetch_index(src, work)
        record = _fetch_record(src, work)
        prev_manifest = stack.manifest(previous) if previous else None
        if prev_manifest and prev_manifest.get("content_id") == content_id(index, provenance, params.get("base_url"),
                                                                           record):
            # Already published; but a pin that moved meanwhile must still be honoured.
            served = prev_manifest.get("packages") or []
            check_revisions([{"CPV": p["cpv"], "BUILD_ID": p.get("build_id") or "0", "REPO": p.get("repo")}
                             for p in served],
                            dict(("%s-%s" % (p["cpv"], p.get("build_id") or "0"), p.get("repo_revisions"))
                                 for p in served), expected)
            result["packages"] = len(served)
            if stack.partials() and not check_mode:
                with stack.lock():  # left by a publication that was killed
                    for partial in stack.partials():
                        shutil.rmtree(os.path.join(stack.generations, partial), ignore_errors=True)
            return result
        _header, entries = parse_packages(index.decode("utf-8", "replace"))
        if check_mode and _is_local(src):  # otherwise checked on the copy, before it is served
            check_revisions(entries, resolve_revisions(src, entries, record=record), expected)
        result["changes"] = compare((prev_manifest or {}).get("packages"), package_list(entries))
        result["changed"] = True
        result["packages"] = len(entries)
        if check_mode:
            return result
    finally:
        shutil.rmtree(work, ignore_errors=True)

    with stack.lock():
        if not os.path.isdir(stack.generations):
            os.makedirs(stack.generations, 0o755)
        for partial in stack.partials():  # left by a publication that was killed
            shutil.rmtree(os.path.join(stack.generations, partial), ignore_errors=True)
        previous = stack.current()
        prev_manifest = stack.manifest(previous) if previous else None
        known, reuse = _previous_files(stack, previous, prev_manifest)
        now = now or datetime.datetime.now(datetime.timezone.utc)
        generation = stack.new_id(now)
        partial = os.path.join(stack.generations, PARTIAL_PREFIX + generation)
        os.mkdir(partial, 0o755)
        try:
            # The build record is read from the source above and binds files by checksum; it
            # is provenance of the build host, not something clients fetch.
            transfer = _rsync(src, partial, link_dest=stack.path(previous) if previous else None,
                              extra=["--exclude", "/" + RECORD])
            # The copy is what gets published: validate and check *it*, not the source.
            _header, entries, text = validate_pkgdir(partial, known)
            sources = {}
            revisions = resolve_revisions(partial, entries, reuse, record=record, sources=sources)
            check_revisions(entries, revisions, expected)
            with open(os.path.join(partial, "Packages"), "rb") as handle:
                ident = content_id(handle.read(), provenance, params.get("base_url"), record)
            base_url = params.get("base_url")
            if base_url:
                text = set_header_uri(text, "%s/%s/%s" % (base_url.rstrip("/"), GENERATIONS, generation))
                # New inodes: the copied index may be a hard link into the previous generation.
                write_file_atomic(os.path.join(partial, "Packages"), text.encode("utf-8"), 0o644)
                if os.path.exists(os.path.join(partial, "Packages.gz")):
                    write_file_atomic(os.path.join(partial, "Packages.gz"),
                                      gzip.compress(text.encode("utf-8"), mtime=0), 0o644)
            packages = package_list(entries, revisions, sources)
            changes = compare((prev_manifest or {}).get("packages"), packages)
            manifest = {
                "format": MANIFEST_FORMAT,
                "stack": name,
                "generation": generation,
                "previous": previous,
                "published_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "content_id": ident,
                "source": src,
                "provenance": provenance,
                "packages": packages,
                "changes": changes,
                "transfer": transfer,
            }
            write_file_atomic(os.path.join(partial, MANIFEST),
                              (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8"), 0o644)
            _fsync_dir(partial)
            os.rename(partial, stack.path(generation))
            _fsync_dir(stack.generations)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        stack.switch(generation)
        removed = _prune(stack, keep)
        _write_index_html(stack, name)
    result.update(changed=True, generation=generation, previous=previous, transfer=transfer, changes=changes,
                  packages=len(packages), pruned=removed, url_path="%s/%s" % (GENERATIONS, generation))
    return result


def run_publication(params, check_mode=False):
    """The module's entry point: a rollback when ``rollback_to`` is set, else a publication."""
    if params.get("rollback_to"):
        return rollback(params, check_mode)
    return publish(params, check_mode)
