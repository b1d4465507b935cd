# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Configuration files of a system or chroot root: found, read, planned and written.

A file is named by the absolute path the root itself uses (``/etc/portage/make.conf``) and
found as a process inside the root finds it (:mod:`._chroot_paths`): a symbolic link in a
chroot is followed inside the chroot, never to the host's files. At the default root ``/``
that is plain path resolution.

The config editors (:mod:`._make_conf`, :mod:`._repos_conf`, :mod:`._binrepos`) are pure
functions from the old text to the new one; they return a :class:`FilePlan` (before, after,
the module result). :func:`write_plan` carries a plan out with
:func:`._common.write_file_atomic`, the collection's one atomic writer.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import posixpath

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._chroot_paths import (
    ChrootPathError,
    chroot_root,
    describe,
    is_below,
    resolve_in_root,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError, write_file_atomic


class FilePlan(object):
    """What one file should become: ``after`` is None when the file is to be removed.

    ``path`` names the file in results and diffs; ``target`` is the file written (a symlink
    at the end already followed inside the root) and ``entry`` the directory entry a removal
    deletes (the link itself). Both default to ``path``.
    """

    def __init__(self, path, before, after, result, make_dirs=(), target=None, entry=None):
        self.path = path
        self.before = before  # None when the file does not exist
        self.after = after
        self.result = result
        self.make_dirs = list(make_dirs)
        self.target = target or path
        self.entry = entry or path

    @classmethod
    def for_file(cls, conf, before, after, result):
        """The plan of :class:`RootFile` ``conf``; directories are made only for a write."""
        return cls(conf.path, before, after, result, make_dirs=conf.make_dirs if after is not None else (),
                   target=conf.host, entry=conf.entry)

    @property
    def changed(self):
        return self.before != self.after

    def diff(self):
        return {
            "before": self.before or "",
            "after": self.after or "",
            "before_header": self.path if self.before is not None else "%s (absent)" % self.path,
            "after_header": self.path if self.after is not None else "%s (absent)" % self.path,
        }


def write_plan(plan, data=None, target=None, mode=0o644, owner=None, move=None):
    """Carry out a changed ``plan``: remove its entry when ``after`` is None, else create the
    missing directories (mode 0755) and replace ``target`` (the plan's own by default) with
    ``data`` (``after`` as UTF-8 by default) through :func:`._common.write_file_atomic`, whose
    ``mode``, ``owner`` and ``move`` these are. The temporary file has a dot name, which
    Portage skips when it reads a configuration directory."""
    if plan.after is None:
        if plan.before is not None:
            os.unlink(plan.entry)
        return
    for directory in plan.make_dirs:
        if not os.path.isdir(directory):
            os.mkdir(directory)
            os.chmod(directory, 0o755)
    write_file_atomic(target or plan.target, plan.after.encode("utf-8") if data is None else data,
                      mode=mode, owner=owner, move=move)


def read_text(path, label=None):
    """The text of file ``path`` (a host path already resolved in its root), None when it
    does not exist; ``label`` names it in errors."""
    label = label or path
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InfraError("cannot read %s: %s" % (label, exc.strerror or exc))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InfraError("%s is not UTF-8 text (%s); refusing to edit it" % (label, exc))


def config_root(root):
    """The canonical root whose configuration is edited: the host itself (``/``, where
    resolving a path inside the root is plain resolution) or a chroot."""
    return chroot_root(root, "system", allow_host=True)


class RootFile(object):
    """A file of ``root`` by the absolute path the root itself uses (``/etc/portage/make.conf``),
    resolved the way a process inside the root finds it.

    ``path`` is that file spelled below the root on the host, for results and messages;
    ``host`` the file to read and write, ``inside`` its path as the root sees it (a symlink at
    the end followed inside the root when ``follow``); ``entry`` the directory entry itself,
    the link not followed (what a removal deletes); ``make_dirs`` the directories a write
    creates, outermost first.

    A symbolic link on the way whose target the root does not have is refused: nothing is
    created behind it, since ``mkdir -p`` inside the root fails there too and the same link
    followed from the host may lead to the host's own files.
    """

    def __init__(self, root, name, what, follow=True, shown=None):
        self.root, self.name, self.what = root, name, what
        self.path = shown or os.path.join(root, name.lstrip("/"))
        parent, parent_inside = self._directory(posixpath.dirname(name))
        base = posixpath.basename(name)
        self.entry = os.path.join(parent, base)
        self.host, self.inside = self.entry, posixpath.join(parent_inside, base)
        if follow and os.path.islink(self.entry):
            self.host, self.inside = resolve_in_root(root, self.inside, what)
            if not os.path.isdir(os.path.dirname(self.host)):
                raise self._dangling(self.entry, posixpath.join(parent_inside, base),
                                     posixpath.dirname(self.inside))
        self.make_dirs = missing_dirs(self.host)

    def _directory(self, name):
        """Host and root path of directory ``name``, link by link: a missing part ends the
        walk (what follows it is created plainly), a link must lead to a directory."""
        host, inside = self.root, "/"
        parts = [part for part in name.split("/") if part]
        for index, part in enumerate(parts):
            entry, entry_inside = os.path.join(host, part), posixpath.join(inside, part)
            if os.path.islink(entry):
                host, inside = resolve_in_root(self.root, entry_inside, self.what)
                if not os.path.isdir(host):
                    raise self._dangling(entry, entry_inside, inside)
            elif not os.path.lexists(entry):
                rest = parts[index:]
                return os.path.join(host, *rest), posixpath.join(inside, *rest)
            elif not os.path.isdir(entry):
                raise ChrootPathError("%s %s of %s: %s is not a directory"
                                      % (self.what, self.name, self.root, entry_inside))
            else:
                host, inside = entry, entry_inside
        return host, inside

    def _dangling(self, entry, entry_inside, inside):
        """The refusal of link ``entry`` (``entry_inside`` in the root): the directory it
        leads to (for a link to a file, the file's directory), ``inside``, is missing."""
        message = "%s %s of %s: %s is a symlink to %s, and %s does not exist inside that root" % (
            self.what, self.name, self.root, entry_inside, os.readlink(entry), inside)
        seen_from_host = os.path.realpath(entry)
        if not is_below(seen_from_host, self.root):
            message += "; followed from the host it leads out of the chroot, to %s outside the chroot" % seen_from_host
        return ChrootPathError(message + "; nothing is created behind it: create the link's target inside the "
                                         "root, or change the link")

    def label(self):
        """The file for a message, with where the root's links lead when that differs."""
        shown = describe(self.name, self.inside)
        return shown if self.root == "/" else "%s of %s" % (shown, self.root)


def missing_dirs(path):
    """Directories above ``path`` that do not exist yet, outermost first."""
    missing = []
    parent = os.path.dirname(path)
    while parent and not os.path.exists(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    return list(reversed(missing))
