# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A git repository used as a store of tree snapshots, written with ``git fast-import``.

New objects are written into a *staging* git directory that borrows the repository's objects
through ``objects/info/alternates``. Only when the whole import succeeded are the staging
packs moved into the repository and the refs moved, in one ``git update-ref --stdin``
transaction. A failure (or a kill -9) at any point before leaves the repository's refs and
objects as they were; a later run removes the abandoned staging directory.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import glob
import os
import shutil
import subprocess
import tempfile
import threading

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import (
    InfraError,
    c_locale_env,
    find_program,
    run,
)

STAGING_DIR = "gentoo-binhost-staging"
LOCK_FILE = "gentoo-binhost.lock"
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"

MODE_FILE = b"100644"
MODE_EXEC = b"100755"
MODE_LINK = b"120000"


def quote_path(path):
    """A path as fast-import reads it: C-style quoted when it could be misread."""
    if path[:1] != b'"' and b"\n" not in path and b"\\" not in path:
        return path
    out = path.replace(b"\\", b"\\\\").replace(b'"', b'\\"').replace(b"\n", b"\\n")
    return b'"' + out + b'"'


class GitStore(object):
    """One repository: its refs, its trees and imports into it."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        self.git = find_program("git")
        self.git_dir = None
        self.bare = None
        self._locate()

    # -- discovery and creation -------------------------------------------------------
    def _locate(self):
        if not os.path.isdir(self.path):
            return
        rc, out, _err = run([self.git, "-C", self.path, "rev-parse", "--is-bare-repository", "--absolute-git-dir"], check=False)
        if rc != 0:
            return
        lines = out.decode("utf-8", "replace").split("\n")
        self.bare = lines[0].strip() == "true"
        self.git_dir = lines[1].strip()
        if not self.bare and os.path.realpath(os.path.join(self.path, ".git")) != os.path.realpath(self.git_dir):
            # rev-parse found an enclosing repository, not one at ``path``.
            self.git_dir = None
            self.bare = None

    @property
    def exists(self):
        return self.git_dir is not None

    def create(self, bare=True, branch="master"):
        if os.path.exists(self.path) and os.listdir(self.path):
            raise InfraError("%s exists, is not empty and is not a git repository; refusing to create one there" % self.path)
        args = [self.git, "init", "--quiet"]
        if bare:
            args.append("--bare")
        run(args + ["--initial-branch=%s" % branch, self.path])
        self._locate()

    def _git(self, *args, **kwargs):
        return run([self.git, "--git-dir=%s" % self.git_dir] + list(args), **kwargs)

    # -- reading ----------------------------------------------------------------------
    def rev_parse(self, ref):
        rc, out, _err = self._git("rev-parse", "--verify", "--quiet", ref + "^{commit}", check=False)
        return out.decode().strip() if rc == 0 and out.strip() else None

    def ref_target(self, ref):
        """The object a ref points at (a tag object for annotated tags), or None."""
        rc, out, _err = self._git("rev-parse", "--verify", "--quiet", ref, check=False)
        return out.decode().strip() if rc == 0 and out.strip() else None

    def commit_message(self, commit):
        return self._git("cat-file", "commit", commit)[1].split(b"\n\n", 1)[-1].decode("utf-8", "replace")

    def commit_tree(self, commit):
        return self._git("rev-parse", commit + "^{tree}")[1].decode().strip()

    def read_tree_in_background(self, commit):
        """A TreeReader already at work on ``commit``'s tree while the caller does other things."""
        return TreeReader(self, commit)

    def read_blob(self, commit, path):
        rc, out, _err = self._git("cat-file", "blob", "%s:%s" % (commit, path), check=False)
        return out if rc == 0 else None

    # -- locking and staging ------------------------------------------------------------
    def lock(self):
        """An exclusive lock serialising imports into this repository (released on close)."""
        handle = open(os.path.join(self.git_dir, LOCK_FILE), "a")
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        return handle

    def remove_abandoned_staging(self):
        """Staging left by an interrupted run (kill -9) is garbage once we hold the lock."""
        shutil.rmtree(os.path.join(self.git_dir, STAGING_DIR), ignore_errors=True)
        # A pack moved in without its index is invisible to git; drop it.
        for pack in glob.glob(os.path.join(self.git_dir, "objects", "pack", "pack-*.pack")):
            if not os.path.exists(pack[:-5] + ".idx"):
                os.unlink(pack)

    def scratch_dir(self, prefix="download-"):
        """A new private directory inside the git dir, swept by remove_abandoned_staging."""
        root = os.path.join(self.git_dir, STAGING_DIR)
        try:
            os.mkdir(root)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
        return tempfile.mkdtemp(prefix=prefix, dir=root)

    def staging(self):
        return Staging(self, self.scratch_dir(prefix="import-"))

    def adopt_objects(self, staging):
        """Move the staging objects into the repository (unreferenced until refs move)."""
        pack_dir = os.path.join(self.git_dir, "objects", "pack")
        if not os.path.isdir(pack_dir):
            os.makedirs(pack_dir)
        packs = sorted(glob.glob(os.path.join(staging.git_dir, "objects", "pack", "pack-*.pack")))
        for pack in packs:
            base = os.path.basename(pack)[:-5]
            # Git's own order: the index last, so a pack is never visible half-moved.
            for ext in (".pack", ".rev", ".idx"):
                src = os.path.join(staging.git_dir, "objects", "pack", base + ext)
                if os.path.exists(src):
                    dst = os.path.join(pack_dir, base + ext)
                    os.rename(src, dst)
                    os.chmod(dst, 0o444)
        loose = os.path.join(staging.git_dir, "objects")
        for sub in glob.glob(os.path.join(loose, "[0-9a-f][0-9a-f]")):
            target = os.path.join(self.git_dir, "objects", os.path.basename(sub))
            if not os.path.isdir(target):
                os.makedirs(target)
            for obj in os.listdir(sub):
                os.rename(os.path.join(sub, obj), os.path.join(target, obj))

    def update_refs(self, updates):
        """Apply ``updates`` [(ref, new, old or None)] in one transaction: all or none."""
        lines = []
        for ref, new, old in updates:
            lines.append("update %s %s %s" % (ref, new, old or "0" * 40))
        self._git("update-ref", "--stdin", data=("\n".join(lines) + "\n").encode())

    def checkout_tree(self, old_commit, new_commit):
        """Move a work tree and index from ``old_commit`` to ``new_commit``, writing only what differs."""
        args = [self.git, "-C", self.path, "read-tree", "-m", "-u"]
        args += [old_commit, new_commit] if old_commit else [new_commit]
        run(args)

    def push(self, remote, refspecs):
        self._git("push", "--porcelain", remote, *refspecs)

    def remote_refs(self, remote, refs):
        out = self._git("ls-remote", remote, *refs)[1].decode()
        found = {}
        for line in out.splitlines():
            sha, _tab, ref = line.partition("\t")
            found[ref] = sha
        return found

    def collect_garbage(self):
        """What git's own commit and fetch do afterwards: repack once packs pile up.

        Every import adds a pack; without this a mirror gathers one per day and every
        lookup (clients' fetches included) slows down. Not detached, so no process outlives
        the caller and the import lock covers the repack. Returns stderr on failure.
        """
        rc, _out, err = self._git("-c", "gc.autoDetach=false", "gc", "--auto", "--quiet", check=False)
        return None if rc == 0 else err.decode("utf-8", "replace").strip()

    def head_branch(self):
        rc, out, _err = self._git("symbolic-ref", "--quiet", "HEAD", check=False)
        return out.decode().strip() if rc == 0 else None


