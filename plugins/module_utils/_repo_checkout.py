# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A repository's git checkout brought to the branch, tag or commit id it is pinned to.

An unchanged checkout costs a few local ``git rev-parse`` calls:

- A pin to a tag or a full commit id that the checkout already has is answered without
  contacting the remote: tags and commit ids are treated as immutable.
- A branch pin (or a version the checkout does not know) asks the remote with one
  ``git ls-remote``; objects are fetched only when the remote commit differs from HEAD.

The work has two phases, so that a caller can check everything before it changes anything.
:func:`prepare_repo` asks the remote, fetches into the checkout's object store (which moves
no HEAD) or makes a new clone in a hidden directory beside the location; :func:`commit_repo`
then moves HEAD or renames the clone into place, and :func:`abandon_repo` removes what a
prepare left behind when a later step failed.

Clones and fetches follow ``ansible.builtin.git`` for branches and tags: a branch or tag is
cloned with ``--depth N --branch V``, a tag is fetched with ``+refs/tags/V:refs/tags/V`` and a
branch into ``refs/remotes/origin/V``. Every command is the host's git run on the checkout's
path on the host (:class:`._gitstore.GitStore`), so a chroot needs no git of its own.

A *spec* is one checked repository entry with ``name``, ``url``, ``git_url`` (what git is
given), ``version``, ``depth`` (None for a full clone), ``location`` (for messages) and
``path`` (the location's directory on the host).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shutil
import stat
import tempfile

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._gitstore import GitError, GitStore
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._root_files import missing_dirs

HEX_RE = re.compile(r"^[0-9a-f]{4,64}$")
FULL_ID_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
# What a fetch of a branch or a tag asks for and where it keeps it: (remote ref, local ref).
FETCHED_REFS = {"branch": ("refs/heads/%s", "refs/remotes/origin/%s"), "tag": ("refs/tags/%s", "refs/tags/%s")}


class CheckoutError(InfraError):
    """A version the remote does not have, a remote that cannot be asked, a broken checkout."""


class RepoPlan(object):
    """What happens to one repository, filled in by :func:`prepare_repo`."""

    def __init__(self, spec):
        self.spec = spec
        self.before = None
        self.after = None
        self.kind = None  # branch, tag or commit
        self.action = "unchanged"  # cloned, checked-out, fetched, unchanged
        self.remote_contacted = False
        self.set_url = False
        self.store = None  # the existing checkout
        self.clone_dir = None  # a finished clone waiting to be renamed into place
        self.created_dirs = []

    @property
    def changed(self):
        return self.action != "unchanged" or self.set_url

    def result(self):
        return {"name": self.spec.name, "url": self.spec.url, "version": self.spec.version,
                "location": self.spec.location, "commit": self.after, "before": self.before,
                "kind": self.kind, "action": self.action, "changed": self.changed,
                "remote_contacted": self.remote_contacted}


def is_checkout(path):
    """A directory (not a link) with a ``.git`` directory: what is updated in place."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode) and stat.S_ISDIR(os.lstat(os.path.join(path, ".git")).st_mode)
    except OSError:
        return False


def is_full_id(version):
    return bool(FULL_ID_RE.match(version))


def prepare_repo(plan, check_mode):
    """Find the commit ``plan.spec`` pins; fetch or clone (aside) what is missing."""
    if is_checkout(plan.spec.path):
        # The checkout may belong to another user (Portage's own sync runs as portage).
        plan.store = GitStore(plan.spec.path, trust_owner=True)
        _prepare_existing(plan.store, plan, check_mode)
    else:
        _prepare_clone(plan, check_mode)


def _prepare_existing(store, plan, check_mode):
    spec = plan.spec
    plan.before = store.rev_parse("HEAD") if store.exists else None
    if plan.before is None:
        raise CheckoutError("repository %s: %s has a .git directory but its HEAD is not a commit; repair or "
                            "remove that checkout" % (spec.name, spec.location))
    plan.set_url = store.remote_url() not in (spec.git_url, spec.url)
    target = None
    if not plan.set_url:
        # Immutable pins are answered from the checkout alone.
        target = store.rev_parse("refs/tags/%s" % spec.version)
        if target:
            plan.kind = "tag"
        elif is_full_id(spec.version):
            target = store.rev_parse(spec.version)
            plan.kind = "commit" if target else None
    if target is None:
        plan.remote_contacted = True
        plan.kind, remote = _remote_version(spec)
        if plan.kind in FETCHED_REFS:
            target = remote
            if remote != plan.before and not check_mode:
                source, local = [pattern % spec.version for pattern in FETCHED_REFS[plan.kind]]
                store.fetch(spec.git_url, ["+%s:%s" % (source, local)], depth=spec.depth)
                target = store.rev_parse(local)
        elif HEX_RE.match(spec.version):
            plan.kind = "commit"
            target = _local_commit(store, spec.version)
            if target is None and check_mode:
                if not is_full_id(spec.version):
                    raise _not_found(spec)
                target = spec.version  # cannot be HEAD: HEAD is in the checkout
            elif target is None:
                target = _fetch_commit(store, spec)
        else:
            raise _not_found(spec)
    plan.after = target
    if target != plan.before:
        plan.action = "fetched" if plan.remote_contacted else "checked-out"


def _remote_version(spec):
    """``(kind, commit)`` of the version at the url, asked outside any repository."""
    try:
        return GitStore().remote_version(spec.git_url, spec.version)
    except GitError as exc:
        raise CheckoutError("cannot ask %s for version %s of repository %s: %s"
                            % (spec.git_url, spec.version, spec.name, exc.stderr))


def _not_found(spec):
    return CheckoutError("repository %s: version %s is neither a branch nor a tag at %s, nor a commit id found "
                         "there; nothing was changed (check the version and the url)"
                         % (spec.name, spec.version, spec.url))


def _local_commit(store, version):
    """The commit an (abbreviated) commit id names in the checkout, if it is there."""
    commit = store.rev_parse(version)
    return commit if commit and commit.startswith(version) else None


def _fetch_commit(store, spec):
    """Fetch a commit id: by id (servers with protocol v2 allow it), else every tag and branch."""
    if is_full_id(spec.version):
        store.fetch(spec.git_url, [spec.version], depth=spec.depth, check=False)
    commit = _local_commit(store, spec.version)
    if commit is None:
        store.fetch(spec.git_url, ["+refs/heads/*:refs/remotes/origin/*"], tags=True, unshallow=store.shallow,
                    check=False)
        commit = _local_commit(store, spec.version)
    if commit is None:
        raise _not_found(spec)
    return commit


def _prepare_clone(plan, check_mode):
    spec = plan.spec
    plan.remote_contacted = True
    plan.action = "cloned"
    plan.kind, remote = _remote_version(spec)
    if plan.kind is None:
        if not HEX_RE.match(spec.version):
            raise _not_found(spec)
        plan.kind = "commit"
    if check_mode:
        plan.after = remote or (spec.version if is_full_id(spec.version) else None)
        return
    plan.created_dirs = missing_dirs(spec.path)
    for directory in plan.created_dirs:
        os.mkdir(directory)
        os.chmod(directory, 0o755)
    tmp = tempfile.mkdtemp(prefix=".%s.clone-" % os.path.basename(spec.path), dir=os.path.dirname(spec.path))
    os.chmod(tmp, 0o755)  # mkdtemp's 0700 would keep Portage's unprivileged user out
    plan.clone_dir = tmp
    clone = GitStore(tmp)
    by_id = plan.kind == "commit"
    clone.clone(spec.git_url, branch=None if by_id else spec.version, depth=spec.depth, checkout=not by_id)
    if by_id:
        clone.checkout(_fetch_commit(clone, spec))
    plan.after = clone.rev_parse("HEAD")


def commit_repo(plan):
    """Make the prepared change visible: rename the clone into place, or move HEAD."""
    spec = plan.spec
    if plan.clone_dir:
        if os.path.lexists(spec.path):
            # Whatever the stage put there (a tarball's tree owned by portage, a link):
            # a clone made by root replaces it, so git never meets "dubious ownership".
            if os.path.isdir(spec.path) and not os.path.islink(spec.path):
                shutil.rmtree(spec.path)
            else:
                os.unlink(spec.path)
        os.rename(plan.clone_dir, spec.path)
        plan.clone_dir = None
        return
    if plan.set_url:
        plan.store.set_remote_url(spec.git_url)
    if plan.after != plan.before:
        # Like ansible.builtin.git: the local branch follows the remote one.
        plan.store.checkout(plan.after, branch=spec.version if plan.kind == "branch" else None)


def abandon_repo(plan):
    """Undo what :func:`prepare_repo` left behind after a failure elsewhere."""
    if plan.clone_dir:
        shutil.rmtree(plan.clone_dir, ignore_errors=True)
        plan.clone_dir = None
    for directory in reversed(plan.created_dirs):
        try:
            os.rmdir(directory)
        except OSError:
            pass
