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
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import os
import posixpath
import re

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError, find_program, run

MOUNTINFO = "/proc/self/mountinfo"

# The source document's three: proc, then /dev and /sys rbound and made rslave.
DEFAULT_MOUNTS = (
    {"src": "proc", "target": "proc", "type": "proc"},
    {"src": "/dev", "target": "dev", "type": "rbind"},
    {"src": "/sys", "target": "sys", "type": "rbind"},
)

BIND_TYPES = ("bind", "rbind")


class MountError(InfraError):
    """A chroot mount request that cannot be carried out as asked."""


class UnsafeTargetError(MountError):
    """A mount target that resolves outside the staging root (or onto it)."""


class MountBusyError(MountError):
    """An unmount refused by the kernel because something still uses the file system."""


MountEntry = collections.namedtuple(
    "MountEntry",
    "mount_id parent_id major_minor root target options optional fstype source super_options",
)


def unescape(field):
    """Undo the kernel's octal escapes (``\\040`` space, ``\\011`` tab, ``\\012``, ``\\134``).

    The escapes encode bytes, so a name that is not UTF-8 survives as surrogate escapes, like
    ``os.fsdecode`` does, and can be passed back to the file system unchanged.
    """
    if "\\" not in field:
        return field
    raw = os.fsencode(field)
    raw = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), raw)
    return os.fsdecode(raw)


def parse_mountinfo_line(line):
    """One ``/proc/self/mountinfo`` line as a MountEntry.

    Format: ``ID PARENT MAJ:MIN ROOT TARGET OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER``;
    the optional fields (``shared:N``, ``master:N``, ``propagate_from:N``, ``unbindable``) run
    up to a lone ``-``. Spaces inside fields are always escaped, so splitting on them is exact.
    """
    fields = line.rstrip("\n").split(" ")
    try:
        sep = fields.index("-", 6)
        entry = MountEntry(
            mount_id=int(fields[0]),
            parent_id=int(fields[1]),
            major_minor=fields[2],
            root=unescape(fields[3]),
            target=unescape(fields[4]),
            options=fields[5],
            optional=tuple(fields[6:sep]),
            fstype=unescape(fields[sep + 1]),
            source=unescape(fields[sep + 2]),
            super_options=fields[sep + 3] if len(fields) > sep + 3 else "",
        )
    except (ValueError, IndexError):
        raise MountError("cannot parse mountinfo line %r: it does not have the proc(5) format" % line)
    return entry


def parse_mountinfo(text):
    """All entries of a mountinfo text, in the kernel's order."""
    return [parse_mountinfo_line(line) for line in text.splitlines() if line.strip()]


def read_mountinfo(path=MOUNTINFO):
    with open(path, "rb") as handle:
        return parse_mountinfo(os.fsdecode(handle.read()))


def propagation(entry):
    """Propagation type as findmnt(8) names it: ``shared``, ``slave``, ``private``, ``unbindable``."""
    kinds = []
    if any(f.startswith("shared:") for f in entry.optional):
        kinds.append("shared")
    if any(f.startswith("master:") for f in entry.optional):
        kinds.append("slave")
    if not kinds:
        kinds.append("private")
    if "unbindable" in entry.optional:
        kinds.append("unbindable")
    return ",".join(kinds)


def is_shared(entry):
    """A shared mount sends mount and unmount events to its peers (the host's, for a rbind)."""
    return any(f.startswith("shared:") for f in entry.optional)


def is_below(target, root):
    """Whether ``target`` is strictly below directory ``root`` (both canonical paths)."""
    return target != root and target.startswith(root.rstrip("/") + "/")


def mounts_below(table, root):
    return [m for m in table if is_below(m.target, root)]


def depths(table):
    """Depth of every mount in the mount tree (parents are not always listed before children)."""
    by_id = dict((m.mount_id, m) for m in table)
    result = {}
    for mount in table:
        depth, seen, cur = 0, set(), mount
        while cur.parent_id in by_id and cur.parent_id not in seen and cur.parent_id != cur.mount_id:
            seen.add(cur.mount_id)
            cur = by_id[cur.parent_id]
            depth += 1
        result[mount.mount_id] = depth
    return result


def top_mount_at(table, target):
    """The mount a lookup of ``target`` reaches: of the mounts stacked there, the deepest."""
    stacked = [m for m in table if m.target == target]
    if not stacked:
        return None
    depth = depths(table)
    return max(stacked, key=lambda m: (depth[m.mount_id], m.mount_id))


