# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Detached OpenPGP signature checks against given public keys, in an ephemeral keyring.

Like emerge-webrsync: the keyring holds only the keys from the key file, so the host's own
keyring and trust database play no part. A signature counts only when gpg reports VALIDSIG
for it and, with a fingerprint pin, only when its primary key is the pinned one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shutil
import tempfile
import traceback

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import (
    InfraError,
    c_locale_env,
    find_program,
    run,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._fetch import FetchError, fetch_bytes

try:
    import gnupg

    HAS_GNUPG = True
    GNUPG_IMPORT_ERROR = None
except ImportError:  # the module reports it with missing_required_lib
    gnupg = None
    HAS_GNUPG = False
    GNUPG_IMPORT_ERROR = traceback.format_exc()

_FPR_RE = re.compile(r"^[0-9A-F]{40}$|^[0-9A-F]{64}$")


class SignatureError(InfraError):
    """The signature did not verify; the message names the file and the reason."""


def normalize_fingerprint(value):
    """'0xab12 CD…' → 'AB12CD…'; InfraError when it is not a full v4/v5 fingerprint."""
    if value is None:
        return None
    fpr = re.sub(r"\s+", "", value).upper()
    if fpr.startswith("0X"):
        fpr = fpr[2:]
    if not _FPR_RE.match(fpr):
        raise InfraError(
            "fingerprint %r is not a full OpenPGP fingerprint (40 or 64 hex digits); "
            "key IDs are too short to pin a key" % value
        )
    return fpr


class EphemeralKeyring(object):
    """A throwaway GNUPGHOME holding only the keys of ``key_path``; removed on exit."""

    def __init__(self, key_path):
        self.key_path = key_path
        self.home = None
        self.gpg = None
        self.fingerprints = []

    def __enter__(self):
        if not HAS_GNUPG:
            raise InfraError(
                "the python-gnupg library is required for OpenPGP verification "
                "(Debian: python3-gnupg, Gentoo: dev-python/python-gnupg)"
            )
        if not os.path.isfile(self.key_path):
            raise InfraError(
                "OpenPGP key file %s does not exist; install the signing key "
                "(Gentoo: sec-keys/openpgp-keys-gentoo-release) or point 'key' at it" % self.key_path
            )
        # A short path under /tmp: gpg-agent's socket path must stay under ~108 bytes.
        self.home = tempfile.mkdtemp(prefix="gbh-gpg-")
        try:
            self.gpg = gnupg.GPG(gpgbinary=find_program("gpg"), gnupghome=self.home)
            self.gpg.encoding = "utf-8"
            # import_keys (not import_keys_file): Debian 12 ships python-gnupg 0.4.9.
            with open(self.key_path, "rb") as handle:
                result = self.gpg.import_keys(handle.read())
            self.fingerprints = [f.upper() for f in (result.fingerprints or [])]
            if not self.fingerprints:
                raise InfraError("OpenPGP key file %s holds no usable public key" % self.key_path)
        except Exception:
            self._cleanup()
            raise
        return self

    def __exit__(self, *exc_info):
        self._cleanup()
        return False

    def _cleanup(self):
        if self.home is None:
            return
        try:
            gpgconf = shutil.which("gpgconf")
            # Only an agent leaves a socket; verifying alone starts none, so skip the spawn.
            if gpgconf and any(name.startswith("S.") for name in os.listdir(self.home)):
                # Any agent gpg may have started for this home must not outlive it.
                run([gpgconf, "--homedir", self.home, "--kill", "all"], env=c_locale_env(), check=False)
        finally:
            shutil.rmtree(self.home, ignore_errors=True)
            self.home = None

    def verify_detached(self, data_path, sig_path, label, fingerprint=None, what="snapshot"):
        """Check the detached signature ``sig_path`` over ``data_path``.

        Returns ``{'fingerprint': signing key, 'primary_fingerprint': its primary key,
        'timestamp': signature time}``; raises SignatureError naming ``label`` otherwise.
        """
        with open(sig_path, "rb") as sig:
            verified = self.gpg.verify_file(sig, data_path)
        return self._judge(verified, label, fingerprint, what)

    def verify_clearsigned(self, path, label, fingerprint=None, what="checksum file"):
        """Check a clearsigned file (a stage's DIGESTS); returns ``(info, signed text)``.

        Only the text gpg itself reports as signed is returned, never the raw file, so
        lines outside the signed part cannot smuggle in a checksum.
        """
        with open(path, "rb") as handle:
            verified = self.gpg.decrypt_file(handle)
        info = self._judge(verified, label, fingerprint, what)
        return info, verified.data.decode("utf-8", "replace")

    def _judge(self, verified, label, fingerprint, what):
        pin = normalize_fingerprint(fingerprint)
        good = []
        for info in verified.sig_info.values():
            if info.get("status") != "signature valid":
                continue
            primary = (info.get("pubkey_fingerprint") or info.get("fingerprint") or "").upper()
            good.append((primary, (info.get("fingerprint") or "").upper(), info.get("timestamp")))
        # sig_info and status exist in every python-gnupg since 0.4.x ('problems' only in 0.5).
        bad = [i for i in verified.sig_info.values() if i.get("status") == "signature bad"]
        if verified.status == "signature bad":
            bad.append({"keyid": verified.key_id})
        if bad or not good:
            reason = verified.status or "no valid signature"
            if getattr(verified, "key_status", None):
                reason = verified.key_status
            ids = [i.get("keyid") for i in bad] + [verified.key_id]
            who = next((i for i in ids if i and re.match(r"^[0-9A-Fa-f]{8,64}$", i)), None)
            if verified.status == "no public key":
                reason = "signed by key %s, which is not in %s" % (who, self.key_path)
            elif who:
                reason = "%s (key %s)" % (reason, who)
            raise SignatureError("%s signature check failed for %s: %s" % (what, label, reason))
        if pin is not None:
            for primary, signing, stamp in good:
                if pin in (primary, signing):
                    return {"fingerprint": signing, "primary_fingerprint": primary, "timestamp": stamp}
            raise SignatureError(
                "%s signature check failed for %s: signed by 0x%s, expected 0x%s" % (what, label, good[0][0], pin)
            )
        primary, signing, stamp = good[0]
        return {"fingerprint": signing, "primary_fingerprint": primary, "timestamp": stamp}


def verify_detached_signature(data_path, signature, label, key_path, fingerprint=None, timeout=60,
                              workdir=None, what="snapshot"):
    """Fetch the detached signature at ``signature`` (URL or path) and check it over ``data_path``.

    The one path stages and snapshots take: the signature is saved in ``workdir`` (a temporary
    directory when None), then checked in an EphemeralKeyring of ``key_path``, its primary key
    pinned to ``fingerprint`` when given. Returns what :meth:`EphemeralKeyring.verify_detached`
    returns. Raises FetchError when the signature cannot be had, InfraError when the pinned key
    is not in the key file (the same on every mirror), SignatureError when it does not verify.
    """
    pin = normalize_fingerprint(fingerprint)
    try:
        data = fetch_bytes(signature, timeout)
    except FetchError as exc:
        raise FetchError("cannot get the OpenPGP signature of %s: %s" % (label, exc), missing=exc.missing)
    own_dir = workdir is None
    directory = tempfile.mkdtemp(prefix="gbh-sig-") if own_dir else workdir
    try:
        sig_path = os.path.join(directory, label + ".sig")
        with open(sig_path, "wb") as handle:
            handle.write(data)
        with EphemeralKeyring(key_path) as keyring:
            if pin and not any(f == pin or f.endswith(pin) for f in keyring.fingerprints):
                # Checked per signature too; this gives the clearer message for a wrong key file.
                raise InfraError(
                    "cannot check the signature of %s: fingerprint %s is not among the keys in %s (%s)"
                    % (label, pin, key_path, ", ".join(keyring.fingerprints))
                )
            return keyring.verify_detached(data_path, sig_path, label, pin, what=what)
    finally:
        if own_dir:
            shutil.rmtree(directory, ignore_errors=True)
