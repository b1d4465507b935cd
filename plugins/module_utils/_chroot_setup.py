# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The whole Portage configuration of one chroot in one pass: repositories, repos.conf,
make.conf, the ``local`` mirror and resolv.conf.

The build_host role used ~24 Ansible tasks per chroot for this, and ``ansible.builtin.git``
contacted the remote on every run. Here an unchanged chroot costs a few local ``git rev-parse``
calls and file reads:

- A repository pinned to a tag or a full commit id that its checkout already has at HEAD is
  done without contacting the remote: tags and commit ids are treated as immutable.
- A branch pin (or a version the checkout does not know) asks the remote with one
  ``git ls-remote``; objects are fetched only when the remote commit differs from HEAD.
- The work happens in two phases. *Prepare* validates everything, plans every file, asks the
  remotes, fetches into the object stores and makes new clones in hidden directories beside
  their locations. *Commit* then moves HEADs, renames clones into place and writes the files.
  Any error in the first phase (a version the remote does not have, a repos.conf Portage
  cannot read) leaves the chroot as it was.

Clones and fetches follow ``ansible.builtin.git`` for branches and tags: path URLs become
``file://`` URLs (so ``--depth`` works), a branch or tag is cloned with
``--depth N --branch V``, a tag is fetched with ``+refs/tags/V:refs/tags/V`` and a branch into
``refs/remotes/origin/V``. The file editing is :mod:`._portage_conf`'s (Portage's own parsing
rules); this module only chains its planners and writes the results.

