# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unpack a verified Gentoo stage tarball (stage3/stage4) into a staging root.

Like the Gentoo handbook (``tar xpf stage3-*.tar.xz --xattrs-include='*.*' --numeric-owner``)
but checked first and atomic:

1. the tarball's expected SHA512 comes from the ``sha512`` option (a pin) or else from the
   DIGESTS file (its clearsigned text only, when it is signed; entries matched on the file's
   basename, since older catalyst releases list absolute build paths); a root whose marker
   records that SHA512 is already done, and nothing else is read;
2. the tarball is fetched and its SHA512 (and BLAKE2B, when the DIGESTS lists one; both in
   one read of a local file) compared, then its detached ``.asc`` checked. With verification on, what must hold is one of:
   the pin (the ``.asc`` too, when ``signature`` is given), the DIGESTS plus the ``.asc``,
   or (``digests=''``: a stage4 of one's own without DIGESTS) the ``.asc`` alone;
3. the decompressor its first bytes call for (xz, bzip2, gzip, zstd; none for a plain tar)
   feeds the project's tar reader, which inspects every member *before* passing its
   bytes on to GNU tar: absolute paths, ``..`` components, hard links leaving the root and
   members reached through an archive symlink that leaves the root are refused;
4. tar extracts into a hidden partial directory beside the root, owners numeric, modes,
   xattrs kept; only a complete extraction is renamed into place, with its marker
   (``var/lib/gentoo-binhost/stage.json``) recording what it came from.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor, wait

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import (
    InfraError,
    c_locale_env,
    find_program,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._decompress import (
    PIPE_SIZE,
    DecompressError,
    TarStream,
    format_of_file,
    widen_pipe,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._fetch import (
    CHUNK,
    FetchError,
    check_timeout,
    fetch_bytes,
    fetch_to_file,
    local_path_of,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._openpgp import (
    EphemeralKeyring,
    normalize_fingerprint,
    verify_detached_signature,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._params import complete_params, errors_as
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._tarpolicy import MemberPolicy
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._tarstream import iter_members

MARKER = "var/lib/gentoo-binhost/stage.json"
BINREPOS = "etc/portage/binrepos.conf"
DEFAULT_KEY = "/usr/share/openpgp-keys/gentoo-release.asc"
_HEX_RE = re.compile(r"^[0-9a-fA-F]{128}$")

# The stage_unpack module's options: the module hands them to AnsibleModule, plain callers
# (benchmarks, tests) get the same defaults and constraints through complete_params.
ARGUMENT_SPEC = dict(
    src=dict(type="str", required=True),
    dest=dict(type="path", required=True),
    sha512=dict(type="str"),
    digests=dict(type="str"),
    signature=dict(type="str"),
    verify=dict(type="bool", default=True),
    key=dict(type="path", default=DEFAULT_KEY),
    fingerprint=dict(type="str"),
    remove_binrepos_conf=dict(type="bool", default=False),
    timeout=dict(type="int", default=60),
)
MUTUALLY_EXCLUSIVE = [("sha512", "digests")]


class StageError(InfraError):
    """The stage could not be unpacked; the root was left as it was."""


# Section headers of DIGESTS files: '# SHA512 HASH', '# BLAKE2B HASH', and until 2022
# '# BLAKE2 (b2sum) HASH' (b2sum's default, BLAKE2b-512). Other algorithms are not checked.
_ALGORITHMS = {"SHA512": "SHA512", "BLAKE2B": "BLAKE2B", "BLAKE2 (B2SUM)": "BLAKE2B"}


def parse_digests(text, name):
    """``{'SHA512': hex, 'BLAKE2B': hex}`` (those listed) for the file named ``name`` in a
    Gentoo DIGESTS text. Entries match on the basename: older catalyst releases name the
    file by its absolute build path (``/var/tmp/catalyst/builds/default/stage3-….tar.xz``)."""
    algorithm = None
    found = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#"):
            words = line.lstrip("#").split()
            algorithm = (_ALGORITHMS.get(" ".join(words[:-1]).upper())
                         if len(words) >= 2 and words[-1].upper() == "HASH" else None)
            continue
        fields = line.split()
        if (algorithm is not None and len(fields) == 2 and fields[1].rsplit("/", 1)[-1] == name
                and _HEX_RE.match(fields[0])):
            if found.setdefault(algorithm, fields[0].lower()) != fields[0].lower():
                raise StageError("the DIGESTS lists two different %s for %s; it cannot tell which file is meant"
                                 % (algorithm, name))
    return found


class StageUnpack(object):
    def __init__(self, params, check_mode=False):
        self.p = params = complete_params(params, ARGUMENT_SPEC, MUTUALLY_EXCLUSIVE, error=StageError)
        self.check_mode = check_mode
        self.dest = os.path.abspath(params["dest"])
        self.src = params["src"]
        self.label = self.src.rstrip("/").rsplit("/", 1)[-1]
        digests = params["digests"]
        # An empty digests says there is none (a stage4 of one's own), unlike an unset one.
        self.digests = self.src + ".DIGESTS" if digests is None else (digests or None)
        self.signature_given = bool(params["signature"])
        self.signature = params["signature"] or self.src + ".asc"
        self.pin = params["sha512"]
        self.expected_blake2b = None
        self.verify = params["verify"]
        self.key = params["key"]
        self.fingerprint = normalize_fingerprint(params["fingerprint"])
        self.timeout = check_timeout(params["timeout"])
        self.result = {"changed": False, "dest": self.dest, "stage": self.label, "sha512": None,
                       "binrepos_conf_removed": False}
        # The root is replaced by a rename and checked by listing it: through a link, both would
        # act on something else than what the link's target holds.
        if os.path.islink(self.dest):
            raise StageError("dest %s is a symbolic link to %s; give the staging root's real path"
                             % (self.dest, os.readlink(self.dest)))
        if self.dest == "/" or os.path.realpath(self.dest) == "/":
            raise StageError("refusing to unpack a stage onto / (dest must be a staging root)")
        if self.pin is not None:
            if not isinstance(self.pin, str) or not _HEX_RE.match(self.pin.strip()):
                raise StageError("sha512 %r is not a SHA-512 digest (128 hex digits)" % (self.pin,))
            self.pin = self.pin.strip().lower()
        if os.path.exists(self.dest) and not os.path.isdir(self.dest):
            raise StageError("dest %s exists and is not a directory" % self.dest)

    # -- entry point ------------------------------------------------------------------------
    def run(self):
        expected = self._expected_sha512()
        marker = self._read_marker()
        if marker is not None:
            # Without a SHA512 known beforehand, the stage's file name is all that tells stages apart.
            if (marker.get("sha512") != expected if expected is not None else marker.get("stage") != self.label):
                raise StageError(
                    "%s already holds stage %s (sha512 %s…), not %s; remove it to unpack another stage"
                    % (self.dest, marker.get("stage"), (marker.get("sha512") or "")[:16], self.label)
                )
            # Once the stage's binrepos.conf is gone, what is there now was configured in the
            # root afterwards (a client's binhost, say) and is not the stage's to remove.
            if not marker.get("binrepos_conf_removed"):
                self._remove_binrepos(self.dest)
                if self.result["binrepos_conf_removed"] and not self.check_mode:
                    marker = dict(marker, binrepos_conf_removed=True)
                    self._write_marker(self.dest, marker)
            self.result["sha512"] = marker.get("sha512")
            self.result["marker"] = marker
            return self.result
        if os.path.isdir(self.dest) and os.listdir(self.dest):
            raise StageError(
                "%s is not empty and was not unpacked by this module (no %s); "
                "refusing to unpack over it" % (self.dest, MARKER)
            )
        self.result["changed"] = True
        self.result["sha512"] = expected
        if self.check_mode:
            return self.result
        parent = os.path.dirname(self.dest)
        if not os.path.isdir(parent):
            os.makedirs(parent, 0o755)
        work = tempfile.mkdtemp(prefix=".%s.partial-" % os.path.basename(self.dest), dir=parent)
        try:
            tarball, sha512 = self._verified_tarball(work, expected)
            try:
                fmt = format_of_file(tarball, self.label)
            except DecompressError as exc:
                raise StageError(str(exc))
            root = os.path.join(work, "root")
            os.mkdir(root)
            self._extract(tarball, fmt, root)
            self._remove_binrepos(root)
            marker = {"stage": self.label, "src": self.src, "sha512": sha512,
                      "signed_by": self.result.get("signed_by"),
                      "binrepos_conf_removed": bool(self.p.get("remove_binrepos_conf"))}
            self._write_marker(root, marker)
            if os.path.isdir(self.dest):
                os.rmdir(self.dest)  # empty, checked above
            os.rename(root, self.dest)
            self.result["sha512"] = sha512
            self.result["marker"] = marker
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return self.result

    # -- steps ------------------------------------------------------------------------------
    def _expected_sha512(self):
        """The SHA512 the tarball must have (None: not known beforehand); notes a BLAKE2B too."""
        if self.pin is not None:
            return self.pin
        if self.digests is None:
            return None
        try:
            text = fetch_bytes(self.digests, self.timeout, limit=4 << 20)
        except FetchError as exc:
            if self.verify:
                raise StageError("cannot get the DIGESTS of %s: %s; for a stage without DIGESTS give its sha512, "
                                 "or digests='' to rely on its detached signature by key alone" % (self.label, exc))
            return None
        if self.verify and b"-----BEGIN PGP SIGNED MESSAGE-----" in text:
            with tempfile.NamedTemporaryFile(prefix="gbh-digests-") as handle:
                handle.write(text)
                handle.flush()
                with EphemeralKeyring(self.key) as keyring:
                    _info, signed = keyring.verify_clearsigned(handle.name, os.path.basename(self.digests),
                                                               self.fingerprint)
        else:
            signed = text.decode("utf-8", "replace")
        sums = parse_digests(signed, self.label)
        if "SHA512" not in sums and self.verify:
            raise StageError("%s lists no SHA512 for %s" % (os.path.basename(self.digests), self.label))
        self.expected_blake2b = sums.get("BLAKE2B")
        return sums.get("SHA512")

    def _signature_required(self):
        """The detached signature is checked with verification on, except that a pinned SHA512
        stands on its own unless a signature is named as well."""
        return self.verify and (self.pin is None or self.signature_given)

    def _fetch(self, work, expected):
        """``(local path, sha512)`` of the tarball, refused unless it has the expected digests."""
        local = local_path_of(self.src)
        if local is not None:
            if not os.path.isfile(local):
                raise StageError("stage %s: no such file" % local)
            tarball = local
            sums = _file_digests(local, blake2b=self.expected_blake2b is not None)
        else:
            tarball = os.path.join(work, self.label)
            try:
                sums = {"sha512": fetch_to_file(self.src, tarball, self.timeout, "sha512")}
            except FetchError as exc:
                raise StageError("cannot fetch stage %s: %s" % (self.label, exc))
            if self.expected_blake2b is not None:
                sums["blake2b"] = _file_digests(tarball, blake2b=True)["blake2b"]
        source = "option sha512" if self.pin is not None else os.path.basename(self.digests or "DIGESTS")
        for algorithm, wanted in (("sha512", expected), ("blake2b", self.expected_blake2b)):
            if wanted is not None and sums[algorithm] != wanted:
                raise StageError("%s mismatch for %s: expected %s (%s), the file has %s"
                                 % (algorithm, self.label, wanted, source, sums[algorithm]))
        return tarball, sums["sha512"]

    def _verified_tarball(self, work, expected):
        """``(local path, sha512)`` of the tarball once its digests and (when required) its
        detached signature are checked. For a local file gpg reads it on another thread while
        the digests are computed here: each check reads the whole file."""
        local = local_path_of(self.src)
        if not self._signature_required() or local is None or not os.path.isfile(local):
            tarball, sha512 = self._fetch(work, expected)
            if self._signature_required():
                self._check_signature(tarball, work)
            return tarball, sha512
        with ThreadPoolExecutor(max_workers=1) as pool:
            signature = pool.submit(self._check_signature, local, work)
            try:
                found = self._fetch(work, expected)
            except BaseException:
                wait([signature])  # a digest mismatch is the first thing to report
                raise
            signature.result()
        return found

    def _check_signature(self, tarball, work):
        info = verify_detached_signature(tarball, self.signature, self.label, self.key, self.fingerprint,
                                         self.timeout, work, what="stage")
        self.result["signed_by"] = info["primary_fingerprint"]

    def _extract(self, tarball, fmt, root):
        """decompressor → member policy → GNU tar, so no refused member's bytes ever reach tar."""
        tar_program = find_program("tar")
        try:
            stream = TarStream(tarball, fmt, self.label)
        except InfraError as exc:
            raise StageError("cannot unpack stage %s (%s): %s" % (self.label, fmt, exc))
        # tar's complaints go to a file: a pipe read only at the end could fill and stall tar.
        tar_log = tempfile.TemporaryFile(prefix="gbh-tar-")
        tar = subprocess.Popen(
            [tar_program, "-x", "-p", "--numeric-owner", "--xattrs", "--xattrs-include=*.*",
             "-f", "-", "-C", root],
            stdin=subprocess.PIPE, stdout=tar_log, stderr=tar_log, env=c_locale_env(), bufsize=PIPE_SIZE,
        )
        # As wide as the decompressor's pipe: with 64 KiB, this process and tar take turns.
        widen_pipe(tar.stdin)
        policy = MemberPolicy("stage", self.label, StageError)
        pending = []

        def read(size):
            data = stream.read(size)
            pending.append(data)
            return data

        try:
            for name, typeflag, _mode, linkname, _data in iter_members(read):
                policy.check(name, typeflag, linkname)
                tar.stdin.writelines(pending)
                del pending[:]
            pending.append(b"\0" * 1024)
            tar.stdin.writelines(pending)
            tar.stdin.close()
        except (InfraError, BrokenPipeError) as exc:
            tar.kill()
            tar.wait()
            # A decompressor that failed is why the tar stream broke off: its words come first.
            decompress_err = stream.errors()
            stream.close(abandon=True)
            tar_log.seek(0)
            tar_err = tar_log.read().decode("utf-8", "replace").strip()
            tar_log.close()
            if isinstance(exc, StageError):
                raise
            raise StageError("cannot unpack stage %s: %s" % (self.label, decompress_err or tar_err or exc))
        tar_returncode = tar.wait()
        tar_log.seek(0)
        tar_err = tar_log.read().decode("utf-8", "replace").strip()
        tar_log.close()
        try:
            stream.close()
        except DecompressError as exc:
            raise StageError(str(exc))
        if tar_returncode != 0:
            raise StageError("tar failed unpacking stage %s: %s" % (self.label, tar_err))

    def _remove_binrepos(self, root):
        """Stages ship binrepos.conf pointing at Gentoo's binhost; a build host must not use it."""
        if not self.p.get("remove_binrepos_conf"):
            return
        path = os.path.join(root, BINREPOS)
        if not os.path.lexists(path):
            return
        self.result["changed"] = True
        self.result["binrepos_conf_removed"] = True
        if self.check_mode and root == self.dest:
            return
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)

    def _read_marker(self):
        path = os.path.join(self.dest, MARKER)
        if not os.path.isfile(path):
            return None
        try:
            with open(path) as handle:
                return json.load(handle)
        except ValueError:
            raise StageError("%s is not valid JSON; remove it or the root" % path)

    @staticmethod
    def _write_marker(root, marker):
        path = os.path.join(root, MARKER)
        if not os.path.isdir(os.path.dirname(path)):
            os.makedirs(os.path.dirname(path), 0o755)
        with open(path, "w") as handle:
            json.dump(marker, handle, indent=2, sort_keys=True)
            handle.write("\n")


def _file_digests(path, blake2b=False):
    """``{'sha512': hex}`` (and ``'blake2b'``) of the file at ``path``, read once."""
    sums = {"sha512": hashlib.sha512()}
    if blake2b:
        sums["blake2b"] = hashlib.blake2b()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            for digest in sums.values():
                digest.update(chunk)
    return dict((name, digest.hexdigest()) for name, digest in sums.items())


def unpack_stage(params, check_mode=False):
    """Unpack one stage per ``params`` (the module's options); returns the module result."""
    with errors_as(StageError):
        return StageUnpack(params, check_mode=check_mode).run()
