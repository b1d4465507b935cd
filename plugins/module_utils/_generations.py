# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Immutable directories named by time, and one symbolic link naming the one in use.

Both the build host's records of one chroot (``<id>/`` and ``last``) and a binary package
server's stack (``generations/<id>/`` and ``current``) are laid out this way::

    <directory>/<id>/                 complete, never changed once renamed into place
    <directory>/.partial-<id>/        being written; removed when abandoned
    <link> -> <prefix><id>            switched with one rename(2): readers see old or new

Ids are the UTC time, ``YYYYMMDDTHHMMSSZ``, with ``-N`` appended when that second is taken.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import re
import shutil

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError

ID_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z(-[0-9]+)?$")
PARTIAL_PREFIX = ".partial-"


def id_key(name):
    """Sort key of an id: its time, then its numeric suffix (``-10`` after ``-9``)."""
    stamp, _sep, suffix = name.partition("-")
    return stamp, int(suffix or 0)


def fsync_dir(path):
    """Flush a directory's entries, so a rename into it survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_keep(value, unit, always, error=InfraError):
    """``value`` as how many ``unit`` to keep, refused with ``error`` unless it is a whole
    number of at least 1 (``always`` says which one is kept regardless). A 0 is refused, not
    taken for the default: keeping nothing is not what anyone asks for."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise error("keep must be a whole number of %s, at least 1 (%s is always kept); got %r"
                    % (unit, always, value))
    return value


class Generations(object):
    """The ids below ``directory`` and the ``link`` (whose target is ``prefix`` + id) naming
    one of them."""

    def __init__(self, directory, link, prefix=""):
        self.directory = directory
        self.link = link
        self.prefix = prefix

    def path(self, ident):
        return os.path.join(self.directory, ident)

    def current(self):
        """The id the link names, or None (no link, or one naming no complete directory)."""
        try:
            target = os.readlink(self.link).rstrip("/")
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.EINVAL):
                return None
            raise
        ident = target[len(self.prefix):] if target.startswith(self.prefix) else ""
        return ident if ID_RE.match(ident) and os.path.isdir(self.path(ident)) else None

    def list(self):
        """Complete directories, oldest first."""
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        return sorted((n for n in names if ID_RE.match(n) and os.path.isdir(self.path(n))), key=id_key)

    def partials(self):
        """Names of the directories being written, or left by a run that was killed."""
        try:
            return [n for n in os.listdir(self.directory) if n.startswith(PARTIAL_PREFIX)]
        except OSError:
            return []

    def remove_partials(self):
        for partial in self.partials():
            shutil.rmtree(self.path(partial), ignore_errors=True)

    def new_id(self, now):
        base = now.strftime("%Y%m%dT%H%M%SZ")
        taken = self.list() + [n[len(PARTIAL_PREFIX):] for n in self.partials()]
        # Ids only grow: a pruned id handed out again would make a client that still holds its
        # index (URI .../generations/<id>) fetch another generation's files, and would sort
        # before the generations it follows. If the clock went back, stay after the latest.
        latest = max((id_key(n) for n in taken if ID_RE.match(n)), default=None)
        if latest is None or latest[0] < base:
            return base
        return "%s-%d" % (latest[0], latest[1] + 1)

    def partial_path(self, ident):
        return self.path(PARTIAL_PREFIX + ident)

    def commit(self, ident):
        """Rename the complete ``.partial-<id>`` into place (not yet what the link names)."""
        fsync_dir(self.partial_path(ident))
        os.rename(self.partial_path(ident), self.path(ident))
        fsync_dir(self.directory)

    def switch(self, ident):
        """Point the link at ``ident`` with one rename."""
        parent = os.path.dirname(self.link)
        tmp = os.path.join(parent, ".%s.%d" % (os.path.basename(self.link), os.getpid()))
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(self.prefix + ident, tmp)
        os.rename(tmp, self.link)
        fsync_dir(parent)

    def prune(self, keep):
        """Remove all but the newest ``keep`` and the current one; returns the ids removed."""
        current = self.current()
        idents = self.list()
        kept = set(idents[-keep:]) | ({current} if current else set())
        removed = [i for i in idents if i not in kept]
        for ident in removed:
            # Renamed out of the listed name space first, so a half-removed one is never listed.
            doomed = self.partial_path("removed-" + ident)
            os.rename(self.path(ident), doomed)
            shutil.rmtree(doomed)
        return removed
