# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A snapshot tarball read into a git tree, without extracting anything.

``scan_tarball`` streams the decompressed tar through the project's tar reader; every member
is judged by the tar member policy plus a Portage tree's own rules (one top folder, no
``.git``, only files, directories and links), hashed as a git blob, and handed to ``git
fast-import`` only when git does not have that blob yet. The result is ``{path: (mode, blob
sha)}`` below the top folder and the bytes of ``metadata/timestamp.x``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._decompress import DecompressError, TarStream
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._gitstore import MODE_EXEC, MODE_FILE, MODE_LINK
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._tarpolicy import MemberPolicy, link_leaves_root
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._tarstream import (
    CONTIGUOUS,
    DIRECTORY,
    HARDLINK,
    REGULAR,
    SYMLINK,
    TYPE_NAMES,
    TarError,
    iter_members,
)

TIMESTAMP_FILE = b"metadata/timestamp.x"


class SnapshotError(InfraError):
    """The snapshot could not be imported; nothing in the repository was changed."""


class CandidateError(SnapshotError):
    """What one mirror served is unusable (garbage checksum file, corrupt or hostile tarball,
    unreadable or stale timestamp), so the next mirror is tried.

    A hostile member counts too: it is refused either way, so nothing of it reaches the
    repository, and a mirror that serves one (unverified, or under a stolen key) must not keep
    an honest mirror from being used; the warning about the skipped mirror keeps it visible.

    Errors that every mirror would give alike stay plain SnapshotErrors and end the run at
    once: the local key file, the repository's state (a tag taken by another tree, a blocked
    work tree), git itself, and a snapshot older than the branch tip that is exactly the day
    asked for.
    """


class TreeScan(object):
    """Turns a snapshot's tar members into ``{path: (mode, blob sha)}`` under its top folder.

    Blobs git does not have yet are handed to ``emit_blob`` (fast-import) as they pass; with
    ``emit_blob=None`` (check mode) nothing is written anywhere. Which blobs git has comes
    from ``old_tree`` (a TreeReader, possibly still reading): until it is ready, new blobs
    wait in a bounded buffer instead of stalling the stream.
    """

    PENDING_LIMIT = 64 << 20

    def __init__(self, label, old_tree, emit_blob=None):
        self.label = label
        self.policy = MemberPolicy("snapshot", label, CandidateError)
        self.old_tree = old_tree
        self.known = None
        self.pending = []
        self.pending_bytes = 0
        self.pending_seen = set()
        self.emit_blob = emit_blob
        self.tree = {}
        self.top = None
        self.prefix = None
        self.timestamp_data = None

    def _resolve_known(self):
        """The old tree is (or must now be) read: settle the blobs that waited for it."""
        self.known = set(sha for _mode, sha in self.old_tree.result().values())
        pending, self.pending, self.pending_seen = self.pending, None, None
        for sha, data in pending:
            self._store(sha, data)

    def _store(self, sha, data):
        if sha not in self.known:
            self.known.add(sha)
            if self.emit_blob is not None:
                self.emit_blob(data)

    def finish(self):
        if self.known is None:
            self._resolve_known()

    def _relative(self, name):
        prefix = self.prefix
        if prefix is not None and name.startswith(prefix) and b"/." not in name and b"//" not in name:
            # Fast path for the ~all members: under the top folder, no '.', '..', '.git' parts.
            return name[len(prefix):].rstrip(b"/")
        parts = self.policy.parts(name, name)
        if not parts:
            self.policy.refuse(name, "has an empty path")
        if self.top is None:
            self.top = parts[0]
            self.prefix = self.top + b"/"
        elif parts[0] != self.top:
            self.policy.refuse(name, "is outside the snapshot's top folder %r" % self.top.decode("utf-8", "replace"))
        rel = parts[1:]
        if any(p.lower() == b".git" for p in rel):
            self.policy.refuse(name, "has a '.git' path component")
        return b"/".join(rel)

    def _blob(self, data):
        digest = hashlib.sha1(b"blob %d\0" % len(data))
        digest.update(data)
        sha = digest.hexdigest().encode()
        if self.known is None and self.old_tree.ready():
            self._resolve_known()
        if self.known is not None:
            self._store(sha, data)
        elif sha not in self.pending_seen:
            self.pending_seen.add(sha)
            self.pending.append((sha, data))
            self.pending_bytes += len(data)
            if self.pending_bytes > self.PENDING_LIMIT:
                self._resolve_known()
        return sha

    def add(self, name, typeflag, mode, linkname, data):
        rel = self._relative(name)
        if typeflag == DIRECTORY:
            return
        refuse = self.policy.refuse
        if not rel:
            refuse(name, "is the top folder but not a directory")
        if typeflag in (REGULAR, CONTIGUOUS):
            self.tree[rel] = (MODE_EXEC if mode & 0o111 else MODE_FILE, self._blob(data))
            if rel == TIMESTAMP_FILE:
                self.timestamp_data = data
        elif typeflag == HARDLINK:
            parts = self.policy.parts(name, linkname, "hard link target")
            if not parts or parts[0] != self.top:
                refuse(name, "is a hard link pointing outside the snapshot's top folder")
            target = b"/".join(parts[1:])
            if target not in self.tree:
                refuse(name, "is a hard link to %r, which is not an earlier file of the snapshot"
                       % linkname.decode("utf-8", "replace"))
            self.tree[rel] = self.tree[target]
            if rel == TIMESTAMP_FILE:
                refuse(name, "(metadata/timestamp.x) must be a regular file")
        elif typeflag == SYMLINK:
            if linkname.startswith(b"/"):
                refuse(name, "is a symbolic link to an absolute path")
            if link_leaves_root(rel.count(b"/"), linkname):
                refuse(name, "is a symbolic link pointing outside the tree")
            self.tree[rel] = (MODE_LINK, self._blob(linkname))
        else:
            kind = TYPE_NAMES.get(typeflag, "member of tar type %r" % typeflag.decode("latin-1"))
            refuse(name, "is a %s; a Portage tree holds only files, directories and links" % kind)


