# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Import verified Gentoo Portage snapshots (gentoo-YYYYMMDD.tar.xz) into a git repository.

The flow, for each mirror in order until one works (a mirror that fails any step is skipped
for the next; see ``CandidateError``):

1. fetch the tiny ``.md5sum``; if the branch tip (or the requested day's tag) already records
   that md5, nothing is new and nothing else is downloaded;
2. download the tarball (md5 computed on the fly) and its ``.gpgsig``; check both;
3. stream ``xz -dc`` through a tar header parser, hash every member as a git blob and send
   only blobs git does not have yet to ``git fast-import`` in a staging git dir;
4. commit "Update portage tree to YYYY-MM-DD" on top of the tip with only the changed paths,
   tag it (``timestamp.x`` minus one day, UTC), then publish objects and move branch and tag
   in one ref transaction; move a work tree if there is one; push if asked.

Nothing is extracted to disk. Commits carry the snapshot's own time as author/committer
date, so the same snapshots imported anywhere give the same commit IDs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import (
    InfraError,
    c_locale_env,
    find_program,
    run,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._fetch import (
    FetchError,
    fetch_bytes,
    fetch_to_file,
    local_path_of,
    digest_of_file,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._gitstore import (
    MODE_EXEC,
    MODE_FILE,
    MODE_LINK,
    GitStore,
    quote_path,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._openpgp import (
    EphemeralKeyring,
    SignatureError,
    normalize_fingerprint,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._tarstream import (
    DIRECTORY,
    HARDLINK,
    REGULAR,
    CONTIGUOUS,
    SYMLINK,
    TYPE_NAMES,
    TarError,
    iter_members,
)

DEFAULT_MIRRORS = ["https://distfiles.gentoo.org"]
DEFAULT_KEY = "/usr/share/openpgp-keys/gentoo-release.asc"
IDENTITY = b"gentoo_binhost.infra snapshot import <portage-snapshot@gentoo-binhost.invalid>"
TIMESTAMP_FILE = b"metadata/timestamp.x"
DIFF_PATH_LIMIT = 200
_F_SETPIPE_SZ = 1031  # from <linux/fcntl.h>; not exported by Python's fcntl before 3.10

DEFAULTS = {
    "repo": None,
    "branch": "master",
    "bare": True,
    "mirrors": None,
    "src": None,
    "date": "latest",
    "verify": True,
    "key": DEFAULT_KEY,
    "fingerprint": None,
    "allow_older": False,
    "tag_format": "%Y-%m-%d",
    "remote": None,
    "push": False,
    "timeout": 60,
}

_MD5_RE = re.compile(r"^[0-9a-fA-F]{32}$")
_DATE_RE = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})$")


class SnapshotError(InfraError):
    """The snapshot could not be imported; nothing in the repository was changed."""


class CandidateError(SnapshotError):
    """What one mirror served is unusable (garbage checksum file, corrupt or hostile tarball,
    unreadable or stale timestamp), so the next mirror is tried.

    A hostile member counts too: it is refused either way, so nothing of it reaches the
    repository, and a mirror that serves one (unverified, or under a stolen key) must not keep
    an honest mirror from being used; the warning about the skipped mirror keeps it visible.

    Errors that every mirror would give alike stay plain SnapshotErrors and end the run at
    once: the local key file, the repository's state (a tag taken by another tree, a blocked
    work tree), git itself, and a snapshot older than the branch tip that is exactly the day
    asked for.
    """


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


def _tag_for(timestamp, tag_format):
    day = time.gmtime(timestamp - 86400)
    return time.strftime(tag_format, day), time.strftime("%Y-%m-%d", day)


def _trailers(message):
    found = {}
    for line in message.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key.startswith("Snapshot"):
            found[key] = value.strip()
    return found


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


# -- the tarball: members to a tree ---------------------------------------------------------------
class TreeScan(object):
    """Turns a snapshot's tar members into ``{path: (mode, blob sha)}`` under its top folder.

    Blobs git does not have yet are handed to ``emit_blob`` (fast-import) as they pass; with
    ``emit_blob=None`` (check mode) nothing is written anywhere. Which blobs git has comes
    from ``old_tree`` (a TreeReader, possibly still reading): until it is ready, new blobs
    wait in a bounded buffer instead of stalling the stream.
    """

    PENDING_LIMIT = 64 << 20

    def __init__(self, label, old_tree, emit_blob=None):
        self.label = label
        self.old_tree = old_tree
        self.known = None
        self.pending = []
        self.pending_bytes = 0
        self.pending_seen = set()
        self.emit_blob = emit_blob
        self.tree = {}
        self.top = None
        self.prefix = None
        self.timestamp_data = None

    def _resolve_known(self):
        """The old tree is (or must now be) read: settle the blobs that waited for it."""
        self.known = set(sha for _mode, sha in self.old_tree.result().values())
        pending, self.pending, self.pending_seen = self.pending, None, None
        for sha, data in pending:
            self._store(sha, data)

    def _store(self, sha, data):
        if sha not in self.known:
            self.known.add(sha)
            if self.emit_blob is not None:
                self.emit_blob(data)

    def finish(self):
        if self.known is None:
            self._resolve_known()

    def _refuse(self, name, reason):
        raise CandidateError(
            "refusing snapshot %s: member %r %s" % (self.label, name.decode("utf-8", "backslashreplace"), reason)
        )

    def _relative(self, name):
        prefix = self.prefix
        if prefix is not None and name.startswith(prefix) and b"/." not in name and b"//" not in name:
            # Fast path for the ~all members: under the top folder, no '.', '..', '.git' parts.
            return name[len(prefix):].rstrip(b"/")
        if name.startswith(b"/"):
            self._refuse(name, "has an absolute path")
        parts = [p for p in name.split(b"/") if p not in (b"", b".")]
        if b".." in parts:
            self._refuse(name, "has a '..' path component (would escape the tree)")
        if not parts:
            self._refuse(name, "has an empty path")
        if self.top is None:
            self.top = parts[0]
            self.prefix = self.top + b"/"
        elif parts[0] != self.top:
            self._refuse(name, "is outside the snapshot's top folder %r" % self.top.decode("utf-8", "replace"))
        rel = parts[1:]
        if any(p.lower() == b".git" for p in rel):
            self._refuse(name, "has a '.git' path component")
        return b"/".join(rel)

    def _blob(self, data):
        digest = hashlib.sha1(b"blob %d\0" % len(data))
        digest.update(data)
        sha = digest.hexdigest().encode()
        if self.known is None and self.old_tree.ready():
            self._resolve_known()
        if self.known is not None:
            self._store(sha, data)
        elif sha not in self.pending_seen:
            self.pending_seen.add(sha)
            self.pending.append((sha, data))
            self.pending_bytes += len(data)
            if self.pending_bytes > self.PENDING_LIMIT:
                self._resolve_known()
        return sha

    def add(self, name, typeflag, mode, linkname, data):
        rel = self._relative(name)
        if typeflag == DIRECTORY:
            return
        if not rel:
            self._refuse(name, "is the top folder but not a directory")
        if typeflag in (REGULAR, CONTIGUOUS):
            self.tree[rel] = (MODE_EXEC if mode & 0o111 else MODE_FILE, self._blob(data))
            if rel == TIMESTAMP_FILE:
                self.timestamp_data = data
        elif typeflag == HARDLINK:
            target = self._link_target_of_hardlink(name, linkname)
            if target not in self.tree:
                self._refuse(name, "is a hard link to %r, which is not an earlier file of the snapshot" % linkname.decode("utf-8", "replace"))
            self.tree[rel] = self.tree[target]
            if rel == TIMESTAMP_FILE:
                self._refuse(name, "(metadata/timestamp.x) must be a regular file")
        elif typeflag == SYMLINK:
            if linkname.startswith(b"/"):
                self._refuse(name, "is a symbolic link to an absolute path")
            depth = rel.count(b"/")
            level = 0
            for part in linkname.split(b"/"):
                level += -1 if part == b".." else (0 if part in (b"", b".") else 1)
                if level < -depth:
                    self._refuse(name, "is a symbolic link pointing outside the tree")
            self.tree[rel] = (MODE_LINK, self._blob(linkname))
        else:
            kind = TYPE_NAMES.get(typeflag, "member of tar type %r" % typeflag.decode("latin-1"))
            self._refuse(name, "is a %s; a Portage tree holds only files, directories and links" % kind)

    def _link_target_of_hardlink(self, name, linkname):
        if linkname.startswith(b"/"):
            self._refuse(name, "is a hard link to an absolute path")
        parts = [p for p in linkname.split(b"/") if p not in (b"", b".")]
        if b".." in parts or not parts or parts[0] != self.top:
            self._refuse(name, "is a hard link pointing outside the snapshot's top folder")
        return b"/".join(parts[1:])


def _widen_pipe(stream):
    """Give a pipe 1 MiB of buffer (Linux; 64 KiB by default).

    With the default, xz and the tar reader take turns instead of running on both cores at
    once: measured on a 150,000-file snapshot, 1.6 s with 64 KiB against 1.07 s with 1 MiB,
    which is xz's own speed.
    """
    try:
        fcntl.fcntl(stream.fileno(), _F_SETPIPE_SZ, 1 << 20)
    except (OSError, ValueError):
        pass  # not Linux, or pipe-max-size is lower: correct, only slower


def _decompressor(path):
    """(stream, finish) reading the tar inside ``path``; xz runs on the other core when present."""
    xz = None
    try:
        xz = find_program("xz")
    except InfraError:
        pass
    if xz is None:
        import lzma

        handle = lzma.open(path, "rb")

        class Stream(object):
            @staticmethod
            def read(size=-1):
                try:
                    return handle.read(size)
                except (lzma.LZMAError, EOFError) as exc:
                    raise CandidateError("cannot decompress %s: %s" % (os.path.basename(path), exc))

        def finish_lzma():
            handle.close()

        return Stream(), finish_lzma
    proc = subprocess.Popen(
        [xz, "-dc", "--", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=c_locale_env(), bufsize=1 << 20
    )
    _widen_pipe(proc.stdout)

    def finish_xz():
        # Drain the zero padding after the end-of-archive marker so xz exits cleanly.
        while proc.stdout.read(1 << 16):
            pass
        err = proc.stderr.read().decode("utf-8", "replace").strip()
        proc.stdout.close()
        proc.stderr.close()
        if proc.wait() != 0:
            # xz names the download's temporary path, which is gone by the time anyone reads this.
            err = err.replace(path, os.path.basename(path))
            raise CandidateError("cannot decompress %s: %s" % (os.path.basename(path), err or "xz failed"))

    return proc.stdout, finish_xz


def scan_tarball(path, label, old_tree, emit_blob=None):
    scan = TreeScan(label, old_tree, emit_blob)
    stream, finish = _decompressor(path)
    try:
        for member in iter_members(stream.read):
            scan.add(*member)
        scan.finish()
    except (CandidateError, TarError) as exc:
        try:
            finish()
        except CandidateError:  # the decompressor's reason is the better one
            raise
        if isinstance(exc, CandidateError):
            raise
        raise CandidateError("refusing snapshot %s: %s" % (label, exc))
    except InfraError as exc:
        # Not the tarball's fault (git ls-tree of the tip failed): the same on every mirror.
        try:
            finish()
        except InfraError:
            pass
        if isinstance(exc, SnapshotError):
            raise
        raise SnapshotError("cannot import snapshot %s: %s" % (label, exc))
    finish()
    if scan.timestamp_data is None:
        raise CandidateError("refusing snapshot %s: it has no metadata/timestamp.x, so its date is unknown" % label)
    return scan


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
        self.p = dict(DEFAULTS)
        self.p.update({k: v for k, v in params.items() if v is not None or k not in DEFAULTS})
        self.check_mode = check_mode
        self.date = _normalize_date(self.p["date"])
        self.fingerprint = normalize_fingerprint(self.p["fingerprint"])
        if not self.p["repo"]:
            raise SnapshotError("repo is required")
        if self.p["src"] and self.p["mirrors"]:
            raise SnapshotError("mirrors and src are mutually exclusive")
        if self.p["push"] and not self.p["remote"]:
            raise SnapshotError("push needs remote")
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
        tip_trailers = _trailers(self.store.commit_message(tip)) if tip else {}
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
                trailers = _trailers(self.store.commit_message(tagged))
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
            self.result["tag"], self.result["date"] = _tag_for(int(stamp), self.p["tag_format"])

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
        sig_path = os.path.join(workdir, candidate.label + ".gpgsig")
        try:
            sig = fetch_bytes(candidate.location + ".gpgsig", self.p["timeout"])
        except FetchError as exc:
            raise FetchError("cannot get the OpenPGP signature of %s: %s" % (candidate.label, exc), missing=exc.missing)
        with open(sig_path, "wb") as handle:
            handle.write(sig)
        with EphemeralKeyring(self.p["key"]) as keyring:
            if self.fingerprint and not any(
                f == self.fingerprint or f.endswith(self.fingerprint) for f in keyring.fingerprints
            ):
                # Checked per signature too; this gives the clearer message for a wrong key file.
                raise SnapshotError(
                    "cannot check the signature of %s: fingerprint %s is not among the keys in %s (%s)"
                    % (candidate.label, self.fingerprint, self.p["key"], ", ".join(keyring.fingerprints))
                )
            info = keyring.verify_detached(tarball, sig_path, candidate.label, self.fingerprint)
        self.result["signed_by"] = info["primary_fingerprint"]

    def _import_tarball(self, candidate, tarball, md5, tip, tip_trailers, workdir):
        staging = None
        importer = None
        emit = None
        if not self.check_mode:
            staging = self.store.staging()
            importer = staging.fast_import()
            write = importer.stdin.write

            def emit(data):
                write(b"blob\ndata %d\n" % len(data))
                write(data)
                write(b"\n")

        try:
            try:
                scan = scan_tarball(tarball, candidate.label, self.old_tree, emit)
            except BrokenPipeError:
                raise SnapshotError("git fast-import stopped: %s" % self._abort(importer))
            timestamp = _parse_timestamp(scan.timestamp_data, candidate.label)
            tag, day = _tag_for(timestamp, self.p["tag_format"])
            _check_ref_name(self.store.git, "refs/tags/%s" % tag, "tag")
            self.result.update({"timestamp": timestamp, "tag": tag, "date": day})
            if self.date and self.date != day.replace("-", ""):
                self.warnings.append(
                    "%s was asked for by date %s but its metadata/timestamp.x says %s" % (candidate.label, self.date, day)
                )
            self._refuse_older(candidate, timestamp, tip, tip_trailers)
            changes = self._changes(self.old_tree.result(), scan.tree)
            if not changes["paths"]:
                self._abort(importer)
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
            self.result["diff"] = self._diff(tip, changes)
            if self.check_mode:
                return self._finish()
            message = self._commit_message(candidate, md5, timestamp, day)
            self._write_commit(importer, message, tip, timestamp, changes, tag, candidate, md5, day)
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
                self._abort(importer)
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
            day_asked_for = self.date and self.date == _tag_for(timestamp, "%Y%m%d")[0]
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

    @staticmethod
    def _changes(old_tree, new_tree):
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

    def _diff(self, tip, changes):
        lines = []
        for op, path, _entry in sorted(changes["paths"], key=lambda c: c[1])[:DIFF_PATH_LIMIT]:
            lines.append("%s %s" % ("-" if op == b"D" else "+", path.decode("utf-8", "replace")))
        more = len(changes["paths"]) - DIFF_PATH_LIMIT
        if more > 0:
            lines.append("… and %d more paths" % more)
        stats = changes["stats"]
        return {
            "before": "%s: %s\n" % (self.p["branch"], tip or "(no commit)"),
            "after": "%s: tag %s (+%d ~%d -%d files)\n%s\n"
            % (self.p["branch"], self.result["tag"], stats["added"], stats["modified"], stats["deleted"], "\n".join(lines)),
        }

    def _commit_message(self, candidate, md5, timestamp, day):
        return (
            "Update portage tree to %s\n\n"
            "Snapshot: %s\n"
            "Snapshot-MD5: %s\n"
            "Snapshot-Timestamp: %d\n" % (day, candidate.label, md5, timestamp)
        ).encode()

    def _write_commit(self, importer, message, tip, timestamp, changes, tag, candidate, md5, day):
        write = importer.stdin.write
        when = b"%d +0000" % timestamp
        write(b"commit %s\n" % self.branch_ref.encode())
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
            "Portage tree snapshot of %s\n\n"
            "Snapshot: %s\n"
            "Snapshot-URL: %s\n"
            "Snapshot-MD5: %s\n"
            "Snapshot-Timestamp: %d\n" % (day, candidate.label, candidate.location, md5, timestamp)
        ).encode()
        write(b"tag %s\nmark :2\nfrom :1\ntagger %s %s\ndata %d\n%s\n" % (tag.encode(), IDENTITY, when, len(tag_message), tag_message))
        write(b"done\n")
        try:
            importer.stdin.close()
        except BrokenPipeError:
            pass
        err = importer.stderr.read().decode("utf-8", "replace").strip()
        importer.stdout.read()
        if importer.wait() != 0:
            raise SnapshotError("git fast-import failed for %s: %s" % (candidate.label, err))

    @staticmethod
    def _abort(importer):
        """Stop fast-import without a commit; its staging dir is thrown away anyway."""
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
    try:
        return SnapshotImport(params, check_mode=check_mode).run()
    except SnapshotError:
        raise
    except InfraError as exc:
        raise SnapshotError(str(exc))
