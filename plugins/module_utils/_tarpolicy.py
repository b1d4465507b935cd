# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which tar member names may land below a root: the one policy for stages and snapshots.

A tarball from a mirror is input from outside. Before a member reaches ``tar`` (a stage) or a
git tree (a snapshot), its name must stay below the root: no absolute path, no ``..``
component, no hard link target that leaves the root, and nothing reached through an archive
symlink that leads out of the root when the host follows it, as ``tar`` would while
extracting. What a caller adds on top (a snapshot's single top folder, its ban on ``.git`` and
on device nodes) stays with the caller; the names themselves are judged here.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._tarstream import HARDLINK, SYMLINK


def link_leaves_root(depth, target):
    """Whether a symlink ``depth`` directories below the root, pointing at ``target``, leads
    out of the root when followed on the host (an absolute target always does)."""
    if target.startswith(b"/"):
        return True
    for part in target.split(b"/"):
        if part == b"..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in (b"", b"."):
            depth += 1
    return False


class MemberPolicy(object):
    """Judges the members of one archive; ``what`` and ``label`` name it in messages
    (``refusing stage stage3-….tar.xz: member '/etc/evil' has an absolute path``), and
    refusals raise ``error`` (an InfraError class)."""

    def __init__(self, what, label, error=InfraError):
        self.what = what
        self.label = label
        self.error = error
        self.symlinks = {}

    def refuse(self, name, reason):
        raise self.error("refusing %s %s: member %r %s"
                         % (self.what, self.label, name.decode("utf-8", "backslashreplace"), reason))

    def parts(self, member, name, role="path"):
        """The components of ``name`` (the member's path, or its link target as ``role``
        says) without empty and ``.`` parts; refuses absolute names and ``..`` components."""
        if name.startswith(b"/"):
            self.refuse(member, "has an absolute %s" % role)
        parts = [p for p in name.split(b"/") if p not in (b"", b".")]
        if b".." in parts:
            self.refuse(member, "has a '..' component in its %s (would escape the root)" % role)
        return parts

    def check(self, name, typeflag, linkname):
        """The member's path components, once it is known to land below the root.

        Besides :meth:`parts` for its path (and a hard link's target), a member below an
        earlier archive symlink that leads out of the root is refused: extracting it would
        write through that link onto the host.
        """
        parts = self.parts(name, name)
        for i in range(1, len(parts)):
            prefix = b"/".join(parts[:i])
            target = self.symlinks.get(prefix)
            if target is not None and link_leaves_root(i - 1, target):
                self.refuse(name, "lies below the symbolic link %s -> %s, which leads out of the root"
                            % (prefix.decode("utf-8", "replace"), target.decode("utf-8", "replace")))
        if typeflag == HARDLINK:
            self.parts(name, linkname, "hard link target")
        path = b"/".join(parts)
        if typeflag == SYMLINK:
            self.symlinks[path] = linkname
        else:
            self.symlinks.pop(path, None)
        return parts