Every path in the chroot (the files, and the directory of each repository location, which
may be replaced) is resolved the way the chroot itself sees it (:mod:`._chroot_paths`): an
absolute symlink target starts again at the chroot's root, so no link in the chroot makes
the host read, write or remove its own files. A link whose target the chroot does not have
is refused.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shutil
import stat
import tempfile

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._chroot_paths import (
    ChrootPathError,
    chroot_root,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import (
    InfraError,
    find_program,
    run,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._portage_conf import (
    REPO_NAME_RE,
    VAR_NAME_RE,
    FilePlan,
    RootFile,
    _missing_dirs,
    _read_text,
    edit_make_conf,
    make_conf_file,
    plan_repo_conf,
)

# What the role has always written for every repository: shallow syncs by Portage too, and
# no signature check of the mirror's own commits (they are not signed).
REPO_CONF_OPTIONS = {"sync-depth": 1, "sync-git-verify-commit-signature": False}
HOST_RESOLV_CONF = "/etc/resolv.conf"
MIRRORS_LOCAL_RE = re.compile(r"^\s*local\s")  # the role's lineinfile regexp
_HEX_RE = re.compile(r"^[0-9a-f]{4,64}$")
_FULL_ID_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_BAD_VERSION_RE = re.compile(r"[\s~^:?*\[\\\x00-\x1f\x7f]|\.\.|@\{|^[-/.]|[/.]$|\.lock$")
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": ""}


class ChrootSetupError(InfraError):
    """A refused input or a failed step; nothing in the chroot was changed by this run."""


# --------------------------------------------------------------------------- input

class RepoSpec(object):
    """One entry of ``repositories``, checked and with its paths worked out."""

    def __init__(self, root, entry, index):
        if not isinstance(entry, dict):
            raise ChrootSetupError("repositories[%d] must be a dict with name, url and version" % index)
        self.name = entry.get("name")
        if not isinstance(self.name, str) or not REPO_NAME_RE.match(self.name) or self.name == "DEFAULT":
            raise ChrootSetupError("repositories[%d]: name %r is not a Portage repository name (letters, "
                                   "digits, '_', '+', '-'; not starting with '+' or '-'; not DEFAULT)"
                                   % (index, self.name))
        self.url = entry.get("url")
        if not isinstance(self.url, str) or not self.url.strip() or self.url != self.url.strip() \
                or self.url.startswith("-") or re.search(r"[\s\x00-\x1f]", self.url):
            raise ChrootSetupError("repository %s: url %r must be a git URL or absolute path without blanks "
                                   "(and not starting with '-')" % (self.name, self.url))
        # ansible.builtin.git does the same: --depth is ignored for plain paths.
        self.git_url = "file://" + self.url if self.url.startswith("/") else self.url
        self.version = entry.get("version")
        if not isinstance(self.version, str) or not self.version or _BAD_VERSION_RE.search(self.version):
            raise ChrootSetupError("repository %s: version %r is not a branch, tag or commit id name"
                                   % (self.name, self.version))
        self.depth = entry.get("depth")
        if self.depth is not None and (isinstance(self.depth, bool) or not isinstance(self.depth, int)
                                       or self.depth < 1):
            raise ChrootSetupError("repository %s: depth %r must be a positive integer" % (self.name, self.depth))
        self.main = bool(entry.get("main"))
        self.priority = entry.get("priority")
        location = entry.get("location") or "/var/db/repos/%s" % self.name
        parts = location.split("/")
        if not isinstance(location, str) or not location.startswith("/") or location.rstrip("/") == "" \
                or any(part in (".", "..") for part in parts) or re.search(r"[\x00-\x1f]", location):
            raise ChrootSetupError("repository %s: location %r must be an absolute path inside the chroot, "
                                   "not / itself, without '.' or '..' components" % (self.name, location))
        self.location = "/" + "/".join(part for part in parts if part)
        # The location itself is not followed: whatever is there (a link too) is replaced by
        # the clone. Its directories are found as the chroot finds them.
        where = RootFile(root, self.location, "repository %s location" % self.name, follow=False)
        self.path, self.inside = where.host, where.inside  # on the host, and as the chroot sees it

    @property
    def full_id(self):
        return bool(_FULL_ID_RE.match(self.version))


def check_repositories(root, entries):
    specs = [RepoSpec(root, entry, index) for index, entry in enumerate(entries or [])]
    names = [spec.name for spec in specs]
    for name in set(names):
        if names.count(name) > 1:
            raise ChrootSetupError("repository %s is given twice; every repository needs its own name" % name)
    mains = [spec.name for spec in specs if spec.main]
    if len(mains) > 1:
        raise ChrootSetupError("only one repository can be main (main-repo); got %s" % ", ".join(mains))
    for one in specs:
        for other in specs:
            if one is not other and any(b == a or b.startswith(a + "/") for a, b in (
                    (one.location, other.location), (one.inside, other.inside))):
                raise ChrootSetupError("repositories %s and %s share a location (%s, %s): replacing one would "
                                       "remove the other" % (one.name, other.name, one.location, other.location))
    return specs


# --------------------------------------------------------------------------- git

class Git(object):
    """``git`` with list arguments, a C locale and no prompts."""

    def __init__(self):
        self.path = find_program("git")

    def __call__(self, args, cwd=None, check=True):
        cmd = [self.path, "-c", "advice.detachedHead=false"]
        if cwd:
            # The checkout may belong to another user (e.g. Portage's own sync as portage).
            cmd += ["-c", "safe.directory=%s" % cwd]
        rc, out, err = run(cmd + list(args), cwd=cwd, env=_GIT_ENV, check=False)
        out, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace").strip()
        if check and rc != 0:
            raise ChrootSetupError("git %s failed (exit %d): %s" % (" ".join(args), rc, err))
        return rc, out.strip(), err

    def resolve(self, cwd, rev):
        """The commit ``rev`` names in the checkout, None when it does not resolve."""
        rc, out, dummy = self(["rev-parse", "--verify", "-q", "%s^{commit}" % rev], cwd=cwd, check=False)
        return out if rc == 0 and out else None

    def ls_remote(self, name, url, version):
        """``(kind, commit)`` of ``version`` at ``url``: kind is branch, tag or None."""
        rc, out, err = self(["ls-remote", url, "refs/heads/%s" % version, "refs/tags/%s" % version], check=False)
        if rc != 0:
            raise ChrootSetupError("cannot ask %s for version %s of repository %s: %s" % (url, version, name, err))
        refs = {}
        for line in out.splitlines():
            commit, dummy, ref = line.partition("\t")
            refs[ref.strip()] = commit.strip()
        if "refs/heads/%s" % version in refs:
            return "branch", refs["refs/heads/%s" % version]
        tag = refs.get("refs/tags/%s^{}" % version) or refs.get("refs/tags/%s" % version)
        return ("tag", tag) if tag else (None, None)


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
    """A directory (not a link) with a ``.git`` directory: what the role treats as its clone."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode) and stat.S_ISDIR(os.lstat(os.path.join(path, ".git")).st_mode)
    except OSError:
        return False


def prepare_repo(git, plan, check_mode):
    """Find the commit ``plan.spec`` pins; fetch or clone (aside) what is missing."""
    if is_checkout(plan.spec.path):
        _prepare_existing(git, plan, check_mode)
    else:
        _prepare_clone(git, plan, check_mode)


def _prepare_existing(git, plan, check_mode):
    spec, cwd = plan.spec, plan.spec.path
    plan.before = git.resolve(cwd, "HEAD")
    if plan.before is None:
        raise ChrootSetupError("repository %s: %s has a .git directory but its HEAD is not a commit; repair or "
                               "remove that checkout" % (spec.name, spec.location))
    rc, origin, dummy = git(["config", "--get", "remote.origin.url"], cwd=cwd, check=False)
    plan.set_url = origin not in (spec.git_url, spec.url)
    target = None
    if not plan.set_url:
        # Immutable pins are answered from the checkout alone.
        target = git.resolve(cwd, "refs/tags/%s" % spec.version)
        if target:
            plan.kind = "tag"
        elif spec.full_id:
            target = git.resolve(cwd, spec.version)
            plan.kind = "commit" if target else None
    if target is None:
        plan.remote_contacted = True
        plan.kind, remote = git.ls_remote(spec.name, spec.git_url, spec.version)
        depth = ["--depth", str(spec.depth)] if spec.depth else []
        if plan.kind == "branch":
            target = remote
            if remote != plan.before and not check_mode:
                refspec = "+refs/heads/%s:refs/remotes/origin/%s" % (spec.version, spec.version)
                git(["fetch", "--quiet"] + depth + [spec.git_url, refspec], cwd=cwd)
                target = git.resolve(cwd, "refs/remotes/origin/%s" % spec.version)
        elif plan.kind == "tag":
            target = remote
            if remote != plan.before and not check_mode:
                refspec = "+refs/tags/%s:refs/tags/%s" % (spec.version, spec.version)
                git(["fetch", "--quiet"] + depth + [spec.git_url, refspec], cwd=cwd)
                target = git.resolve(cwd, "refs/tags/%s" % spec.version)
        elif _HEX_RE.match(spec.version):
            plan.kind = "commit"
            target = _local_commit(git, cwd, spec.version)
            if target is None and check_mode:
                if not spec.full_id:
                    raise _not_found(spec)
                target = spec.version  # cannot be HEAD: HEAD is in the checkout
            elif target is None:
                target = _fetch_commit(git, spec, cwd)
        else:
            raise _not_found(spec)
    plan.after = target
    if target != plan.before:
        plan.action = "fetched" if plan.remote_contacted else "checked-out"


def _not_found(spec):
    return ChrootSetupError("repository %s: version %s is neither a branch nor a tag at %s, nor a commit id found "
                            "there; nothing was changed (check the version and the url)"
                            % (spec.name, spec.version, spec.url))


def _local_commit(git, cwd, version):
    """The commit an (abbreviated) commit id names in the checkout, if it is there."""
    commit = git.resolve(cwd, version)
    return commit if commit and commit.startswith(version) else None


def _fetch_commit(git, spec, cwd):
    """Fetch a commit id: by id (servers with protocol v2 allow it), else every tag and branch."""
    depth = ["--depth", str(spec.depth)] if spec.depth else []
    if spec.full_id:
        git(["fetch", "--quiet"] + depth + [spec.git_url, spec.version], cwd=cwd, check=False)
    commit = _local_commit(git, cwd, spec.version)
    if commit is None:
        shallow = os.path.exists(os.path.join(cwd, ".git", "shallow"))
        git(["fetch", "--quiet", "--tags"] + (["--unshallow"] if shallow else []) + [spec.git_url,
            "+refs/heads/*:refs/remotes/origin/*"], cwd=cwd, check=False)
        commit = _local_commit(git, cwd, spec.version)
    if commit is None:
        raise _not_found(spec)
    return commit


def _prepare_clone(git, plan, check_mode):
    spec = plan.spec
    plan.remote_contacted = True
    plan.action = "cloned"
    plan.kind, remote = git.ls_remote(spec.name, spec.git_url, spec.version)
    if plan.kind is None:
        if not _HEX_RE.match(spec.version):
            raise _not_found(spec)
        plan.kind = "commit"
    if check_mode:
        plan.after = remote or (spec.version if spec.full_id else None)
        return
    parent = os.path.dirname(spec.path)
    plan.created_dirs = _missing_dirs(spec.path)
    for directory in plan.created_dirs:
        os.mkdir(directory)
        os.chmod(directory, 0o755)
    tmp = tempfile.mkdtemp(prefix=".%s.clone-" % os.path.basename(spec.path), dir=parent)
    os.chmod(tmp, 0o755)  # mkdtemp's 0700 would keep Portage's unprivileged user out
    plan.clone_dir = tmp
    args = ["clone", "--quiet", "--origin", "origin"]
    if plan.kind == "commit":
        args.append("--no-checkout")
        if spec.depth:
            args += ["--depth", str(spec.depth)]
    else:
        args += (["--depth", str(spec.depth)] if spec.depth else []) + ["--branch", spec.version]
    git(args + ["--", spec.git_url, tmp])
    if plan.kind == "commit":
        commit = _fetch_commit(git, spec, tmp)
        git(["checkout", "--quiet", "--force", "--detach", commit], cwd=tmp)
    plan.after = git.resolve(tmp, "HEAD")


def commit_repo(git, plan):
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
        rc, dummy, dummy2 = git(["remote", "set-url", "origin", spec.git_url], cwd=spec.path, check=False)
        if rc != 0:
            git(["remote", "add", "origin", spec.git_url], cwd=spec.path)
    if plan.after != plan.before:
        if plan.kind == "branch":
            # Like ansible.builtin.git: the local branch follows the remote one.
            git(["checkout", "--quiet", "--force", "-B", spec.version, plan.after], cwd=spec.path)
        else:
            git(["checkout", "--quiet", "--force", "--detach", plan.after], cwd=spec.path)


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


# --------------------------------------------------------------------------- files

class SetupFile(object):
    """A file plan plus how it is written: text or bytes, mode/owner enforced or kept."""

    def __init__(self, plan, mode=None, root_owned=False, replace_link=False, data=None):
        self.plan = plan
        self.mode = mode  # None: keep the existing file's mode (0644 for a new one)
        self.root_owned = root_owned and os.geteuid() == 0
        self.replace_link = replace_link
        self.data = data  # bytes to write instead of plan.after (resolv.conf)
        self.attrs_changed = False
        self.before_header = None
        if plan.after is not None and not plan.changed and os.path.exists(plan.target):
            st = os.stat(plan.target)
            self.attrs_changed = (mode is not None and stat.S_IMODE(st.st_mode) != mode) or \
                (self.root_owned and (st.st_uid, st.st_gid) != (0, 0))

    @property
    def changed(self):
        return self.plan.changed or self.attrs_changed


def plan_make_conf_file(root, features_add, make_conf):
    conf = make_conf_file({"root": root})
    before = _read_text(conf.host, conf.label())
    text = before or ""
    if features_add:
        text = edit_make_conf(text, "FEATURES", add=list(features_add))[0]
    for name, value in (make_conf or {}).items():
        if not isinstance(name, str) or not VAR_NAME_RE.match(name):
            raise ChrootSetupError("make_conf key %r is not a variable name ([A-Za-z_][A-Za-z0-9_]*)" % (name,))
        if value is None or isinstance(value, (dict, list)):
            raise ChrootSetupError("make_conf %s needs a string value (the whole value), got %r" % (name, value))
        text = edit_make_conf(text, name, value="%s" % value)[0]
    after = text if before is not None or text else None
    return SetupFile(FilePlan.for_file(conf, before, after, {}))


def repo_conf_params(root, spec):
    return {"root": root, "name": spec.name, "location": spec.location, "sync_type": "git",
            "sync_uri": spec.url, "priority": spec.priority, "options": dict(REPO_CONF_OPTIONS),
            "main_repo": True if spec.main else None, "state": "present"}


def plan_repo_conf_file(root, spec):
    return SetupFile(plan_repo_conf(repo_conf_params(root, spec)), mode=0o644)


def edit_mirrors(text, url):
    """``lineinfile`` of the role: the last ``local`` line becomes ``local <url>`` (appended when
    there is none); an empty url removes every ``local`` line."""
    lines = text.splitlines(True)
    matches = [i for i, line in enumerate(lines) if MIRRORS_LOCAL_RE.match(line)]
    if not url:
        return "".join(line for i, line in enumerate(lines) if i not in matches)
    wanted = "local %s" % url
    if matches:
        last = matches[-1]
        ending = "\n" if lines[last].endswith("\n") else ""
        if lines[last].rstrip("\r\n") != wanted:
            lines[last] = wanted + ending
        return "".join(lines)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return "".join(lines) + wanted + "\n"


def plan_mirrors_file(root, local_mirror):
    url = (local_mirror or "").strip().rstrip("/")
    if re.search(r"\s", url):
        raise ChrootSetupError("local_mirror %r has blanks; give one URL" % local_mirror)
    conf = RootFile(root, "/etc/portage/mirrors", "mirrors file")
    before = _read_text(conf.host, conf.label())
    after = edit_mirrors(before or "", url)
    if before is None and not url:
        after = None
    return SetupFile(FilePlan.for_file(conf, before, after, {}), mode=0o644, root_owned=True)


def plan_resolv_conf_file(root, source=HOST_RESOLV_CONF):
    try:
        with open(source, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None  # the host resolves without one: leave the chroot's alone
    except OSError as exc:
        raise ChrootSetupError("cannot read the host's %s: %s" % (source, exc.strerror or exc))
    # Never written through: a stage's link (to systemd-resolved's file, say) may lead nowhere
    # in the chroot. The link itself is replaced.
    conf = RootFile(root, "/etc/resolv.conf", "resolv.conf", follow=False)
    after = data.decode("utf-8", "replace")
    link = os.readlink(conf.entry) if os.path.islink(conf.entry) else None
    before = None if link is not None else _read_text(conf.entry, conf.label())
    setup = SetupFile(FilePlan.for_file(conf, before, after, {}),
                      mode=0o644, root_owned=True, replace_link=True, data=data)
    if link is not None:
        setup.before_header = "%s (symlink to %s)" % (conf.path, link)
    return setup


def write_setup_file(setup):
    """Write one planned file atomically (temp file beside it + rename)."""
    plan = setup.plan
    if plan.after is None:
        if plan.before is not None:
            os.unlink(plan.entry)
        return
    for directory in plan.make_dirs:
        if not os.path.isdir(directory):
            os.mkdir(directory)
            os.chmod(directory, 0o755)
    # The target is the file a link at the end leads to, found inside the chroot; a replaced
    # link is the entry itself.
    target = plan.entry if setup.replace_link else plan.target
    data = setup.data if setup.data is not None else plan.after.encode("utf-8")
    old = None
    if os.path.exists(target) and not os.path.islink(target):
        old = os.stat(target)
    if plan.changed:
        fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(target), suffix=".tmp",
                                   dir=os.path.dirname(target))  # a dot name: Portage skips it
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, setup.mode if setup.mode is not None else
                     (stat.S_IMODE(old.st_mode) if old else 0o644))
            if setup.root_owned:
                os.chown(tmp, 0, 0)
            elif old is not None:
                os.chown(tmp, old.st_uid, old.st_gid)
            os.rename(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    elif setup.attrs_changed:
        if setup.mode is not None:
            os.chmod(target, setup.mode)
        if setup.root_owned:
            os.chown(target, 0, 0)


def setup_diff(setup):
    diff = setup.plan.diff()
    if setup.before_header:
        diff["before_header"] = setup.before_header
    return diff


# --------------------------------------------------------------------------- the whole chroot

def setup_chroot(params, check_mode=False, resolv_source=HOST_RESOLV_CONF):
    """Configure the chroot ``params["root"]``; returns the module result (``diff`` included)."""
    try:
        return _setup_chroot(params, check_mode, resolv_source)
    except ChrootPathError as exc:
        raise ChrootSetupError(str(exc))


def _setup_chroot(params, check_mode, resolv_source):
    root = chroot_root(params.get("root"))
    specs = check_repositories(root, params.get("repositories"))
    git = Git() if specs else None
    features = [str(token) for token in params.get("features_add") or []]

    # Plan every file first: a file Portage could not read stops the run before any change.
    files = [plan_repo_conf_file(root, spec) for spec in specs]
    files.append(plan_make_conf_file(root, features, params.get("make_conf")))
    if params.get("local_mirror") is not None:
        files.append(plan_mirrors_file(root, params["local_mirror"]))
    if params.get("resolv_conf", True):
        resolv = plan_resolv_conf_file(root, resolv_source)
        if resolv is not None:
            files.append(resolv)

    repos = []
    try:
        for spec in specs:
            repos.append(RepoPlan(spec))
            prepare_repo(git, repos[-1], check_mode)
        if not check_mode:
            for repo in repos:
                commit_repo(git, repo)
    except BaseException:
        for repo in repos:
            abandon_repo(repo)
        raise

    diffs = []
    if not check_mode:
        # repos.conf may be one file for all sections: plan each section again just before it
        # is written, so every section sees the ones written before it.
        for index, spec in enumerate(specs):
            files[index] = plan_repo_conf_file(root, spec)
            if files[index].changed:
                write_setup_file(files[index])
        for setup in files[len(specs):]:
            if setup.changed:
                write_setup_file(setup)
    changed_files = []
    for setup in files:
        if setup.changed:
            changed_files.append(setup.plan.path)
            if setup.plan.before != setup.plan.after:
                diffs.append(setup_diff(setup))

    repo_results = [repo.result() for repo in repos]
    return {
        "changed": bool(changed_files) or any(repo.changed for repo in repos),
        "root": root,
        "repositories": repo_results,
        "commits": dict((repo["name"], repo["commit"]) for repo in repo_results),
        "changed_files": changed_files,
        "diff": diffs,
    }