def describe(entry):
    return {
        "target": entry.target,
        "type": entry.fstype,
        "source": entry.source,
        "root": entry.root,
        "options": entry.options,
        "super_options": entry.super_options,
        "propagation": propagation(entry),
    }


def describe_line(entry):
    return "%s %s %s %s %s" % (entry.target, entry.fstype, entry.source, entry.options, propagation(entry))


# ---------------------------------------------------------------------------------------------
# Requests and paths


def check_root(path):
    """Canonical staging root, or a MountError for ``/``, a missing path or a non-directory."""
    if not path:
        raise MountError("path is empty: give the staging root directory of the chroot")
    real = os.path.realpath(path)
    if real == "/":
        raise MountError(
            "refusing to manage mounts below %r: it resolves to '/', the host's root; "
            "give the staging root directory of the chroot" % path
        )
    if not os.path.lexists(path):
        raise MountError("staging root %r does not exist; unpack the stage there first" % path)
    if not os.path.isdir(real):
        raise MountError("staging root %r is not a directory; give the chroot's top directory" % path)
    return real


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


# ---------------------------------------------------------------------------------------------
# Comparing a request with the table

_SIZE = re.compile(r"^(\d+)([kKmMgGtTpPeE]?)$")


def _number(key, value):
    if key == "mode":
        return int(value, 8)
    if key in ("uid", "gid"):
        return int(value)
    match = _SIZE.match(value)
    if match:
        # The kernel shows sizes in KiB (size=2097152k for size=2G).
        return int(match.group(1)) * 1024 ** "_kmgtpe".index(match.group(2).lower() or "_")
    return value


def option_satisfied(option, entry):
    """Whether the mount already has ``option`` (flags per mount, key=value per super block)."""
    flags = set(entry.options.split(",")) | set(entry.super_options.split(","))
    if option in flags or option in ("defaults", "bind", "rbind", "auto", "noauto", "nofail", "_netdev"):
        return True
    if option in ("exec", "suid", "dev", "atime", "diratime"):
        return "no" + option not in flags
    if option == "rw":
        return "ro" not in entry.options.split(",")
    if "=" in option:
        key, value = option.split("=", 1)
        for have in flags:
            if have.startswith(key + "="):
                have_value = have.split("=", 1)[1]
                if value.endswith("%"):
                    return True  # a share of RAM: the kernel shows only the result
                try:
                    return _number(key, have_value) == _number(key, value)
                except ValueError:
                    return have_value == value
    return False


def bind_identity(table, src):
    """``(major:minor, root)`` that a bind of host path ``src`` shows in mountinfo."""
    real = os.path.realpath(src)
    holders = [m for m in table if m.target == real or is_below(real, m.target) or m.target == "/"]
    if not holders:
        return None
    longest = max(len(m.target) for m in holders)
    holder = top_mount_at(table, [m.target for m in holders if len(m.target) == longest][0])
    inner = os.path.relpath(real, holder.target)
    return holder.major_minor, posixpath.normpath(posixpath.join(holder.root, inner if inner != "." else ""))


def matches(table, existing, spec):
    if spec["type"] in BIND_TYPES:
        return bind_identity(table, spec["src"]) == (existing.major_minor, existing.root)
    return existing.fstype == spec["type"]


def subtree(table, top):
    """``top`` and every mount below it in the mount tree."""
    ids = {top.mount_id}
    changed = True
    while changed:
        changed = False
        for m in table:
            if m.parent_id in ids and m.mount_id not in ids:
                ids.add(m.mount_id)
                changed = True
    return [m for m in table if m.mount_id in ids]


# ---------------------------------------------------------------------------------------------
# Acting


class _Mounter(object):
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
        if parent is not None and is_below(parent.target, root) and is_shared(parent):
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
    root = check_root(params.get("path"))
    state = params.get("state") or "mounted"
    if state not in ("mounted", "unmounted"):
        raise MountError("state must be mounted or unmounted, not %r" % state)
    mounts = params.get("mounts")
    specs = [normalize_spec(s) for s in (list(DEFAULT_MOUNTS) if mounts is None else mounts)]
    specs += [normalize_spec(s) for s in (params.get("extra_mounts") or [])]
    before = mounts_below(reader(), root)
    mounter = _Mounter(check_mode)
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
