# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What one build of a chroot produced, recorded by the build host outside the chroot.

Layout of one chroot's records (``dest``, outside the chroot)::

    dest/.started.json          what the PKGDIR held when the running build began
    dest/<id>/                  one successful build: ``Packages`` listing only its packages,
                                the package files (hard links into the chroot's PKGDIR) and
                                ``build.json``, the build record
    dest/last -> <id>           the last successful build, what a binary package server publishes
    dest/.partial-<id>/         a record being written

Which packages make up a build: the ones the chroot has installed once it is done. For
every package in ``/var/db/pkg`` the PKGDIR instance of the same CPV and ``BUILD_TIME`` is
taken (Portage writes one BUILD_TIME into the binary package and into the installed
package's record). After ``emerge -e @world`` that is exactly what the build made: the
instances of earlier builds, of an earlier pin too, stay in the PKGDIR (Portage's
binpkg-multi-instance keeps every rebuild) but are not part of this build. After a partial
build (``--oneshot cat/pkg``) it is the new instance of that package plus the instances still
installed, which is what an update build needs as well.

What each package was built from: the ``REPO_REVISIONS`` Portage recorded in it, when it did
(only with git in the chroot, to ask the repositories their HEAD). Gentoo's stage3s have no
git, so the record binds the others itself, each to the very file by its size and checksums:
an instance that appeared in the PKGDIR while this build ran was built from the commits the
build host had checked out (``revisions``); an older one keeps what the previous record bound
it to; one that no record knows stays unbound, and a publication pinning its repository
refuses it.

Every path read inside the chroot is resolved as the chroot sees it (a PKGDIR that is a
symlink to ``/etc`` is the chroot's ``/etc``, never the host's).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import errno
import json
import os
import shutil
import stat

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._binpkg_revisions import (
    package_revisions,
    same_file,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._chroot_paths import (
    ChrootPathError,
    chroot_root,
    describe,
    resolve_in_root,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError, write_file_atomic
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._generations import Generations, check_keep
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._params import complete_params
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._packages_index import (
    INDEX,
    PublishError,
    decode_index,
    entry_digests,
    entry_path,
    instance_key,
    leaves_directory,
    read_index,
)

STARTED = ".started.json"
LAST = "last"
# The build record a build host writes beside the packages of one build.
RECORD = "build.json"
RECORD_FORMAT = 1
VDB = "/var/db/pkg"
# The binpkg_collect module's options: the module hands them to AnsibleModule, plain callers
# (tests) get the same defaults and constraints through complete_params.
ARGUMENT_SPEC = dict(
    root=dict(type="path", required=True),
    pkgdir=dict(type="str", default="/var/cache/binpkgs"),
    dest=dict(type="path", required=True),
    state=dict(type="str", choices=["started", "recorded"], default="recorded"),
    name=dict(type="str"),
    revisions=dict(type="dict", default={}),
    provenance=dict(type="dict", default={}),
    keep=dict(type="int", default=3),
)
# Configuration files kept as provenance are small; a larger one is not what it claims to be.
_CONF_LIMIT = 1 << 20


class BuildRecordError(InfraError):
    """A build could not be recorded; the last recorded build is unchanged."""


class _Chroot(object):
    """The chroot's root and its PKGDIR, both resolved as the chroot sees them."""

    def __init__(self, params):
        try:
            self.root = chroot_root(params["root"])
            self.pkgdir_name = params["pkgdir"]
            self.pkgdir, self.pkgdir_inside = resolve_in_root(self.root, self.pkgdir_name, "PKGDIR")
        except ChrootPathError as exc:
            raise BuildRecordError(str(exc))
        self.label = describe(self.pkgdir_name, self.pkgdir_inside)

    def read_index(self, required=True):
        """``(header, entries)`` of the PKGDIR's ``Packages``; ``({}, [])`` when there is none
        and it is not ``required``."""
        index = os.path.join(self.pkgdir, INDEX)
        # A link could lead out of the PKGDIR, to a file of the host even: not followed.
        if not os.path.isfile(index) or os.path.islink(index):
            if not required and not os.path.lexists(index):
                return {}, []
            raise BuildRecordError("chroot %s has no Packages index in its PKGDIR %s; was FEATURES=buildpkg set "
                                   "for the build?" % (self.root, self.label))
        try:
            header, entries, _text = decode_index(read_index(self.pkgdir))
            return header, entries
        except PublishError as exc:
            raise BuildRecordError("the Packages index of chroot %s (%s) cannot be read: %s" % (self.root, self.label, exc))

    def package_file(self, entry):
        """Host path of a package file, which must be a regular file inside the PKGDIR
        itself: a symlink could lead anywhere in the chroot."""
        rel = entry_path(entry)
        if leaves_directory(rel):
            raise BuildRecordError("package %s of chroot %s: path %s leaves the PKGDIR" % (instance_key(entry), self.root, rel))
        expected = os.path.join(self.pkgdir, rel)
        host, inside = resolve_in_root(self.root, self.pkgdir_inside.rstrip("/") + "/" + rel, "package file")
        try:
            mode = os.lstat(host).st_mode
        except OSError:
            mode = None
        if host != expected or mode is None or not stat.S_ISREG(mode):
            raise BuildRecordError("package %s of chroot %s: %s/%s is not a regular file of the PKGDIR%s"
                                   % (instance_key(entry), self.root, self.pkgdir_inside, rel,
                                      " (it leads to %s)" % inside if host != expected else ""))
        return host

    def installed(self):
        """``{cpv: BUILD_TIME}`` of the packages the chroot has installed."""
        vdb, _inside = resolve_in_root(self.root, VDB, "package database")
        out = {}
        if not os.path.isdir(vdb):
            return out
        for category in sorted(os.listdir(vdb)):
            cat_dir = os.path.join(vdb, category)
            if category.startswith(".") or os.path.islink(cat_dir) or not os.path.isdir(cat_dir):
                continue
            for pf in sorted(os.listdir(cat_dir)):
                if pf.startswith(("-MERGING-", ".")):
                    continue
                path = os.path.join(cat_dir, pf, "BUILD_TIME")
                if os.path.islink(path) or not os.path.isfile(path):
                    out["%s/%s" % (category, pf)] = None
                    continue
                with open(path) as handle:
                    out["%s/%s" % (category, pf)] = handle.read().strip() or None
        return out

    def read_conf(self, path):
        """A configuration file (or a directory of them, as make.conf may be) as the chroot
        sees it, for the record; None when absent."""
        host, _inside = resolve_in_root(self.root, path, "configuration file")
        if os.path.isdir(host):
            parts = []
            for name in sorted(os.listdir(host)):
                text = self.read_conf(path.rstrip("/") + "/" + name)
                if text is not None and not name.startswith("."):
                    parts.append(text)
            return "".join(parts)
        if not os.path.isfile(host):
            return None
        with open(host, "rb") as handle:
            return handle.read(_CONF_LIMIT).decode("utf-8", "replace")


def _format_block(block):
    return "".join("%s: %s\n" % (key, value) for key, value in sorted(block.items()) if value != "") + "\n"


def parse_record(raw, label):
    """The build record in the bytes ``raw`` (read from ``label``): a JSON object with a
    package list."""
    try:
        record = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        raise BuildRecordError("the build record %s is not valid JSON: %s" % (label, exc))
    if not isinstance(record, dict) or not isinstance(record.get("packages", []), list):
        raise BuildRecordError("the build record %s is not a build record (no package list)" % label)
    return record


def read_record(path):
    """The build record in the file ``path`` (a ``build.json``)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except (IOError, OSError) as exc:
        raise BuildRecordError("cannot read the build record %s: %s" % (path, exc.strerror or exc))
    return parse_record(raw, path)


class Records(Generations):
    """One chroot's build records below ``dest``, and ``last`` naming the last good build."""

    def __init__(self, dest):
        if not dest or not os.path.isabs(dest):
            raise BuildRecordError("dest %r must be an absolute path outside the chroot" % (dest,))
        self.dest = os.path.normpath(dest)
        Generations.__init__(self, self.dest, os.path.join(self.dest, LAST))

    def last(self):
        """The id of the last successful build, or None."""
        return self.current()

    def record(self, build):
        return read_record(os.path.join(self.path(build), RECORD))


def start(params, check_mode=False):
    """Remember what the PKGDIR holds before a build, so the record can tell which instances
    the build added."""
    params = complete_params(params, ARGUMENT_SPEC, error=BuildRecordError)
    chroot = _Chroot(params)
    records = Records(params["dest"])
    _header, entries = chroot.read_index(required=False)
    state = {"format": RECORD_FORMAT, "pkgdir": chroot.pkgdir_inside,
             "started_at": _now().strftime("%Y-%m-%dT%H:%M:%SZ"),
             "instances": sorted([entry_path(e), e.get("BUILD_TIME", "")] for e in entries)}
    result = {"changed": True, "dest": records.dest, "pkgdir": chroot.pkgdir, "instances": len(entries)}
    if check_mode:
        return result
    if not os.path.isdir(records.dest):
        os.makedirs(records.dest, 0o755)
    write_file_atomic(os.path.join(records.dest, STARTED),
                      (json.dumps(state, indent=1, sort_keys=True) + "\n").encode("utf-8"), 0o644)
    return result


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _select(chroot, entries, installed):
    """The PKGDIR instances matching the installed packages, and the installed packages
    without one."""
    by_build = {}
    for entry in entries:
        key = (entry["CPV"], entry.get("BUILD_TIME"))
        best = by_build.get(key)
        if best is None or int(entry.get("BUILD_ID") or 0) > int(best.get("BUILD_ID") or 0):
            by_build[key] = entry
    selected, unpackaged = [], []
    for cpv, build_time in sorted(installed.items()):
        entry = by_build.get((cpv, build_time)) if build_time else None
        if entry is None:
            unpackaged.append(cpv)
        else:
            selected.append(entry)
    return selected, unpackaged


def _bind(chroot, selected, started, previous, revisions):
    """The package records of the selected instances, and the paths of those this build
    added to the PKGDIR (see the module docstring for what binds a package to a tree)."""
    before = set(tuple(item) for item in started.get("instances") or [])
    previous_packages = dict((p.get("path"), p) for p in (previous or {}).get("packages") or [])
    out, new_instances = [], set()
    for entry in selected:
        rel = entry_path(entry)
        path = chroot.package_file(entry)
        is_new = (rel, entry.get("BUILD_TIME", "")) not in before
        if is_new:
            new_instances.add(rel)
        item = {"cpv": entry["CPV"], "build_id": entry.get("BUILD_ID"), "build_time": entry.get("BUILD_TIME"),
                "path": rel, "size": int(entry["SIZE"]) if entry.get("SIZE", "").isdigit() else os.path.getsize(path),
                "digests": entry_digests(entry), "repo": entry.get("REPO"),
                "repo_revisions": None, "bound_by": None}
        own = package_revisions(path)
        earlier = previous_packages.get(rel)
        if own:
            item.update(repo_revisions=own, bound_by="package")
        elif is_new:
            item.update(repo_revisions=dict(revisions or {}) or None, bound_by="this build")
        elif earlier and same_file(earlier, entry) and earlier.get("repo_revisions"):
            item.update(repo_revisions=earlier["repo_revisions"], bound_by="earlier build")
        out.append(item)
    return out, new_instances


def _identity(packages):
    """What makes two records the same build: the files and what they are bound to."""
    return sorted((p.get("path"), p.get("digests"), p.get("repo_revisions")) for p in packages or [])


def record(params, check_mode=False):
    """Record the build that just succeeded in ``params['root']`` (module options)."""
    params = complete_params(params, ARGUMENT_SPEC, error=BuildRecordError)
    keep = check_keep(params["keep"], "builds", "the last build", BuildRecordError)
    chroot = _Chroot(params)
    records = Records(params["dest"])
    started_path = os.path.join(records.dest, STARTED)
    try:
        with open(started_path) as handle:
            started = json.load(handle)
    except (IOError, OSError, ValueError):
        started = None
    if not isinstance(started, dict):
        if not check_mode:
            raise BuildRecordError("no build start is recorded in %s: run this module with state=started right "
                                   "before the build, so the record can tell which packages the build made"
                                   % started_path)
        started = {"instances": []}
    header, entries = chroot.read_index()
    selected, unpackaged = _select(chroot, entries, chroot.installed())
    last = records.last()
    previous = records.record(last) if last else None
    packages, new_instances = _bind(chroot, selected, started, previous, params.get("revisions"))
    result = {"changed": False, "dest": records.dest, "pkgdir": chroot.pkgdir, "build": last,
              "path": os.path.join(records.dest, last) if last else None,
              "packages": len(packages), "unpackaged": unpackaged,
              "built": sorted(p["cpv"] for p in packages if p["path"] in new_instances),
              "unbound": sorted(p["cpv"] for p in packages if not p.get("repo_revisions"))}
    if previous is not None and previous.get("revisions") == (params.get("revisions") or {}) and \
            _identity(previous.get("packages")) == _identity(packages):
        result["record"] = previous
        _forget_start(records, check_mode)
        return result
    result["changed"] = True
    if check_mode:
        return result
    now = _now()
    build = records.new_id(now)
    provenance = dict(params.get("provenance") or {})
    provenance.setdefault("make_conf", chroot.read_conf("/etc/portage/make.conf"))
    provenance.setdefault("repos_conf", "\n".join(
        text for text in (chroot.read_conf("/etc/portage/repos.conf/%s.conf" % name)
                          for name in sorted(params.get("revisions") or {})) if text is not None))
    provenance.setdefault("built_at", now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    doc = {"format": RECORD_FORMAT, "name": params.get("name") or os.path.basename(records.dest), "build": build,
           "previous": last, "recorded_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
           "started_at": started.get("started_at"), "pkgdir": chroot.pkgdir_inside,
           "revisions": dict(params.get("revisions") or {}), "provenance": provenance,
           "packages": packages, "unpackaged": unpackaged}
    partial = records.partial_path(build)
    os.mkdir(partial, 0o755)
    try:
        for item in packages:
            _link_or_copy(os.path.join(chroot.pkgdir, item["path"]), os.path.join(partial, item["path"]))
        index_header = dict(header, PACKAGES=str(len(selected)))
        text = _format_block(index_header) + "".join(_format_block(e) for e in selected)
        write_file_atomic(os.path.join(partial, INDEX), text.encode("utf-8"), 0o644)
        write_file_atomic(os.path.join(partial, RECORD),
                          (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8"), 0o644)
        records.commit(build)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    records.switch(build)
    result["pruned"] = records.prune(keep)
    _forget_start(records, check_mode)
    result.update(build=build, path=os.path.join(records.dest, build), record=doc)
    return result


def _forget_start(records, check_mode):
    if not check_mode:
        try:
            os.unlink(os.path.join(records.dest, STARTED))
        except OSError:
            pass


def _link_or_copy(src, dest):
    """A hard link (the PKGDIR's file costs no space twice), a copy where the PKGDIR is on
    another file system."""
    directory = os.path.dirname(dest)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    try:
        os.link(src, dest)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
        shutil.copy2(src, dest)


def last_builds(path, names=None):
    """The last successful build of every chroot recorded below ``path`` (the build host's
    records directory), or of the chroots ``names``: a list of ``{name, build, path,
    revisions, provenance, packages}``, and the names that have no record."""
    if not path or not os.path.isabs(path):
        raise BuildRecordError("path %r must be the absolute path of the build records directory" % (path,))
    if names is None:
        try:
            names = sorted(n for n in os.listdir(path) if not n.startswith(".")
                           and os.path.isdir(os.path.join(path, n)) and not os.path.islink(os.path.join(path, n)))
        except OSError:
            names = []
    builds, missing = [], []
    for name in names:
        if not name or "/" in name or name in (".", ".."):
            raise BuildRecordError("chroot name %r cannot name a records directory" % (name,))
        records = Records(os.path.join(path, name))
        last = records.last()
        if last is None:
            missing.append(name)
            continue
        doc = records.record(last)
        builds.append({"name": name, "build": last, "path": os.path.join(records.dest, last),
                       "revisions": doc.get("revisions") or {}, "provenance": doc.get("provenance") or {},
                       "packages": len(doc.get("packages") or []), "recorded_at": doc.get("recorded_at")})
    return {"changed": False, "path": path, "builds": builds, "missing": missing}


def run_build_record(params, check_mode=False):
    """The module's entry point."""
    try:
        if params.get("state") == "started":
            return start(params, check_mode)
        return record(params, check_mode)
    except ChrootPathError as exc:
        raise BuildRecordError(str(exc))
