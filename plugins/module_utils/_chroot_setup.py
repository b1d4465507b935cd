# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The whole Portage configuration of one chroot in one pass: repositories, repos.conf,
make.conf, the ``local`` mirror and resolv.conf.

An unchanged chroot costs a few local ``git rev-parse`` calls and file reads: the repository
checkouts (:mod:`._repo_checkout`) contact a remote only for a branch pin or a version the
checkout does not have.

The work happens in two phases. *Prepare* validates everything, plans every file, asks the
remotes, fetches into the object stores and makes new clones in hidden directories beside
their locations. *Commit* then moves HEADs, renames clones into place and writes the files.
Any error in the first phase (a version the remote does not have, a repos.conf Portage
cannot read) leaves the chroot as it was.

Path URLs become ``file://`` URLs for git, as ``ansible.builtin.git`` makes them (so
``--depth`` works). The file editing is :mod:`._repos_conf`'s and :mod:`._make_conf`'s
(Portage's own parsing rules); this module only chains their planners and writes the results.

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
import stat

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._chroot_paths import chroot_root
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._ini_edit import REPO_NAME_RE
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._make_conf import (
    VAR_NAME_RE,
    edit_make_conf,
    make_conf_file,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._repos_conf import plan_repo_conf
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._root_files import (
    FilePlan,
    RootFile,
    read_text,
    write_plan,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._repo_checkout import (
    RepoPlan,
    abandon_repo,
    commit_repo,
    prepare_repo,
)

# What the role has always written for every repository: shallow syncs by Portage too, and
# no signature check of the mirror's own commits (they are not signed).
REPO_CONF_OPTIONS = {"sync-depth": 1, "sync-git-verify-commit-signature": False}
HOST_RESOLV_CONF = "/etc/resolv.conf"
MIRRORS_LOCAL_RE = re.compile(r"^\s*local\s")  # the role's lineinfile regexp
_BAD_VERSION_RE = re.compile(r"[\s~^:?*\[\\\x00-\x1f\x7f]|\.\.|@\{|^[-/.]|[/.]$|\.lock$")


class ChrootSetupError(InfraError):
    """A refused input or a failed step; nothing in the chroot was changed by this run."""


# --------------------------------------------------------------------------- input

class RepoSpec(object):
    """One entry of ``repositories``, checked and with its paths worked out: the spec that
    :mod:`._repo_checkout` brings to its version."""

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
    before = read_text(conf.host, conf.label())
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
    before = read_text(conf.host, conf.label())
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
    before = None if link is not None else read_text(conf.entry, conf.label())
    setup = SetupFile(FilePlan.for_file(conf, before, after, {}),
                      mode=0o644, root_owned=True, replace_link=True, data=data)
    if link is not None:
        setup.before_header = "%s (symlink to %s)" % (conf.path, link)
    return setup


def write_setup_file(setup):
    """Write one planned file atomically (temp file beside it, fsync, rename) or remove it."""
    plan = setup.plan
    # The target is the file a link at the end leads to, found inside the chroot; a replaced
    # link is the entry itself.
    target = plan.entry if setup.replace_link else plan.target
    old = None
    if os.path.exists(target) and not os.path.islink(target):
        old = os.stat(target)
    if plan.changed:
        write_plan(plan, data=setup.data, target=target,
                   mode=setup.mode if setup.mode is not None else (stat.S_IMODE(old.st_mode) if old else 0o644),
                   owner=(0, 0) if setup.root_owned else (old.st_uid, old.st_gid) if old is not None else None)
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
    except ChrootSetupError:
        raise
    except InfraError as exc:  # a refused path, a version the remote does not have, a failed git
        raise ChrootSetupError(str(exc))


def _setup_chroot(params, check_mode, resolv_source):
    root = chroot_root(params.get("root"))
    specs = check_repositories(root, params.get("repositories"))
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
            prepare_repo(repos[-1], check_mode)
        if not check_mode:
            for repo in repos:
                commit_repo(repo)
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
