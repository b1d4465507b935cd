# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unpack a verified Gentoo stage tarball (stage3/stage4) into a staging root.

Like the Gentoo handbook (``tar xpf stage3-*.tar.xz --xattrs-include='*.*' --numeric-owner``)
but checked first and atomic:

1. the DIGESTS file is read (its clearsigned text only, when it is signed) for the tarball's
   SHA512; a root whose marker records that SHA512 is already done, and nothing else is fetched;
2. the tarball is fetched (SHA512 computed on the fly) and its detached ``.asc`` checked;
3. ``xz -dc`` feeds the project's tar reader, which inspects every member *before* passing its
   bytes on to GNU tar: absolute paths, ``..`` components, hard links leaving the root and
   members reached through an archive symlink that leaves the root are refused;
4. tar extracts into a hidden partial directory beside the root, owners numeric, modes,
   xattrs kept; only a complete extraction is renamed into place, with its marker
   (``var/lib/gentoo-binhost/stage.json``) recording what it came from.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import shutil
import subprocess
import tempfile

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import (
    InfraError,
    c_locale_env,
    find_program,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._fetch import (
    FetchError,
    digest_of_file,
    fetch_bytes,
    fetch_to_file,
    local_path_of,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._openpgp import (
    EphemeralKeyring,
    SignatureError,
    normalize_fingerprint,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._tarstream import (
    HARDLINK,
    SYMLINK,
    iter_members,
)

MARKER = "var/lib/gentoo-binhost/stage.json"
BINREPOS = "etc/portage/binrepos.conf"
DEFAULT_KEY = "/usr/share/openpgp-keys/gentoo-release.asc"
_HEX_RE = re.compile(r"^[0-9a-fA-F]{128}$")


class StageError(InfraError):
    """The stage could not be unpacked; the root was left as it was."""


def parse_digests(text, name):
    """SHA512 of ``name`` from a Gentoo DIGESTS text ('# SHA512 HASH' sections), or None."""
    algorithm = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#"):
            words = line.lstrip("#").split()
            algorithm = words[0].upper() if len(words) >= 2 and words[1].upper() == "HASH" else None
            continue
        fields = line.split()
        if algorithm == "SHA512" and len(fields) == 2 and fields[1] == name and _HEX_RE.match(fields[0]):
            return fields[0].lower()
    return None


class MemberPolicy(object):
    """Decides, member by member, whether a stage member may be written below the root."""

    def __init__(self, label):
        self.label = label
        self.symlinks = {}

    def _refuse(self, name, reason):
        raise StageError("refusing stage %s: member %r %s" % (self.label, name.decode("utf-8", "backslashreplace"), reason))

    def _parts(self, name, what):
        if name.startswith(b"/"):
            self._refuse(name, "has an absolute %s" % what)
        parts = [p for p in name.split(b"/") if p not in (b"", b".")]
        if b".." in parts:
            self._refuse(name, "has a '..' component in its %s (would escape the root)" % what)
        return parts

    def _leaves_root(self, link_dir, target):
        """Whether an archive symlink in ``link_dir`` pointing at ``target`` leads out of the root
        when the host (not the chroot) follows it, as tar would while extracting."""
        if target.startswith(b"/"):
            return True
        depth = len(link_dir)
        for part in target.split(b"/"):
            if part == b"..":
                depth -= 1
                if depth < 0:
                    return True
            elif part not in (b"", b"."):
                depth += 1
        return False

    def check(self, name, typeflag, linkname):
        parts = self._parts(name, "path")
        for i in range(1, len(parts)):
            prefix = b"/".join(parts[:i])
            target = self.symlinks.get(prefix)
            if target is not None and self._leaves_root(parts[:i - 1], target):
                self._refuse(name, "lies below the symbolic link %s -> %s, which leads out of the root"
                             % (prefix.decode("utf-8", "replace"), target.decode("utf-8", "replace")))
        if typeflag == HARDLINK:
            self._parts(linkname, "hard link target")
        path = b"/".join(parts)
        if typeflag == SYMLINK:
            self.symlinks[path] = linkname
        else:
            self.symlinks.pop(path, None)


class StageUnpack(object):
    def __init__(self, params, check_mode=False):
        self.p = params
        self.check_mode = check_mode
        self.dest = os.path.abspath(params["dest"])
        self.src = params["src"]
        self.label = self.src.rstrip("/").rsplit("/", 1)[-1]
        self.digests = params.get("digests") or self.src + ".DIGESTS"
        self.signature = params.get("signature") or self.src + ".asc"
        self.verify = params.get("verify", True)
        self.key = params.get("key") or DEFAULT_KEY
        self.fingerprint = normalize_fingerprint(params.get("fingerprint"))
        self.timeout = params.get("timeout") or 60
        self.result = {"changed": False, "dest": self.dest, "stage": self.label, "sha512": None,
                       "binrepos_conf_removed": False}
        if self.dest == "/" or os.path.realpath(self.dest) == "/":
            raise StageError("refusing to unpack a stage onto / (dest must be a staging root)")
        if os.path.exists(self.dest) and not os.path.isdir(self.dest):
            raise StageError("dest %s exists and is not a directory" % self.dest)

    # -- entry point ------------------------------------------------------------------------
    def run(self):
        expected = self._expected_sha512()
        marker = self._read_marker()
        if marker is not None:
            if expected is not None and marker.get("sha512") != expected:
                raise StageError(
                    "%s already holds stage %s (sha512 %s…), not %s; remove it to unpack another stage"
                    % (self.dest, marker.get("stage"), (marker.get("sha512") or "")[:16], self.label)
                )
            self.result["sha512"] = marker.get("sha512")
            self.result["marker"] = marker
            self._remove_binrepos(self.dest)
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
            tarball, sha512 = self._fetch(work)
            if expected is not None and sha512 != expected:
                raise StageError("sha512 mismatch for %s: DIGESTS says %s…, the file has %s…"
                                 % (self.label, expected[:16], sha512[:16]))
            if self.verify:
                self._check_signature(tarball, work)
            root = os.path.join(work, "root")
            os.mkdir(root)
            self._extract(tarball, root)
            self._remove_binrepos(root)
            marker = {"stage": self.label, "src": self.src, "sha512": sha512,
                      "signed_by": self.result.get("signed_by")}
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
        try:
            text = fetch_bytes(self.digests, self.timeout, limit=4 << 20)
        except FetchError as exc:
            if self.verify:
                raise StageError("cannot get the DIGESTS of %s: %s" % (self.label, exc))
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
        sha512 = parse_digests(signed, self.label)
        if sha512 is None and self.verify:
            raise StageError("%s lists no SHA512 for %s" % (os.path.basename(self.digests), self.label))
        return sha512

    def _fetch(self, work):
        local = local_path_of(self.src)
        if local is not None:
            if not os.path.isfile(local):
                raise StageError("stage %s: no such file" % local)
            return local, digest_of_file(local, "sha512")
        dest = os.path.join(work, self.label)
        try:
            return dest, fetch_to_file(self.src, dest, self.timeout, "sha512")
        except FetchError as exc:
            raise StageError("cannot fetch stage %s: %s" % (self.label, exc))

    def _check_signature(self, tarball, work):
        sig_path = os.path.join(work, self.label + ".asc")
        try:
            data = fetch_bytes(self.signature, self.timeout)
        except FetchError as exc:
            raise StageError("cannot get the OpenPGP signature of %s: %s" % (self.label, exc))
        with open(sig_path, "wb") as handle:
            handle.write(data)
        try:
            with EphemeralKeyring(self.key) as keyring:
                info = keyring.verify_detached(tarball, sig_path, self.label, self.fingerprint, what="stage")
        except SignatureError as exc:
            raise StageError(str(exc))
        self.result["signed_by"] = info["primary_fingerprint"]

    def _extract(self, tarball, root):
        """xz → member policy → GNU tar, so no refused member's bytes ever reach tar."""
        xz = subprocess.Popen([find_program("xz"), "-dc", "--", tarball], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=c_locale_env(), bufsize=1 << 20)
        # tar's complaints go to a file: a pipe read only at the end could fill and stall tar.
        tar_log = tempfile.TemporaryFile(prefix="gbh-tar-")
        tar = subprocess.Popen(
            [find_program("tar"), "-x", "-p", "--numeric-owner", "--xattrs", "--xattrs-include=*.*",
             "-f", "-", "-C", root],
            stdin=subprocess.PIPE, stdout=tar_log, stderr=tar_log, env=c_locale_env(), bufsize=1 << 20,
        )
        policy = MemberPolicy(self.label)
        pending = []

        def read(size):
            data = xz.stdout.read(size)
            pending.append(data)
            return data

        try:
            for name, typeflag, _mode, linkname, _data in iter_members(read):
                policy.check(name, typeflag, linkname)
                tar.stdin.write(b"".join(pending))
                del pending[:]
            tar.stdin.write(b"".join(pending) + b"\0" * 1024)
            tar.stdin.close()
        except (InfraError, BrokenPipeError) as exc:
            tar.kill()
            xz.kill()
            tar.wait()
            xz.wait()
            if isinstance(exc, StageError):
                raise
            tar_log.seek(0)
            err = tar_log.read().decode("utf-8", "replace").strip() or xz.stderr.read().decode("utf-8", "replace").strip()
            raise StageError("cannot unpack stage %s: %s" % (self.label, err or exc))
        finally:
            while xz.stdout.read(1 << 16):
                pass
        tar_returncode = tar.wait()
        tar_log.seek(0)
        tar_err = tar_log.read().decode("utf-8", "replace").strip()
        tar_log.close()
        xz_err = xz.stderr.read().decode("utf-8", "replace").strip()
        if xz.wait() != 0:
            raise StageError("cannot decompress stage %s: %s" % (self.label, xz_err))
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


def unpack_stage(params, check_mode=False):
    """Unpack one stage per ``params`` (the module's options); returns the module result."""
    try:
        return StageUnpack(params, check_mode=check_mode).run()
    except StageError:
        raise
    except InfraError as exc:
        raise StageError(str(exc))
