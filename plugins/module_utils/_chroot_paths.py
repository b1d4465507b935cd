# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Paths inside a chroot, seen from the host as the chroot itself sees them.

A process chrooted into ``root`` that opens ``/var/cache/binpkgs`` follows every symbolic
link on the way *inside* ``root``: an absolute link target starts again at ``root`` and
``..`` stops at ``root``. The host following the same path from outside follows an absolute
link to the host's own files instead (``var/cache/binpkgs -> /etc`` would be the host's
``/etc``). Everything the collection reads from or writes into a chroot from the host goes
through :func:`resolve_in_root`, which walks the path the way the chroot does (what Linux's
``openat2(RESOLVE_IN_ROOT)`` does, done in Python so it also runs where that call is
missing), so no link inside a chroot can point the host at anything outside it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError

# The kernel's own limit on symbolic links followed in one lookup (MAXSYMLINKS).
MAX_SYMLINKS = 40


class ChrootPathError(InfraError):
    """A path inside a chroot that cannot be used; nothing was read or written through it."""


def is_below(path, root):
    """Whether canonical ``path`` is ``root`` itself or below it."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def chroot_root(root, what="chroot", allow_host=False):
    """The canonical path of a chroot's root directory; refuses a relative or missing path,
    anything that is not a directory and, unless ``allow_host`` (a task that may configure the
    host itself), ``/``."""
    if not root or not isinstance(root, str) or not os.path.isabs(root):
        raise ChrootPathError("%s root %r must be an absolute path to the chroot's top directory" % (what, root))
    real = os.path.realpath(root)
    if real == "/" and not allow_host:
        raise ChrootPathError("%s root %s resolves to the host's / ; give the path of a chroot, never the host "
                              "itself" % (what, root))
    if not os.path.isdir(real):
        raise ChrootPathError("%s root %s does not exist or is not a directory; unpack the stage first"
                              % (what, root))
    return real


def resolve_in_root(root, path, what="path"):
    """``(host_path, chroot_path)`` of ``path`` (absolute, as the chroot names it) below the
    canonical ``root``, every symbolic link on the way followed inside the chroot.

    Components that do not exist yet are kept as they are, so the result also names a file
    about to be created. Raises ChrootPathError for a relative path or a symlink loop.
    """
    if not path or not isinstance(path, str) or not path.startswith("/"):
        raise ChrootPathError("%s %r must be an absolute path inside the chroot" % (what, path))
    pending = [part for part in path.split("/") if part not in ("", ".")]
    pending.reverse()
    resolved = []
    links = 0
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *(resolved + [part]))
        if os.path.islink(candidate):
            links += 1
            if links > MAX_SYMLINKS:
                raise ChrootPathError("%s %s of chroot %s: too many levels of symbolic links" % (what, path, root))
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            pending.extend(reversed([p for p in target.split("/") if p not in ("", ".")]))
            continue
        resolved.append(part)
    inside = "/" + "/".join(resolved)
    return os.path.join(root, *resolved) if resolved else root, inside


def describe(path, inside):
    """``path`` for a message, with where the chroot's links lead when that differs."""
    return path if os.path.normpath(path) == inside else "%s (inside the chroot: %s)" % (path, inside)


def ensure_path(params, check_mode=False):
    """The ``chroot_path`` module: resolve ``path`` inside ``root`` and, with
    ``state=directory``, create what is missing of it there (owner root, ``mode`` on the last
    directory). Returns the module result."""
    root = chroot_root(params["root"], allow_host=True)
    host, inside = resolve_in_root(root, params["path"])
    result = {"changed": False, "root": root, "path": params["path"], "inside": inside, "host_path": host,
              "exists": os.path.lexists(host)}
    state = params.get("state") or "resolved"
    if state == "resolved":
        return result
    mode = params.get("mode")
    if isinstance(mode, str):
        try:
            mode = int(mode, 8)
        except ValueError:
            raise ChrootPathError("mode %r is not an octal mode such as 0700" % (mode,))
    if os.path.lexists(host) and not os.path.isdir(host):
        raise ChrootPathError("%s of chroot %s exists and is not a directory" % (describe(params["path"], inside), root))
    missing = []
    current = host
    while not os.path.isdir(current) and current != root:
        missing.append(current)
        current = os.path.dirname(current)
    if missing:
        result["changed"] = True
    elif mode is not None and (os.stat(host).st_mode & 0o7777) != mode:
        result["changed"] = True
    if check_mode or not result["changed"]:
        return result
    for directory in reversed(missing):
        os.mkdir(directory, 0o755)
    if mode is not None:
        os.chmod(host, mode)
    result["exists"] = True
    return result
