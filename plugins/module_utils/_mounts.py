# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mount and unmount the pseudo file systems a chroot staging root needs, safely.

The mount table is read from ``/proc/self/mountinfo`` (see proc(5)), which, unlike
``/proc/mounts``, tells stacked mounts apart (mount and parent IDs), shows which part of a file
system a bind mount exposes (the ``root`` field) and carries the propagation state in its
optional fields. That is what makes the two dangerous cases decidable:

* an ``rbind`` of ``/dev`` that stays *shared* with the host's ``/dev`` propagates an
  ``umount`` of ``<root>/dev/pts`` back to the host's ``/dev/pts``; so every mount below the
  root is made a slave before anything below it is unmounted;
* a hostile stage may contain ``dev -> /dev``; mount(8) follows symlinks, so every target is
  resolved first and refused when it leaves the root.

The root itself is checked as every chroot root of the collection is
(:func:`._chroot_paths.chroot_root`). The mount table is read and queried by :mod:`._mountinfo`.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._chroot_paths import (
    ChrootPathError,
    chroot_root,
    is_below,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import find_program, run
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._mountinfo import (
    MountError,
    bind_identity,
    depths,
    describe,
    describe_line,
    is_shared,
    mounts_below,
    option_satisfied,
    read_mountinfo,
    subtree,
    top_mount_at,
)


# What Portage needs in a chroot: proc, then /dev and /sys rbound and made rslave (so that
# unmounting them later cannot propagate to the host's /dev and /sys).
DEFAULT_MOUNTS = (
    {"src": "proc", "target": "proc", "type": "proc"},
    {"src": "/dev", "target": "dev", "type": "rbind"},
    {"src": "/sys", "target": "sys", "type": "rbind"},
)

BIND_TYPES = ("bind", "rbind")


class UnsafeTargetError(MountError):
    """A mount target that resolves outside the staging root (or onto it)."""


class MountBusyError(MountError):
    """An unmount refused by the kernel because something still uses the file system."""


def normalize_spec(spec):
    """A mount request with defaults filled in, or a MountError saying which field is wrong."""
    if not isinstance(spec, dict):
        raise MountError("mount entry %r is not a dictionary with src, target and type" % (spec,))
    target = spec.get("target")
    kind = spec.get("type")
    if not target or not isinstance(target, str):
        raise MountError("mount entry %r has no target (a path relative to the staging root)" % (spec,))
    if not kind:
        raise MountError("mount entry for target %r has no type (proc, sysfs, tmpfs, bind, rbind, ...)" % target)
    src = spec.get("src") or (None if kind in BIND_TYPES else kind)
    if src is None:
        raise MountError("%s mount of target %r needs src, the host path to bind" % (kind, target))
    if kind in BIND_TYPES and not os.path.isabs(src):
        raise MountError("%s mount of target %r: src %r must be an absolute host path" % (kind, target, src))
    options = spec.get("options") or []
    if isinstance(options, str):
        options = [o for o in options.split(",") if o]
    options = [str(o).strip() for o in options if str(o).strip()]
    rslave = spec.get("rslave")
    if rslave is None:
        rslave = kind == "rbind"
    return {"src": src, "target": target, "type": kind, "options": options, "rslave": bool(rslave)}


def resolve_target(root, target):
    """``(resolved path, missing directories)`` for ``target`` inside canonical ``root``.

    Symlinks are resolved the way mount(8) would follow them on the host, so ``dev -> /dev`` in
    a stage resolves to the host's ``/dev`` and is refused, while a relative link that stays in
    the root (``var/run -> ../run``) is fine; the mount then goes to the resolved path.
    """
    rel = target.lstrip("/")
    resolved = os.path.realpath(os.path.join(root, rel))
    if resolved == root:
        raise UnsafeTargetError("mount target %r resolves to the staging root %s itself; refusing" % (target, root))
    if not is_below(resolved, root):
        raise UnsafeTargetError(
            "mount target %r resolves to %s, outside the staging root %s (a symlink or '..' leads "
            "out of it); refusing to mount there: fix the stage's %s" % (target, resolved, root, rel)
        )
    missing = []
    cur = resolved
    while not os.path.lexists(cur):
        missing.append(cur)
        cur = os.path.dirname(cur)
    if os.path.islink(cur) or (cur != resolved and not os.path.isdir(cur)):
        raise MountError("cannot create mount target %s: %s is not a directory" % (resolved, cur))
    return resolved, list(reversed(missing))


def create_target(root, resolved, missing, as_file=False):
    """Create the missing directories (or an empty file for a file bind) without following links."""
    for index, path in enumerate(missing):
        last = index == len(missing) - 1
        if last and as_file:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            os.close(fd)
        else:
            os.mkdir(path, 0o755)
    # A stage process could have swapped a component for a symlink meanwhile: check again.
    if os.path.realpath(resolved) != resolved:
        raise UnsafeTargetError("mount target %s changed under us (a symlink appeared); refusing" % resolved)


def matches(table, existing, spec):
    if spec["type"] in BIND_TYPES:
        return bind_identity(table, spec["src"]) == (existing.major_minor, existing.root)
    return existing.fstype == spec["type"]


# ---------------------------------------------------------------------------------------------
# Acting


class Mounter(object):
    """Runs mount/umount with list arguments and records a readable line per action."""

    def __init__(self, check_mode):
        self.check_mode = check_mode
        self.actions = []
        self._mount = None
        self._umount = None

    @property
    def mount(self):
        if self._mount is None:
            self._mount = find_program("mount")
        return self._mount

    @property
    def umount(self):
        if self._umount is None:
            self._umount = find_program("umount")
        return self._umount

    def do(self, text, args):
        self.actions.append(text)
        if not self.check_mode:
            rc, _out, err = run(args, check=False)
            if rc != 0:
                raise MountError("%s failed (exit %d): %s" % (text, rc, err.decode("utf-8", "replace").strip()))

    def mount_spec(self, spec, resolved):
        opts = spec["options"]
        kind = spec["type"]
        if kind in BIND_TYPES:
            args = [self.mount, "--" + kind]
            args += ["-o", ",".join(opts)] if opts else []
            args += [spec["src"], resolved]
        else:
            args = [self.mount, "-t", kind] + (["-o", ",".join(opts)] if opts else []) + [spec["src"], resolved]
        self.do("mount %s %s on %s" % (kind, spec["src"], resolved), args)

    def remount(self, spec, resolved):
        opts = ["remount"] + (["bind"] if spec["type"] in BIND_TYPES else []) + spec["options"]
        self.do("remount %s with %s" % (resolved, ",".join(spec["options"])),
                [self.mount, "-o", ",".join(opts), resolved])

    def make_rslave(self, target):
        self.do("make-rslave %s" % target, [self.mount, "--make-rslave", target])

    def unmount(self, target, lazy):
        args = [self.umount] + (["--lazy"] if lazy else []) + [target]
        self.actions.append("umount %s%s" % ("--lazy " if lazy else "", target))
        if self.check_mode:
            return
        rc, _out, err = run(args, check=False)
        if rc != 0:
            text = err.decode("utf-8", "replace").strip()
            if "busy" in text.lower():
                raise MountBusyError(
                    "cannot unmount %s: target is busy (a process has its working directory or an "
                    "open file there); find it with `fuser -vm %s`, stop it and run again" % (target, target)
                )
            raise MountError("umount %s failed (exit %d): %s" % (target, rc, text))


def ensure_mounted(root, specs, mounter, reader=read_mountinfo):
    """Mount what is missing, fix options and propagation, in request order."""
    planned = []
    for spec in specs:
        resolved, missing = resolve_target(root, spec["target"])
        table = reader()
        existing = top_mount_at(table, resolved)
        if existing is not None and not matches(table, existing, spec):
            raise MountError(
                "%s already has a %s mount of %s, not the requested %s of %s; unmount it first "
                "(state=unmounted) or change the mount list" % (resolved, existing.fstype, existing.source,
                                                                spec["type"], spec["src"])
            )
        if existing is None:
            if spec["type"] in BIND_TYPES and not os.path.exists(spec["src"]):
                raise MountError("%s source %s does not exist on the host" % (spec["type"], spec["src"]))
            as_file = spec["type"] in BIND_TYPES and not os.path.isdir(spec["src"])
            if os.path.exists(resolved) and not as_file and not os.path.isdir(resolved):
                raise MountError("mount target %s exists and is not a directory" % resolved)
            for path in missing:
                mounter.actions.append("create %s" % path)
            if missing and not mounter.check_mode:
                create_target(root, resolved, missing, as_file=as_file)
            mounter.mount_spec(spec, resolved)
            planned.append({"target": resolved, "type": spec["type"], "source": spec["src"]})
            if spec["rslave"]:
                # Always, as the handbook does: whether the copies came out shared depends on
                # the host's propagation, and a new mount is a change anyway.
                mounter.make_rslave(resolved)
            continue
        if not all(option_satisfied(o, existing) for o in spec["options"]):
            mounter.remount(spec, resolved)
        if spec["rslave"] and any(is_shared(m) for m in subtree(table, existing)):
            mounter.make_rslave(resolved)
    return planned


def unmount_all(root, mounter, lazy=False, reader=read_mountinfo):
    """Unmount every mount strictly below ``root``, deepest first, each one on its own.

    Before any unmount the mounts below the root are made slaves: an unmount is propagated to
    the peers of the parent mount, and the parent of ``<root>/dev/pts`` is ``<root>/dev``, a
    peer of the host's ``/dev`` as long as it is shared.
    """
    table = reader()
    below = mounts_below(table, root)
    if mounter.check_mode:
        depth = depths(table)
        for m in sorted(below, key=lambda m: (depth[m.mount_id], m.mount_id), reverse=True):
            mounter.unmount(m.target, lazy)
        return
    below_ids = set(m.mount_id for m in below)
    for top in [m for m in below if m.parent_id not in below_ids]:
        if any(is_shared(m) for m in subtree(table, top)) and top_mount_at(table, top.target).mount_id == top.mount_id:
            mounter.make_rslave(top.target)
    for _attempt in range(4 * len(below) + 4):
        table = reader()
        below = mounts_below(table, root)
        if not below:
            return
        depth = depths(table)
        by_id = dict((m.mount_id, m) for m in table)
        victim = max(below, key=lambda m: (depth[m.mount_id], m.mount_id))
        parent = by_id.get(victim.parent_id)
        if parent in below and is_shared(parent):
            # A hidden mount that became visible only now: make it a slave before going on.
            mounter.make_rslave(parent.target)
            now = [m for m in reader() if m.mount_id == parent.mount_id]
            if now and is_shared(now[0]):
                raise MountError(
                    "refusing to unmount %s: its parent mount %s is still shared and the unmount "
                    "would propagate outside the staging root" % (victim.target, parent.target)
                )
        if os.path.realpath(victim.target) != victim.target:
            raise UnsafeTargetError("refusing to unmount %s: the path now leads through a symlink" % victim.target)
        mounter.unmount(victim.target, lazy)
        if victim.mount_id in set(m.mount_id for m in reader()) and not lazy:
            raise MountError("umount %s did not remove mount %d; the mount table is not what was read"
                             % (victim.target, victim.mount_id))
    raise MountError("mounts below %s keep reappearing; giving up (is something mounting there?)" % root)


def chroot_mount(params, check_mode=False, reader=read_mountinfo):
    """The module's whole job; returns the result dict (with a ``diff`` for the module to show)."""
    try:
        root = chroot_root(params.get("path"), "staging")
    except ChrootPathError as exc:
        raise MountError(str(exc))
    state = params.get("state") or "mounted"
    if state not in ("mounted", "unmounted"):
        raise MountError("state must be mounted or unmounted, not %r" % state)
    mounts = params.get("mounts")
    specs = [normalize_spec(s) for s in (list(DEFAULT_MOUNTS) if mounts is None else mounts)]
    specs += [normalize_spec(s) for s in (params.get("extra_mounts") or [])]
    before = mounts_below(reader(), root)
    mounter = Mounter(check_mode)
    if state == "mounted":
        # Refuse unsafe targets before touching anything.
        for spec in specs:
            resolve_target(root, spec["target"])
        planned = ensure_mounted(root, specs, mounter, reader=reader)
    else:
        planned = []
        unmount_all(root, mounter, lazy=bool(params.get("lazy")), reader=reader)
    after = mounts_below(reader(), root)
    changed = bool(mounter.actions)
    before_text = "".join(describe_line(m) + "\n" for m in before)
    if check_mode:
        if state == "unmounted":
            after_text = ""
        else:
            after_text = before_text + "".join(
                "%s %s %s (would be mounted)\n" % (p["target"], p["type"], p["source"]) for p in planned
            )
    else:
        after_text = "".join(describe_line(m) + "\n" for m in after)
    return {
        "changed": changed,
        "path": root,
        "state": state,
        "actions": mounter.actions,
        "mounts": [describe(m) for m in after],
        "diff": {"before": before_text, "after": after_text,
                 "before_header": "%s (mounts)" % root, "after_header": "%s (mounts)" % root},
    }
