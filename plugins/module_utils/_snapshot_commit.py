# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The commit and tag one imported snapshot becomes, written through ``git fast-import``.

The commit "Update portage tree to YYYY-MM-DD" carries only the paths that changed since the
branch tip, the snapshot's own time as author and committer date and a fixed identity (so the
same snapshots give the same commit IDs anywhere), and trailers (``Snapshot-MD5``,
``Snapshot-Timestamp``) that later runs read to tell what is already imported. The annotated
tag is named after the day the snapshot describes: ``timestamp.x`` minus one day, in UTC.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._gitstore import quote_path
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._snapshot_tree import SnapshotError

IDENTITY = b"gentoo_binhost.infra snapshot import <portage-snapshot@gentoo-binhost.invalid>"
DIFF_PATH_LIMIT = 200


def tag_for(timestamp, tag_format):
    """``(tag name, 'YYYY-MM-DD')`` of the day a snapshot with this ``timestamp.x`` describes."""
    day = time.gmtime(timestamp - 86400)
    return time.strftime(tag_format, day), time.strftime("%Y-%m-%d", day)


def trailers(message):
    """The ``Snapshot*: value`` trailers of a commit message, as a dict."""
    found = {}
    for line in message.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key.startswith("Snapshot"):
            found[key] = value.strip()
    return found


def tree_changes(old_tree, new_tree):
    """The fast-import file commands from ``old_tree`` to ``new_tree`` and their counts."""
    paths = []
    added = modified = deleted = 0
    for path, entry in new_tree.items():
        old = old_tree.get(path)
        if old is None:
            added += 1
            paths.append((b"M", path, entry))
        elif old != entry:
            modified += 1
            paths.append((b"M", path, entry))
    for path in old_tree:
        if path not in new_tree:
            deleted += 1
            paths.append((b"D", path, None))
    return {"paths": paths, "stats": {"added": added, "modified": modified, "deleted": deleted}}


def changes_diff(branch, tip, tag, changes):
    """The module's diff: the branch before and after, with the first changed paths."""
    lines = []
    for op, path, _entry in sorted(changes["paths"], key=lambda c: c[1])[:DIFF_PATH_LIMIT]:
        lines.append("%s %s" % ("-" if op == b"D" else "+", path.decode("utf-8", "replace")))
    more = len(changes["paths"]) - DIFF_PATH_LIMIT
    if more > 0:
        lines.append("… and %d more paths" % more)
    stats = changes["stats"]
    return {
        "before": "%s: %s\n" % (branch, tip or "(no commit)"),
        "after": "%s: tag %s (+%d ~%d -%d files)\n%s\n"
        % (branch, tag, stats["added"], stats["modified"], stats["deleted"], "\n".join(lines)),
    }


def blob_writer(importer):
    """``emit(data)`` sending one blob to the running fast-import ``importer``."""
    write = importer.stdin.write

    def emit(data):
        write(b"blob\ndata %d\n" % len(data))
        write(data)
        write(b"\n")

    return emit


def write_commit(importer, branch_ref, tip, changes, snapshot):
    """Send the commit (mark 1) and its tag (mark 2) for ``snapshot`` (a dict: label, url, md5,
    timestamp, day, tag) and wait for fast-import to finish; SnapshotError if it fails."""
    write = importer.stdin.write
    when = b"%d +0000" % snapshot["timestamp"]
    message = (
        "Update portage tree to %(day)s\n\n"
        "Snapshot: %(label)s\n"
        "Snapshot-MD5: %(md5)s\n"
        "Snapshot-Timestamp: %(timestamp)d\n" % snapshot
    ).encode()
    write(b"commit %s\n" % branch_ref.encode())
    write(b"mark :1\n")
    write(b"author %s %s\ncommitter %s %s\n" % (IDENTITY, when, IDENTITY, when))
    write(b"data %d\n%s\n" % (len(message), message))
    if tip:
        write(b"from %s\n" % tip.encode())
    for op, path, entry in changes["paths"]:
        if op == b"D":
            write(b"D %s\n" % quote_path(path))
        else:
            write(b"M %s %s %s\n" % (entry[0], entry[1], quote_path(path)))
    write(b"\n")
    tag_message = (
        "Portage tree snapshot of %(day)s\n\n"
        "Snapshot: %(label)s\n"
        "Snapshot-URL: %(url)s\n"
        "Snapshot-MD5: %(md5)s\n"
        "Snapshot-Timestamp: %(timestamp)d\n" % snapshot
    ).encode()
    write(b"tag %s\nmark :2\nfrom :1\ntagger %s %s\ndata %d\n%s\n"
          % (snapshot["tag"].encode(), IDENTITY, when, len(tag_message), tag_message))
    write(b"done\n")
    try:
        importer.stdin.close()
    except BrokenPipeError:
        pass
    err = importer.stderr.read().decode("utf-8", "replace").strip()
    importer.stdout.read()
    if importer.wait() != 0:
        raise SnapshotError("git fast-import failed for %s: %s" % (snapshot["label"], err))


def abort_import(importer):
    """Stop fast-import without a commit (its staging dir is thrown away anyway); what it said."""
    if importer is None:
        return ""
    try:
        importer.stdin.close()
    except (BrokenPipeError, OSError):
        pass
    importer.kill()
    err = importer.stderr.read().decode("utf-8", "replace").strip()
    importer.wait()
    importer.stdout.close()
    importer.stderr.close()
    return err