def scan_tarball(path, label, old_tree, emit_blob=None):
    """The TreeScan of the xz tarball at ``path`` (see TreeScan for ``old_tree`` and ``emit_blob``).

    A tarball that cannot be read or holds a refused member raises CandidateError; a failure
    that is not the tarball's (git reading the old tree) raises SnapshotError.
    """
    scan = TreeScan(label, old_tree, emit_blob)
    try:
        stream = TarStream(path, "xz", label, what="snapshot")
    except InfraError as exc:
        raise SnapshotError("cannot read snapshot %s: %s" % (label, exc))
    try:
        for member in iter_members(stream.read):
            scan.add(*member)
        scan.finish()
    except (CandidateError, TarError, DecompressError) as exc:
        try:
            # A decompressor that failed is why the tar stream broke off: its reason is the better one.
            stream.close()
        except DecompressError as failed:
            raise CandidateError(str(failed))
        if isinstance(exc, CandidateError):
            raise
        raise CandidateError(str(exc) if isinstance(exc, DecompressError) else "refusing snapshot %s: %s" % (label, exc))
    except InfraError as exc:
        # Not the tarball's fault (git ls-tree of the tip failed): the same on every mirror.
        stream.close(abandon=True)
        if isinstance(exc, SnapshotError):
            raise
        raise SnapshotError("cannot import snapshot %s: %s" % (label, exc))
    except BaseException:
        stream.close(abandon=True)
        raise
    try:
        stream.close()
    except DecompressError as exc:
        raise CandidateError(str(exc))
    if scan.timestamp_data is None:
        raise CandidateError("refusing snapshot %s: it has no metadata/timestamp.x, so its date is unknown" % label)
    return scan
