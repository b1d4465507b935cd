# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mount table as the kernel shows it in ``/proc/self/mountinfo`` (proc(5)), and questions
asked of it: what is mounted below a root, how deep, with which propagation, whether a mount
already has the options and the source a request asks for.

Read-only: :mod:`._mounts` acts on the answers.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import os
import posixpath
import re

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._chroot_paths import is_below
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError

MOUNTINFO = "/proc/self/mountinfo"


class MountError(InfraError):
    """A chroot mount request that cannot be carried out as asked (or a mount table that
    cannot be read)."""


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


def mounts_below(table, root):
    """The mounts strictly below canonical ``root``: one on the root itself (the chroot bound
    onto itself for Portage's mount-sandbox) belongs to whoever made it, not to the chroot."""
    return [m for m in table if m.target != root and is_below(m.target, root)]


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
    holders = [m for m in table if is_below(real, m.target)]
    if not holders:
        return None
    longest = max(len(m.target) for m in holders)
    holder = top_mount_at(table, [m.target for m in holders if len(m.target) == longest][0])
    inner = os.path.relpath(real, holder.target)
    return holder.major_minor, posixpath.normpath(posixpath.join(holder.root, inner if inner != "." else ""))


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