def parse_ls_tree(out):
    """Parse ``git ls-tree -r -z`` output into ``{path: (mode, sha hex)}``."""
    entries = {}
    # "<6-digit mode> blob <40 hex>\t<path>": fixed offsets, parsed by slicing for speed.
    for record in out.split(b"\0"):
        if record[7:12] == b"blob ":
            entries[record[53:]] = (record[:6], record[12:52])
        elif record:
            meta, path = record.split(b"\t", 1)
            mode, _kind, sha = meta.split(b" ")
            entries[path] = (mode, sha)
    return entries


class TreeReader(object):
    """Reads a commit's tree on a thread: ``ready()`` without waiting, ``result()`` waiting.

    Listing ~150,000 paths costs ~0.2 s; the snapshot import overlaps it with the download,
    the signature check and the first part of the tarball instead of waiting for it.
    """

    def __init__(self, store, commit):
        self.entries = None
        self.error = None
        self._done = threading.Event()
        if commit is None:
            self.entries = {}
            self._done.set()
            return
        self._proc = subprocess.Popen(
            [store.git, "--git-dir=%s" % store.git_dir, "ls-tree", "-r", "-z", "--full-tree", commit],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=c_locale_env(),
        )
        thread = threading.Thread(target=self._read, name="git-ls-tree")
        thread.daemon = True
        thread.start()

    def _read(self):
        try:
            out, err = self._proc.communicate()
            if self._proc.returncode != 0:
                raise InfraError("git ls-tree failed: %s" % err.decode("utf-8", "replace").strip())
            self.entries = parse_ls_tree(out)
        except Exception as exc:  # handed to the waiting thread by result()
            self.error = exc
        finally:
            self._done.set()

    def ready(self):
        return self._done.is_set()

    def result(self):
        self._done.wait()
        if self.error is not None:
            raise self.error
        return self.entries


class Staging(object):
    """A temporary git dir whose object store falls through to the real repository's."""

    def __init__(self, store, git_dir):
        self.store = store
        self.git_dir = git_dir
        for sub in ("objects/info", "objects/pack", "refs/heads", "refs/tags"):
            os.makedirs(os.path.join(git_dir, sub))
        with open(os.path.join(git_dir, "HEAD"), "w") as handle:
            handle.write("ref: refs/heads/master\n")
        with open(os.path.join(git_dir, "objects", "info", "alternates"), "w") as handle:
            handle.write(os.path.join(store.git_dir, "objects") + "\n")

    @property
    def marks_file(self):
        return os.path.join(self.git_dir, "marks")

    def fast_import(self):
        """A running ``git fast-import`` into this staging dir; write the stream to ``.stdin``.

        Object names of marked objects are read back with :meth:`marks` once it has ended.
        """
        return subprocess.Popen(
            # Fast deflate: -c pack.compression=1 cuts fast-import's tree writing by a quarter for
            # +3% pack size, which the next 'gc --auto' repack takes back.
            [self.store.git, "--git-dir=%s" % self.git_dir, "-c", "pack.compression=1", "fast-import", "--quiet", "--done",
             "--date-format=raw", "--export-marks=%s" % self.marks_file],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=c_locale_env(),
            bufsize=1 << 20,
        )

    def marks(self):
        """``{mark number: object name}`` exported by the finished fast-import."""
        found = {}
        if os.path.exists(self.marks_file):
            with open(self.marks_file) as handle:
                for line in handle:
                    mark, _sep, sha = line.strip().partition(" ")
                    found[int(mark.lstrip(":"))] = sha
        return found

    def remove(self):
        shutil.rmtree(self.git_dir, ignore_errors=True)
