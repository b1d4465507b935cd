# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Import verified Gentoo Portage snapshots (gentoo-YYYYMMDD.tar.xz) into a git repository.

The flow, for each mirror in order until one works (a mirror that fails any step is skipped
for the next; see ``CandidateError``):

1. fetch the tiny ``.md5sum``; if the branch tip (or the requested day's tag) already records
   that md5, nothing is new and nothing else is downloaded;
2. download the tarball (md5 computed on the fly) and its ``.gpgsig``; check both;
3. stream the decompressed tarball through the tar reader, hash every member as a git blob
   and send only blobs git does not have yet to ``git fast-import`` in a staging git dir
   (``_snapshot_tree``);
4. commit "Update portage tree to YYYY-MM-DD" on top of the tip with only the changed paths,
   tag it (``timestamp.x`` minus one day, UTC; ``_snapshot_commit``), then publish objects and
   move branch and tag in one ref transaction; move a work tree if there is one; push if asked.

Nothing is extracted to disk. Commits carry the snapshot's own time as author/committer
date, so the same snapshots imported anywhere give the same commit IDs. The module's
argument spec lives here (``ARGUMENT_SPEC``), so the timer CLI gets the module's defaults.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shutil
import tempfile
import time

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import run
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._fetch import (
    FetchError,
    check_timeout,
    digest_of_file,
    fetch_bytes,
    fetch_to_file,
    local_path_of,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._gitstore import GitStore
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._openpgp import (
    SignatureError,
    normalize_fingerprint,
    verify_detached_signature,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._params import complete_params, errors_as
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._snapshot_commit import (
    abort_import,
    blob_writer,
    changes_diff,
    tag_for,
    trailers,
    tree_changes,
    write_commit,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._snapshot_tree import (
    TIMESTAMP_FILE,
    CandidateError,
    SnapshotError,
    scan_tarball,
)

DEFAULT_MIRRORS = ["https://distfiles.gentoo.org"]
DEFAULT_KEY = "/usr/share/openpgp-keys/gentoo-release.asc"

# The portage_snapshot module's options: the module hands them to AnsibleModule, the timer CLI
# and other plain callers get the same defaults and constraints through complete_params.
ARGUMENT_SPEC = dict(
    repo=dict(type="path", required=True),
    bare=dict(type="bool", default=True),
    branch=dict(type="str", default="master"),
    mirrors=dict(type="list", elements="str"),
    src=dict(type="str"),
    date=dict(type="str", default="latest"),
    verify=dict(type="bool", default=True),
    key=dict(type="path", default=DEFAULT_KEY),
    fingerprint=dict(type="str"),
    allow_older=dict(type="bool", default=False),
    tag_format=dict(type="str", default="%Y-%m-%d"),
    remote=dict(type="str"),
    push=dict(type="bool", default=False),
    timeout=dict(type="int", default=60),
)
MUTUALLY_EXCLUSIVE = [("mirrors", "src")]
REQUIRED_IF = [("push", True, ("remote",))]

_MD5_RE = re.compile(r"^[0-9a-fA-F]{32}$")
_DATE_RE = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})$")


# -- parameters ----------------------------------------------------------------------------
def _normalize_date(value):
    """'latest' → None; 'YYYYMMDD' or 'YYYY-MM-DD' → 'YYYYMMDD' after checking it is a real day."""
    if value in (None, "", "latest"):
        return None
    match = _DATE_RE.match(str(value))
    if match:
        text = "".join(match.groups())
        try:
            time.strptime(text, "%Y%m%d")
            return text
        except ValueError:
            pass
    raise SnapshotError("date %r is neither 'latest' nor a day as YYYYMMDD or YYYY-MM-DD" % (value,))


def _check_ref_name(git, ref, what):
    rc, _out, _err = run([git, "check-ref-format", ref], check=False)
    if rc != 0:
        raise SnapshotError("%s %r is not a valid git ref name" % (what, ref.split("/", 2)[-1]))


def _parse_md5sum(text, label):
    fields = text.decode("utf-8", "replace").split()
    if not fields or not _MD5_RE.match(fields[0]):
        raise CandidateError("%s.md5sum is not an md5sum file (expected '<32 hex digits>  %s')" % (label, label))
    return fields[0].lower()


def _parse_timestamp(data, label, error=CandidateError):
    try:
        return int(data.split()[0])
    except (IndexError, ValueError):
        raise error("%s: metadata/timestamp.x does not start with a unix time" % label)


# -- the import ------------------------------------------------------------------------------------
class Candidate(object):
    """One place the snapshot can come from: a tarball location with its two companions.

    ``source`` is what the user named (the mirror's base URL, or ``src``): the label of this
    candidate in messages, since the file name is the same on every mirror.
    """

    def __init__(self, location, source=None):
        self.location = location
        self.source = source or location
        self.label = location.rstrip("/").rsplit("/", 1)[-1]
        self.local = local_path_of(location)


def _candidates(params, date):
    if params["src"]:
        return [Candidate(params["src"])]
    name = "gentoo-%s.tar.xz" % (date or "latest")
    mirrors = params["mirrors"] or DEFAULT_MIRRORS
    return [Candidate("%s/snapshots/%s" % (m.rstrip("/"), name), m.rstrip("/")) for m in mirrors]


class SnapshotImport(object):
    def __init__(self, params, check_mode=False):
        self.p = complete_params(params, ARGUMENT_SPEC, MUTUALLY_EXCLUSIVE, REQUIRED_IF, SnapshotError)
        self.check_mode = check_mode
        self.date = _normalize_date(self.p["date"])
        self.fingerprint = normalize_fingerprint(self.p["fingerprint"])
        check_timeout(self.p["timeout"])
        self.store = GitStore(self.p["repo"])
        self.branch_ref = "refs/heads/%s" % self.p["branch"]
        _check_ref_name(self.store.git, self.branch_ref, "branch")
        self.result = {
            "changed": False,
            "date": None,
            "tag": None,
            "commit": None,
            "previous_commit": None,
            "timestamp": None,
            "url": None,
            "md5": None,
            "stats": {"added": 0, "modified": 0, "deleted": 0},
            "pushed": False,
            # Not "skipped": Ansible would take a non-empty list there for a skipped task.
            "skipped_mirrors": [],
        }
        self.warnings = []
        self.old_tree = None

    # -- entry point ----------------------------------------------------------------------
    def run(self):
        created = False
        if not self.store.exists:
            if self.check_mode:
                self.result["changed"] = True
                self.result["repository_created"] = True
                return self._import(tip=None)
            self.store.create(bare=self.p["bare"], branch=self.p["branch"])
            created = True
        lock = None
        try:
            if not self.check_mode:
                lock = self.store.lock()
                self.store.remove_abandoned_staging()
            return self._import(tip=self.store.rev_parse(self.branch_ref))
        except BaseException:
            if created:
                # Bad input must leave the disk as it was: drop the repository we made.
                shutil.rmtree(self.store.path, ignore_errors=True)
            raise
        finally:
            if lock is not None:
                lock.close()

    def _import(self, tip):
        self.result["previous_commit"] = tip
        self.result["commit"] = tip
        tip_trailers = trailers(self.store.commit_message(tip)) if tip else {}
        if self.check_mode or not self.store.exists:
            workdir = tempfile.mkdtemp(prefix="gbh-snapshot-")
        else:
            # Downloads go beside the staging objects: same filesystem, removed on the next run.
            workdir = self.store.scratch_dir()
        try:
            return self._from_sources(tip, tip_trailers, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _from_sources(self, tip, tip_trailers, workdir):
        skipped = []
        candidates = _candidates(self.p, self.date)
        for candidate in candidates:
            # A failed candidate leaves nothing behind: not its download, not its findings.
            result_before, warnings_before = dict(self.result), list(self.warnings)
            download = None
            try:
                expected_md5 = self._expected_md5(candidate)
                if expected_md5 and self._already_imported(expected_md5, tip, tip_trailers, candidate):
                    return self._finish_unchanged(skipped)
                if self.old_tree is None:
                    # Read the tip's tree while downloading and verifying: it is needed next.
                    self.old_tree = self.store.read_tree_in_background(tip if self.store.exists else None)
                if not candidate.local:
                    download = os.path.join(workdir, candidate.label)
                tarball, md5 = self._download(candidate, workdir)
                if self.p["verify"]:
                    self._verify(candidate, tarball, md5, expected_md5, workdir)
                self.result["url"] = candidate.location
                self.result["md5"] = md5
                self.result["skipped_mirrors"] = skipped
                return self._import_tarball(candidate, tarball, md5, tip, tip_trailers, workdir)
            except (FetchError, SignatureError, CandidateError) as exc:
                skipped.append({"mirror": candidate.source, "reason": str(exc)})
                self.result, self.warnings = result_before, warnings_before
                if download is not None and os.path.exists(download):
                    os.unlink(download)
        if len(candidates) == 1:
            raise SnapshotError(skipped[0]["reason"])
        raise SnapshotError(
            "no mirror gave a usable snapshot: "
            + "; ".join("%s: %s" % (entry["mirror"], entry["reason"]) for entry in skipped)
        )

    # -- steps ----------------------------------------------------------------------------
    def _expected_md5(self, candidate):
        try:
            return _parse_md5sum(fetch_bytes(candidate.location + ".md5sum", self.p["timeout"]), candidate.label)
        except FetchError as exc:
            if self.p["verify"]:
                raise FetchError("cannot get the checksum of %s: %s" % (candidate.label, exc), missing=exc.missing)
            return None

    def _already_imported(self, md5, tip, tip_trailers, candidate):
        if tip and tip_trailers.get("Snapshot-MD5") == md5:
            self._describe_commit(tip, tip_trailers)
            self.result["md5"] = md5
            self.result["url"] = candidate.location
            return True
        if self.date and self.store.exists:
            tag = time.strftime(self.p["tag_format"], time.strptime(self.date, "%Y%m%d"))
            tagged = self.store.rev_parse("refs/tags/%s" % tag)
            if tagged:
                trailers = trailers(self.store.commit_message(tagged))
                if trailers.get("Snapshot-MD5") == md5:
                    self._describe_commit(tagged, trailers)
                    self.result["commit"] = tagged
                    self.result["md5"] = md5
                    self.result["url"] = candidate.location
                    return True
        return False

    def _describe_commit(self, commit, trailers):
        stamp = trailers.get("Snapshot-Timestamp")
        if stamp and stamp.isdigit():
            self.result["timestamp"] = int(stamp)
            self.result["tag"], self.result["date"] = tag_for(int(stamp), self.p["tag_format"])

    def _download(self, candidate, workdir):
        if candidate.local:
            if not os.path.isfile(candidate.local):
                raise FetchError("%s: no such file" % candidate.local, missing=True)
            return candidate.local, digest_of_file(candidate.local)
        dest = os.path.join(workdir, candidate.label)
        return dest, fetch_to_file(candidate.location, dest, self.p["timeout"])

    def _verify(self, candidate, tarball, md5, expected_md5, workdir):
        if md5 != expected_md5:
            raise SignatureError(
                "md5 mismatch for %s: %s.md5sum says %s, the file has %s (corrupt or truncated download?)"
                % (candidate.label, candidate.label, expected_md5, md5)
            )
        info = verify_detached_signature(tarball, candidate.location + ".gpgsig", candidate.label, self.p["key"],
                                         self.fingerprint, self.p["timeout"], workdir, what="snapshot")
        self.result["signed_by"] = info["primary_fingerprint"]

    def _import_tarball(self, candidate, tarball, md5, tip, tip_trailers, workdir):
        staging = None
        importer = None
        emit = None
        if not self.check_mode:
            staging = self.store.staging()
            importer = staging.fast_import()
            emit = blob_writer(importer)

        try:
            try:
                scan = scan_tarball(tarball, candidate.label, self.old_tree, emit)
            except BrokenPipeError:
                raise SnapshotError("git fast-import stopped: %s" % abort_import(importer))
            timestamp = _parse_timestamp(scan.timestamp_data, candidate.label)
            tag, day = tag_for(timestamp, self.p["tag_format"])
            _check_ref_name(self.store.git, "refs/tags/%s" % tag, "tag")
            self.result.update({"timestamp": timestamp, "tag": tag, "date": day})
            if self.date and self.date != day.replace("-", ""):
                self.warnings.append(
                    "%s was asked for by date %s but its metadata/timestamp.x says %s" % (candidate.label, self.date, day)
                )
            self._refuse_older(candidate, timestamp, tip, tip_trailers)
            changes = tree_changes(self.old_tree.result(), scan.tree)
            if not changes["paths"]:
                abort_import(importer)
                self.result["commit"] = tip
                return self._finish_unchanged(self.result["skipped_mirrors"])
            existing = self.store.ref_target("refs/tags/%s" % tag) if self.store.exists else None
            if existing:
                raise SnapshotError(
                    "tag %s already exists in %s for a different tree (%s); refusing to move it. "
                    "Delete the tag or choose another tag_format" % (tag, self.store.path, existing)
                )
            self.result["changed"] = True
            self.result["stats"] = changes["stats"]
            self.result["diff"] = changes_diff(self.p["branch"], tip, tag, changes)
            if self.check_mode:
                return self._finish()
            write_commit(importer, self.branch_ref, tip, changes, {
                "label": candidate.label, "url": candidate.location, "md5": md5,
                "timestamp": timestamp, "day": day, "tag": tag})
            marks = staging.marks()
            commit, tag_object = marks.get(1), marks.get(2)
            if not commit or not tag_object:
                raise SnapshotError("git fast-import did not produce the commit and tag for %s" % candidate.label)
            self.store.adopt_objects(staging)
            if not self.store.bare and self.store.head_branch() == self.branch_ref:
                # Index and work tree first: if local changes block it, the refs stay put.
                self.store.checkout_tree(tip, commit)
            self.store.update_refs([(self.branch_ref, commit, tip), ("refs/tags/%s" % tag, tag_object, None)])
            gc_error = self.store.collect_garbage()
            if gc_error:
                self.warnings.append("imported, but 'git gc --auto' in %s failed: %s" % (self.store.path, gc_error))
            self.result["commit"] = commit
            return self._finish()
        finally:
            if importer is not None and importer.poll() is None:
                abort_import(importer)
            if staging is not None:
                staging.remove()

    def _refuse_older(self, candidate, timestamp, tip, tip_trailers):
        if not tip or self.p["allow_older"]:
            return
        tip_stamp = tip_trailers.get("Snapshot-Timestamp")
        if tip_stamp is None or not tip_stamp.isdigit():
            data = self.store.read_blob(tip, TIMESTAMP_FILE.decode())
            tip_stamp = str(_parse_timestamp(data, "the branch tip", SnapshotError)) if data else None
        if tip_stamp is not None and timestamp < int(tip_stamp):
            # The day asked for by name is the same snapshot on every mirror: asking the others
            # gives the same answer. Otherwise this mirror is behind (its 'latest' is stale) or
            # serves another day under the name asked for, and the next one may be current.
            day_asked_for = self.date and self.date == tag_for(timestamp, "%Y%m%d")[0]
            raise (SnapshotError if day_asked_for else CandidateError)(
                "refusing snapshot %s: it is older (timestamp.x %s) than the tip of %s (%s); "
                "set allow_older to import it anyway"
                % (
                    candidate.label,
                    time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp)),
                    self.p["branch"],
                    time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(int(tip_stamp))),
                )
            )

    def _finish_unchanged(self, skipped):
        self.result["changed"] = False
        self.result["stats"] = {"added": 0, "modified": 0, "deleted": 0}
        self.result["skipped_mirrors"] = skipped
        return self._finish()

    def _finish(self):
        if self.p["push"]:
            self._push()
        for entry in self.result["skipped_mirrors"]:
            # A later mirror worked, but a broken (or hostile) one deserves its admin's attention.
            self.warnings.append("skipped mirror %s: %s" % (entry["mirror"], entry["reason"]))
        if self.warnings:
            self.result["warnings"] = self.warnings
        return self.result

    def _push(self):
        tag = self.result["tag"]
        refs = [self.branch_ref] + (["refs/tags/%s" % tag] if tag else [])
        commit = self.result["commit"]
        if not commit:
            return
        if not self.store.exists:
            self.result["pushed"] = True
            return
        local = {self.branch_ref: commit}
        if tag:
            local["refs/tags/%s" % tag] = self.store.ref_target("refs/tags/%s" % tag)
        remote = self.store.remote_refs(self.p["remote"], refs)
        if all(remote.get(ref) == sha for ref, sha in local.items()):
            return
        self.result["changed"] = True
        self.result["pushed"] = True
        if not self.check_mode:
            self.store.push(self.p["remote"], ["%s:%s" % (ref, ref) for ref in refs])


def import_snapshot(params, check_mode=False):
    """Import one snapshot per ``params`` (the module's options); returns the module result.

    Every expected failure is a SnapshotError whose message names the input and the reason.
    """
    with errors_as(SnapshotError):
        return SnapshotImport(params, check_mode=check_mode).run()
