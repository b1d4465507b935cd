# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A git repository on the host, driven by the host's ``git``: the collection's one git runner.

:class:`GitStore` runs every git command of the collection with list arguments, a C locale and
no prompts (a run from Ansible or a timer has nobody to answer one). It serves two users: the
snapshot import, which keeps tree snapshots in a repository written with ``git fast-import``,
and the chroot's repository checkouts (:mod:`._repo_checkout`), which clone, fetch and check
out with the host's git, so a chroot needs no git of its own.

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

# Never a prompt for a user name or a passphrase: a failed authentication fails the run.
NO_PROMPT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": ""}


def quote_path(path):
    """A path as fast-import reads it: C-style quoted when it could be misread."""
    if path[:1] != b'"' and b"\n" not in path and b"\\" not in path:
        return path
    out = path.replace(b"\\", b"\\\\").replace(b'"', b'\\"').replace(b"\n", b"\\n")
    return b'"' + out + b'"'


class GitError(InfraError):
    """A git command that failed; ``stderr`` is what git said."""

    def __init__(self, message, stderr):
        InfraError.__init__(self, message)
        self.stderr = stderr


class GitStore(object):
    """One repository at ``path`` (which need not exist yet): its refs, trees, remotes and
    work tree, and imports into it. Without ``path``, git outside any repository, for what
    needs none (asking a URL for its refs).

    ``trust_owner`` runs git with ``safe.directory`` set to ``path``, for a checkout that
    another user may own (one Portage synced as its ``portage`` user): git refuses such a
    repository otherwise ("dubious ownership").
    """

    def __init__(self, path=None, trust_owner=False):
        self.path = os.path.abspath(path) if path else None
        self.git = find_program("git")
        self._config = ["-c", "safe.directory=%s" % self.path] if trust_owner and self.path else []
        self.git_dir = None
        self.bare = None
        self._locate()

    def _run(self, args, shown, data=None, check=True):
        """Run git with ``args`` after the options every call gets; ``shown`` is the command
        for an error message, which names the repository and quotes git's stderr."""
        rc, out, err = run([self.git] + self._config + args, data=data, env=NO_PROMPT_ENV, check=False)
        if check and rc != 0:
            stderr = err.decode("utf-8", "replace").strip()
            where = " in %s" % self.path if self.path else ""
            raise GitError("git %s failed%s (exit %d): %s" % (" ".join(shown), where, rc, stderr), stderr)
        return rc, out, err

    # -- discovery and creation -------------------------------------------------------
    def _locate(self):
        self.git_dir = None
        self.bare = None
        if not self.path or not os.path.isdir(self.path):
            return
        rc, out, _err = self._run(["-C", self.path, "rev-parse", "--is-bare-repository", "--absolute-git-dir"],
                                  ["rev-parse"], check=False)
        if rc != 0:
            return
        lines = out.decode("utf-8", "replace").split("\n")
        self.bare = lines[0].strip() == "true"
        self.git_dir = lines[1].strip()
        if not self.bare and os.path.realpath(os.path.join(self.path, ".git")) != os.path.realpath(self.git_dir):
            # rev-parse found an enclosing repository, not one at ``path``.
            self.git_dir = None
            self.bare = None

    def _refuse_non_empty(self):
        if os.path.exists(self.path) and os.listdir(self.path):
            raise InfraError("%s exists, is not empty and is not a git repository; refusing to create one there" % self.path)

    @property
    def exists(self):
        return self.git_dir is not None

    def create(self, bare=True, branch="master"):
        self._refuse_non_empty()
        self._run(["init", "--quiet"] + (["--bare"] if bare else []) + ["--initial-branch=%s" % branch, self.path],
                  ["init"])
        self._locate()

    def clone(self, url, branch=None, depth=None, checkout=True):
        """Clone ``url`` (its remote named origin) into ``path``, a missing or empty directory:
        ``branch`` a branch or tag to check out, ``depth`` a shallow clone of that many commits."""
        self._refuse_non_empty()
        args = ["clone", "--quiet", "--origin", "origin"] + ([] if checkout else ["--no-checkout"])
        args += (["--depth", str(depth)] if depth else []) + (["--branch", branch] if branch else [])
        self._run(args + ["--", url, self.path], args + [url])
        self._locate()

    def _git(self, *args, **kwargs):
        return self._run(["--git-dir=%s" % self.git_dir] + list(args), list(args), **kwargs)

    def _work_tree(self, *args, **kwargs):
        """git in the work tree, for the commands that change it."""
        return self._run(["-C", self.path, "-c", "advice.detachedHead=false"] + list(args), list(args), **kwargs)

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
        self._work_tree("read-tree", "-m", "-u", *([old_commit, new_commit] if old_commit else [new_commit]))

    def checkout(self, commit, branch=None):
        """Check out ``commit``, discarding local changes: on local ``branch`` (created or
        moved there, as ``git checkout -B`` does) or with a detached HEAD."""
        self._work_tree("checkout", "--quiet", "--force", *(["-B", branch, commit] if branch else ["--detach", commit]))

    # -- remotes ----------------------------------------------------------------------
    def push(self, remote, refspecs):
        self._git("push", "--porcelain", remote, *refspecs)

    def fetch(self, remote, refspecs, depth=None, tags=False, unshallow=False, check=True):
        """``git fetch`` of ``refspecs`` from ``remote`` (a URL or a remote's name); returns its
        exit status (with ``check``, a failure raises)."""
        args = ["fetch", "--quiet"] + (["--depth", str(depth)] if depth else []) + (["--tags"] if tags else [])
        args += ["--unshallow"] if unshallow else []
        return self._git(*(args + [remote] + list(refspecs)), check=check)[0]

    def remote_refs(self, remote, refs):
        """``{ref: object name}`` of the ``refs`` patterns at ``remote`` (``git ls-remote``);
        without a repository (or before it exists) for a URL."""
        where = ["--git-dir=%s" % self.git_dir] if self.git_dir else []
        out = self._run(where + ["ls-remote", remote] + list(refs), ["ls-remote", remote] + list(refs))[1].decode()
        found = {}
        for line in out.splitlines():
            sha, _tab, ref = line.partition("\t")
            found[ref] = sha
        return found

    def remote_version(self, remote, name):
        """``(kind, commit)`` of branch or tag ``name`` at ``remote``: kind is ``branch`` (which
        wins when both exist, as it does for ``git clone --branch``), ``tag`` (an annotated
        tag's commit) or None."""
        branch, tag = "refs/heads/%s" % name, "refs/tags/%s" % name
        # ls-remote lists an annotated tag's commit (``^{}``) only when a pattern names it.
        found = self.remote_refs(remote, [branch, tag, tag + "^{}"])
        if branch in found:
            return "branch", found[branch]
        commit = found.get(tag + "^{}") or found.get(tag)
        return ("tag", commit) if commit else (None, None)

    def remote_url(self, remote="origin"):
        rc, out, _err = self._git("config", "--get", "remote.%s.url" % remote, check=False)
        return out.decode("utf-8", "replace").strip() if rc == 0 else None

    def set_remote_url(self, url, remote="origin"):
        """Point ``remote`` at ``url``, adding the remote when the repository has none by that name."""
        if self._git("remote", "set-url", remote, url, check=False)[0] != 0:
            self._git("remote", "add", remote, url)

    @property
    def shallow(self):
        return os.path.exists(os.path.join(self.git_dir, "shallow"))

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
