# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Publication of a Portage PKGDIR as an immutable generation of a stack (see _stack), and
rollback to an earlier one: the logic of the binpkg_publish module.

A publication copies the source with ``rsync --link-dest`` against the current generation
(unchanged packages become hard links; only changed ones cross the wire), validates the
``Packages`` index against the files (_packages_index), checks every package's
``REPO_REVISIONS`` against the pinned commits (_binpkg_revisions), writes ``manifest.json``,
renames the directory into place and switches ``current`` with one ``rename(2)``. Until that
rename nothing a client can see has changed; a killed publication leaves a ``.partial-*``
directory the next one removes.

With ``base_url`` the generation's index gets Portage's ``URI`` header pointing at the
generation's own immutable directory, so a client that read an index fetches that
generation's files even if ``current`` moves on meanwhile.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import gzip
import hashlib
import json
import os
import re
import shutil
import tempfile

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._binpkg_revisions import (
    check_revisions,
    resolve_revisions,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._build_record import (
    RECORD,
    BuildRecordError,
    parse_record,
    read_record,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import find_program, run, write_file_atomic
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._generations import ID_RE, check_keep
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._params import complete_params
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._packages_index import (
    DIGESTS,
    INDEX,
    PublishError,
    decode_index,
    entry_path,
    instance_key,
    read_index,
    set_header_uri,
    validate_pkgdir,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._stack import (
    GENERATIONS,
    MANIFEST,
    MANIFEST_FORMAT,
    Stack,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._status_page import write_status_page

# The binpkg_publish module's options: the module hands them to AnsibleModule, plain callers
# (the benchmark, tests) get the same defaults and constraints through complete_params.
ARGUMENT_SPEC = dict(
    src=dict(type="str"),
    dest=dict(type="path", required=True),
    name=dict(type="str"),
    keep=dict(type="int", default=5),
    expect_revisions=dict(type="dict"),
    provenance=dict(type="dict"),
    base_url=dict(type="str"),
    rollback_to=dict(type="str"),
)
REQUIRED_ONE_OF = [("src", "rollback_to")]
MUTUALLY_EXCLUSIVE = [("src", "rollback_to")]


# -- package lists ------------------------------------------------------------------------------
def package_list(entries, revisions=None, sources=None):
    """The manifest's view of the packages, sorted."""
    out = []
    for entry in entries:
        item = {
            "cpv": entry["CPV"],
            "build_id": entry.get("BUILD_ID"),
            "build_time": entry.get("BUILD_TIME"),
            "use": entry.get("USE", "").split(),
            "repo": entry.get("REPO"),
            "path": entry_path(entry),
            "size": int(entry["SIZE"]) if entry.get("SIZE", "").isdigit() else None,
            "repo_revisions": (revisions or {}).get(instance_key(entry)),
        }
        if sources and sources.get(instance_key(entry)):
            item["revisions_from"] = sources[instance_key(entry)]
        for key, _name in DIGESTS:
            if key in entry:
                item[key.lower()] = entry[key]
        out.append(item)
    return sorted(out, key=lambda item: (item["cpv"], item["build_id"] or ""))


def compare(previous, current):
    """Packages added, removed and rebuilt (same CPV, other build) between two package lists,
    keyed by CPV."""
    def by_cpv(items):
        out = {}
        for item in items or []:
            out.setdefault(item["cpv"], set()).add((item.get("build_id"), item.get("sha1") or item.get("md5")))
        return out
    before, after = by_cpv(previous), by_cpv(current)
    return {
        "added": sorted(set(after) - set(before)),
        "removed": sorted(set(before) - set(after)),
        "rebuilt": sorted(cpv for cpv in set(before) & set(after) if before[cpv] != after[cpv]),
    }


def content_id(index_bytes, provenance, base_url=None, record=None):
    """What makes two publications the same: the index, the provenance, the build record's
    bindings and the ``base_url`` written into the index."""
    digest = hashlib.sha256(index_bytes)
    digest.update(json.dumps(provenance or {}, sort_keys=True).encode("utf-8"))
    if record:  # another binding of the same files is another publication
        digest.update(json.dumps(record.get("packages"), sort_keys=True).encode("utf-8"))
    if base_url:  # the published index carries it: another base_url is another publication
        digest.update(b"\0URI " + base_url.rstrip("/").encode("utf-8"))
    return digest.hexdigest()


# -- the source ---------------------------------------------------------------------------------
def _is_local(src):
    return not src.startswith("rsync://") and ":" not in src.split("/")[0]


def _rsync(src, dest, link_dest=None, extra=None):
    """rsync ``src``/ into ``dest``; returns rsync's --stats as a dict of ints."""
    # Nanosecond mtimes: by default rsync's quick check compares whole seconds, and a gpkg (a
    # tar padded to 10 KiB) or a Packages index rewritten within the same second often keeps
    # its size, so --link-dest would link the previous generation's stale copy.
    argv = [find_program("rsync"), "-a", "--delete", "--stats", "--modify-window=-1", "--exclude", "/.partial-*"]
    if link_dest:
        argv += ["--link-dest", link_dest]
    argv += list(extra or []) + [src.rstrip("/") + "/", dest.rstrip("/") + "/"]
    _rc, out, _err = run(argv)
    stats = {}
    for line in out.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            number = re.match(r"\s*([0-9,]+)", value)
            if number:
                stats[key.strip()] = int(number.group(1).replace(",", ""))
    return {
        "files": stats.get("Number of regular files transferred", 0),
        "bytes": stats.get("Total transferred file size", 0),
        "total_files": stats.get("Number of files", 0),
        "total_bytes": stats.get("Total file size", 0),
    }


def _fetch_index(src, work):
    """The source's Packages bytes (rsync for remote sources)."""
    if _is_local(src):
        return read_index(src)
    run([find_program("rsync"), "-a", src.rstrip("/") + "/" + INDEX, os.path.join(work, INDEX)])
    return read_index(work)


def _fetch_record(src, work):
    """The source's build record (``build.json``, written by the build host next to the
    packages it binds), or None when it has none."""
    label = "%s/%s" % (src.rstrip("/"), RECORD)
    try:
        if _is_local(src):
            path = os.path.join(src, RECORD)
            return read_record(path) if os.path.lexists(path) else None
        target = os.path.join(work, RECORD)
        rc, _out, err = run([find_program("rsync"), "-a", label, target], check=False)
        if rc != 0:
            if b"No such file" in err:
                return None
            raise PublishError("cannot fetch the build record of %s: %s" % (src, err.decode("utf-8", "replace").strip()))
        with open(target, "rb") as handle:
            return parse_record(handle.read(), label)
    except BuildRecordError as exc:
        raise PublishError(str(exc))


# -- the steps of a publication -----------------------------------------------------------------
class Request(object):
    """A publication's options, checked before anything is read or written."""

    def __init__(self, params):
        params = complete_params(params, ARGUMENT_SPEC, MUTUALLY_EXCLUSIVE, error=PublishError)
        self.stack = Stack(params["dest"])
        self.name = params["name"] or os.path.basename(self.stack.dest)
        self.keep = check_keep(params["keep"], "generations", "the current one", PublishError)
        self.provenance = params["provenance"] or {}
        self.expected = params["expect_revisions"] or {}
        self.base_url = params["base_url"]
        if not params["src"]:
            raise PublishError("src is required to publish (or rollback_to, to serve an earlier generation again)")
        self.src = params["src"]


def _served_again(request, previous, manifest):
    """The source is what ``previous`` already serves: check its packages against a pin that
    may have moved meanwhile."""
    served = manifest.get("packages") or []
    check_revisions([{"CPV": p["cpv"], "BUILD_ID": p.get("build_id") or "0", "REPO": p.get("repo")} for p in served],
                    dict(("%s-%s" % (p["cpv"], p.get("build_id") or "0"), p.get("repo_revisions")) for p in served),
                    request.expected)
    return len(served)


def _previous_files(stack, generation, manifest):
    """What the previous generation verified: path → (inode, checksums) and path → (inode,
    revisions), for the files still there."""
    known, reuse = {}, {}
    if not generation or not manifest:
        return known, reuse
    for item in manifest.get("packages") or []:
        try:
            inode = os.stat(os.path.join(stack.path(generation), item["path"])).st_ino
        except (OSError, KeyError):
            continue
        known[item["path"]] = (inode, dict((key.lower(), item.get(key.lower())) for key, _n in DIGESTS
                                           if item.get(key.lower())))
        if item.get("revisions_from", "package") == "package":
            reuse[item["path"]] = (inode, item.get("repo_revisions"))
    return known, reuse


def _copy_and_check(request, partial, previous, prev_manifest, record):
    """Copy the source into ``partial`` and check the copy (what gets published is the copy,
    not the source): ``(entries, revisions, sources, transfer, text, content id)``."""
    known, reuse = _previous_files(request.stack, previous, prev_manifest)
    # The build record is read from the source beforehand and binds files by checksum; it is
    # provenance of the build host, not something clients fetch.
    transfer = _rsync(request.src, partial, link_dest=request.stack.path(previous) if previous else None,
                      extra=["--exclude", "/" + RECORD])
    _header, entries, text = validate_pkgdir(partial, known)
    sources = {}
    revisions = resolve_revisions(partial, entries, reuse, record=record, sources=sources)
    check_revisions(entries, revisions, request.expected)
    ident = content_id(read_index(partial), request.provenance, request.base_url, record)
    return entries, revisions, sources, transfer, text, ident


def _point_index_at(partial, text, uri):
    """Give the copied index the header ``URI: uri``, as new files: the copy may be a hard
    link into the previous generation."""
    text = set_header_uri(text, uri)
    write_file_atomic(os.path.join(partial, INDEX), text.encode("utf-8"), 0o644)
    if os.path.exists(os.path.join(partial, INDEX + ".gz")):
        write_file_atomic(os.path.join(partial, INDEX + ".gz"), gzip.compress(text.encode("utf-8"), mtime=0), 0o644)


def _write_manifest(partial, manifest):
    write_file_atomic(os.path.join(partial, MANIFEST),
                      (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8"), 0o644)


def _build_generation(request, generation, previous, prev_manifest, record, now):
    """Write the complete generation into its ``.partial-`` directory and rename it into
    place; returns its manifest. Any failure removes the partial directory."""
    stack = request.stack
    partial = stack.partial_path(generation)
    os.mkdir(partial, 0o755)
    try:
        entries, revisions, sources, transfer, text, ident = _copy_and_check(
            request, partial, previous, prev_manifest, record)
        if request.base_url:
            _point_index_at(partial, text, "%s/%s/%s" % (request.base_url.rstrip("/"), GENERATIONS, generation))
        packages = package_list(entries, revisions, sources)
        manifest = {
            "format": MANIFEST_FORMAT,
            "stack": request.name,
            "generation": generation,
            "previous": previous,
            "published_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "content_id": ident,
            "source": request.src,
            "provenance": request.provenance,
            "packages": packages,
            "changes": compare((prev_manifest or {}).get("packages"), packages),
            "transfer": transfer,
        }
        _write_manifest(partial, manifest)
        stack.commit(generation)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return manifest


def _predict(request, index, record, prev_manifest, check_mode):
    """``(entries, changes)`` the source would publish; in check mode a local source's
    packages are checked against the pin now (a remote one only once copied)."""
    _header, entries, _text = decode_index(index)
    if check_mode and _is_local(request.src):
        check_revisions(entries, resolve_revisions(request.src, entries, record=record), request.expected)
    return entries, compare((prev_manifest or {}).get("packages"), package_list(entries))


def publish(params, check_mode=False, now=None):
    """Publish ``params['src']`` as a new generation of ``params['dest']`` (module options)."""
    request = Request(params)
    stack = request.stack
    previous = stack.current()
    result = {"changed": False, "dest": stack.dest, "generation": previous, "previous": previous,
              "transfer": {"files": 0, "bytes": 0}, "changes": {"added": [], "removed": [], "rebuilt": []}}
    work = tempfile.mkdtemp(prefix="gbh-publish-")
    try:
        index = _fetch_index(request.src, work)
        record = _fetch_record(request.src, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    prev_manifest = stack.manifest(previous) if previous else None
    if prev_manifest and prev_manifest.get("content_id") == content_id(index, request.provenance, request.base_url,
                                                                       record):
        result["packages"] = _served_again(request, previous, prev_manifest)
        if stack.partials() and not check_mode:
            with stack.lock():  # left by a publication that was killed
                stack.remove_partials()
        return result
    entries, changes = _predict(request, index, record, prev_manifest, check_mode)
    result.update(changed=True, changes=changes, packages=len(entries))
    if check_mode:
        return result

    with stack.lock():
        if not os.path.isdir(stack.generations):
            os.makedirs(stack.generations, 0o755)
        stack.remove_partials()  # left by a publication that was killed
        previous = stack.current()
        prev_manifest = stack.manifest(previous) if previous else None
        now = now or datetime.datetime.now(datetime.timezone.utc)
        generation = stack.new_id(now)
        manifest = _build_generation(request, generation, previous, prev_manifest, record, now)
        stack.switch(generation)
        removed = stack.prune(request.keep)
        write_status_page(stack, request.name)
    result.update(changed=True, generation=generation, previous=previous, transfer=manifest["transfer"],
                  changes=manifest["changes"], packages=len(manifest["packages"]), pruned=removed,
                  url_path="%s/%s" % (GENERATIONS, generation))
    return result


def rollback(params, check_mode=False):
    """Switch ``current`` of ``params['dest']`` back to ``params['rollback_to']``, which is
    validated first."""
    stack = Stack(params["dest"])
    name = params.get("name") or os.path.basename(stack.dest)
    target = params["rollback_to"]
    result = {"changed": False, "dest": stack.dest, "generation": target, "previous": stack.current()}
    if not ID_RE.match(target) or target not in stack.list():
        raise PublishError("cannot roll back %s to %s: no such generation (have: %s)"
                           % (stack.dest, target, ", ".join(stack.list()) or "none"))
    validate_pkgdir(stack.path(target))
    if stack.current() == target:
        return result
    result["changed"] = True
    if check_mode:
        return result
    with stack.lock():
        stack.switch(target)
        write_status_page(stack, name)
    return result


def run_publication(params, check_mode=False):
    """The module's entry point: a rollback when ``rollback_to`` is set, else a publication."""
    if params.get("rollback_to"):
        return rollback(params, check_mode)
    return publish(params, check_mode)
