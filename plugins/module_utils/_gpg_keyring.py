# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A GnuPG home kept for Portage: keys imported from files and, for verification, trusted.

Portage verifies a signed gpkg with ``gpg --verify --homedir BINPKG_GPG_VERIFY_GPG_HOME``
(run as ``nobody``) and accepts it only when gpg reports ``TRUST_FULLY`` or
``TRUST_ULTIMATE`` for the signer; an imported key alone is "of undefined trust" and refused.
getuto solves this with a local trust key: an ultimately trusted key of the keyring's own
that locally signs (``--quick-lsign-key``) the keys to accept, which makes them fully valid
without letting them introduce further keys. :func:`ensure_keyring` does the same for any
key file, and also imports secret keys for Portage's signing keyring.

Flow, so that refused input leaves the home as it was and check mode stays exact:

1. The key files are imported into a scratch home: an unreadable file, a file without keys,
   a fingerprint pin that matches none of their keys or a secret key that is missing is
   refused before the home is touched. Only the selected keys (the pinned ones, else all)
   travel on, as an export from the scratch home.
2. The home is read (keys, validity, ultimately trusted secret keys). Whether importing
   would add anything to a key it already holds is measured by merging both into a second
   scratch home: gpg's ``IMPORT_RES`` says exactly what an import adds.
3. Without check mode: import, create the trust key when there is none, lsign the keys that
   are not fully valid, update the trust database, give the keyring files the read
   permissions of the home, write the export, and check that the keys are now fully valid.

A gpg-agent started here for the home is stopped again; scratch homes are removed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import socket
import tempfile
import time

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import (
    InfraError,
    find_program,
    run,
    write_file_atomic,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._openpgp import normalize_fingerprint

# gpg --with-colons validity: what a key's first field says about whether Portage trusts it.
VALIDITY_NAMES = {"o": "unknown", "-": "unknown", "q": "undefined", "n": "never", "m": "marginal",
                  "f": "full", "u": "ultimate", "r": "revoked", "e": "expired", "i": "invalid", "d": "disabled"}
TRUSTED = ("f", "u")
UNUSABLE = ("r", "e", "i", "d")
# The keyring files the verifying user reads; the home's read bits are added to theirs.
SHARED_FILES = ("pubring.kbx", "trustdb.gpg")
DEFAULT_TRUST_UID = "Portage Local Trust Key (gentoo_binhost.infra) <portage@localhost>"


class Key(object):
    """One primary key of a ``--with-colons`` listing: ``kind`` is ``pub`` or ``sec`` (a file
    holding the secret key), ``grips`` the keygrips of the key and its subkeys."""

    def __init__(self, fingerprint, validity, kind="pub", uids=None, secret=False):
        self.fingerprint = fingerprint
        self.validity = validity
        self.kind = kind
        self.uids = list(uids or [])
        self.subkeys = []
        self.grips = []
        self.secret = secret

    def describe(self):
        flags = VALIDITY_NAMES.get(self.validity, self.validity) + (", secret" if self.secret else "")
        return "0x%s [%s] %s" % (self.fingerprint, flags, "; ".join(self.uids) or "(no user ID)")


def parse_colons(text):
    """``{fingerprint: Key}`` of a ``gpg --with-colons`` key listing (``--list-keys``,
    ``--show-keys``, with or without ``--with-keygrip``).

    The ``fpr`` and ``grp`` records belong to the key or subkey line before them; a ``uid``
    record's field 10 is the user ID with colons escaped as ``\\x3a``.
    """
    keys = {}
    key = None
    last = None
    for line in text.splitlines():
        fields = line.split(":")
        kind = fields[0]
        if kind in ("pub", "sec") and len(fields) > 1:
            key, last = Key(None, fields[1], kind), "primary"
        elif kind in ("sub", "ssb") and key is not None:
            last = "sub"
        elif kind == "fpr" and key is not None and len(fields) > 9 and last:
            if last == "primary":
                key.fingerprint = fields[9].upper()
                keys[key.fingerprint] = key
            else:
                key.subkeys.append(fields[9].upper())
        elif kind == "grp" and key is not None and len(fields) > 9:
            key.grips.append(fields[9].upper())
        elif kind == "uid" and key is not None and len(fields) > 9:
            key.uids.append(fields[9].replace("\\x3a", ":"))
    return keys


def import_changes(status):
    """What one ``gpg --import --status-fd 1`` added: the count of new keys, user IDs, subkeys,
    signatures and revocations from its ``IMPORT_RES`` line (0 when absent)."""
    for line in status.splitlines():
        if line.startswith("[GNUPG:] IMPORT_RES "):
            # count no_user_id imported imported_rsa unchanged n_uids n_subk n_sigs n_revoc ...
            counts = [int(n) for n in line.split()[2:]]
            return counts[2] + sum(counts[5:9])
    return 0


class GnupgHome(object):
    """gpg on one home: list arguments, ``--batch``, C locale, through ``_common.run``.

    Only what needs secret keys (importing them, creating the trust key, lsigning) runs with a
    gpg-agent; everything else runs with ``--no-autostart``, so reading a keyring starts no
    agent and leaves no sockets in it. An agent this object started is stopped by
    :meth:`stop_agent`; one that was running before is left alone.
    """

    def __init__(self, path):
        self.path = path
        self.gpg = find_program("gpg")
        self.agent_was_running = None

    def run(self, args, data=None, check=True, agent=False):
        """``gpg args`` on this home: ``(rc, stdout, stderr)`` as text; InfraError on failure with ``check``."""
        if agent and self.agent_was_running is None:
            self.agent_was_running = self.agent_pid() is not None
        command = [self.gpg, "--homedir", self.path, "--batch", "--no-tty", "--with-colons"]
        command += [] if agent else ["--no-autostart"]
        rc, out, err = run(command + list(args), data=data, check=check)
        return rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    def has_keyring(self):
        return any(os.path.exists(os.path.join(self.path, name)) for name in ("pubring.kbx", "pubring.gpg"))

    def public_keys(self):
        """The home's keys; ``secret`` when the agent's store holds a secret (sub)key of one."""
        # Listing an empty home would create its keyring files: read only what is there.
        if not self.has_keyring():
            return {}
        keys = parse_colons(self.run(["--with-keygrip", "--list-keys"])[1])
        store = os.path.join(self.path, "private-keys-v1.d")
        for key in keys.values():
            key.secret = any(os.path.exists(os.path.join(store, grip + ".key")) for grip in key.grips)
        return keys

    def show_keys(self, data):
        """The keys in ``data`` without importing them; ``secret`` when it holds secret keys."""
        rc, out, err = self.run(["--with-keygrip", "--show-keys"], data=data, check=False)
        keys = parse_colons(out)
        for key in keys.values():
            key.secret = key.kind == "sec"
        return keys, err

    def import_data(self, data, label, agent=False):
        """Import ``data``; returns gpg's status lines. Without ``agent`` secret keys are skipped."""
        rc, out, err = self.run(["--status-fd", "1", "--import"], data=data, check=False, agent=agent)
        if rc != 0 and (agent or "IMPORT_OK" not in out):
            raise InfraError("importing %s into %s failed: %s" % (label, self.path, err.strip()))
        return out

    def export(self, fingerprints, armor=False):
        args = (["--armor"] if armor else []) + ["--export"] + list(fingerprints)
        return run([self.gpg, "--homedir", self.path, "--batch", "--no-autostart"] + args)[1]

    def export_secret(self, fingerprints):
        """Secret keys without passphrase as one export; None when gpg needs a passphrase."""
        rc, out, _err = run([self.gpg, "--homedir", self.path, "--batch", "--no-tty", "--pinentry-mode", "loopback",
                             "--passphrase", "", "--export-secret-keys"] + list(fingerprints), check=False)
        return out if rc == 0 and out else None

    def agent_pid(self):
        """The pid of the agent serving this home (0 when it does not say), None when none runs."""
        _rc, out, _err = run([find_program("gpgconf"), "--homedir", self.path, "--list-dirs", "agent-socket"],
                             check=False)
        path = out.decode("utf-8", "replace").strip()
        if not path or not os.path.exists(path):
            return None
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except (IOError, OSError):
            return None
        finally:
            probe.close()
        _rc, out, _err = run([find_program("gpg-connect-agent"), "--homedir", self.path, "--no-autostart",
                              "getinfo pid", "/bye"], check=False)
        for line in out.decode("utf-8", "replace").splitlines():
            if line.startswith("D ") and line[2:].strip().isdigit():
                return int(line[2:].strip())
        return 0

    def stop_agent(self):
        """Stop the home's agent if this object started it, and wait until it is gone: it
        removes its sockets as it exits (about 2 s after being told), and a build in a chroot
        must not find the host's agent behind them."""
        if self.agent_was_running is not False:
            return
        pid = self.agent_pid()
        if pid is None:
            return
        run([find_program("gpgconf"), "--homedir", self.path, "--kill", "gpg-agent"], check=False)
        deadline = time.time() + 10
        while pid and os.path.exists("/proc/%d" % pid) and time.time() < deadline:
            time.sleep(0.02)


class ScratchHome(GnupgHome):
    """A throwaway home (short path under the temp directory: agent sockets are limited to
    ~108 bytes), removed with any agent on exit."""

    def __init__(self):
        GnupgHome.__init__(self, tempfile.mkdtemp(prefix="gbh-keyring-"))

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        try:
            self.stop_agent()
        finally:
            shutil.rmtree(self.path, ignore_errors=True)
        return False


def parse_mode(value):
    """The home's mode from an octal string; refuses modes gpg or Portage cannot use safely."""
    try:
        mode = int(value, 8) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise InfraError("mode %r is not an octal mode such as 0700" % (value,))
    if mode & 0o700 != 0o700 or mode & 0o022 or mode & ~0o755:
        raise InfraError("mode %s of a GnuPG home must give its owner rwx and nobody else write access "
                         "(0700, or 0755 for a keyring another user verifies with)" % value)
    return mode


def read_key_files(scratch, paths, pins, secret):
    """Read ``paths`` and import their public keys into ``scratch``.

    Returns ``(selected fingerprints, {fingerprint: Key} offered, raw file contents)``; the
    offered keys carry the validity gpg gives them (revoked, expired) and ``secret`` when a
    file holds their secret key. Refuses what cannot be used, before any home is touched.
    """
    if not paths:
        raise InfraError("no key file given: keys needs at least one armored or binary OpenPGP key file")
    raw, order, origin, has_secret = [], [], {}, set()
    for path in paths:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except (IOError, OSError) as exc:
            raise InfraError("cannot read key file %s: %s" % (path, exc.strerror or exc))
        shown, err = scratch.show_keys(data)
        if not shown:
            detail = (err.strip().splitlines() or [""])[-1]
            raise InfraError("%s holds no OpenPGP public key (gpg: %s); give an exported key file" % (path, detail))
        # gpg stops importing a file at its first secret key when no agent takes it.
        scratch.import_data(data, path, agent=any(key.secret for key in shown.values()))
        raw.append(data)
        for fpr, key in shown.items():
            if fpr not in origin:
                origin[fpr] = path
                order.append(fpr)
            if key.secret:
                has_secret.add(fpr)
    offered = scratch.public_keys()
    for fpr, key in offered.items():
        key.secret = fpr in has_secret
    for pin in pins:
        if pin not in offered:
            raise InfraError("fingerprint 0x%s matches none of the keys in %s (%s): check the pin and the key file"
                             % (pin, ", ".join(paths), ", ".join("0x" + f for f in order)))
    selected = list(pins) or order
    if secret:
        for fpr in selected:
            if fpr not in has_secret:
                raise InfraError("%s holds no secret key for 0x%s: give an export made with gpg --export-secret-keys"
                                 % (origin[fpr], fpr))
    return selected, offered, raw


def secret_payload(scratch, paths, selected, offered, raw):
    """What to import for the secret keys: the files themselves when they hold only the selected
    keys (a passphrase stays as it is), else an export of just those keys from ``scratch``,
    where :func:`read_key_files` imported the secret keys."""
    if sorted(offered) == sorted(selected):
        return b"".join(raw)
    payload = scratch.export_secret(selected)
    if not payload:
        raise InfraError("cannot take only the key(s) %s out of %s: gpg needs their passphrase to export them; "
                         "give a key file that holds only these keys" % (
                             ", ".join("0x" + f for f in selected), ", ".join(paths)))
    return payload


def ensure_keyring(params, check_mode=False):
    """The ``portage_gpg_keyring`` module: see the module documentation. Returns its result."""
    home_path = params["home"]
    if not home_path or not os.path.isabs(home_path):
        raise InfraError("home %r must be an absolute path (for a chroot, resolve it with "
                         "gentoo_binhost.infra.chroot_path first)" % (home_path,))
    home_path = os.path.normpath(home_path)
    if os.path.lexists(home_path) and not os.path.isdir(home_path):
        raise InfraError("home %s exists and is not a directory" % home_path)
    mode = parse_mode(params.get("mode", "0700"))
    trust = params.get("trust", "lsign")
    if trust not in ("lsign", "none"):
        raise InfraError("trust %r is not one of lsign, none" % (trust,))
    secret = bool(params.get("secret"))
    pins = [normalize_fingerprint(p) for p in params.get("fingerprints") or []]
    paths = list(params.get("keys") or [])
    export_path = params.get("export")
    if export_path and not (os.path.isabs(export_path) and (os.path.isdir(os.path.dirname(export_path))
                                                            or os.path.dirname(export_path) == home_path)):
        raise InfraError("export %r must be an absolute path in an existing directory (or in home)" % (export_path,))
    home = GnupgHome(home_path)
    result = {"changed": False, "home": home_path, "warnings": []}
    try:
        with ScratchHome() as scratch:
            selected, offered, raw = read_key_files(scratch, paths, pins, secret)
            public = scratch.export(selected)
            plan = plan_changes(home, selected, offered, public, secret, trust)
            secrets = secret_payload(scratch, paths, selected, offered, raw) if plan["import_secret"] else None
        for fpr in selected:
            if offered[fpr].validity in UNUSABLE:
                result["warnings"].append("key 0x%s is %s: Portage refuses what it signs"
                                          % (fpr, VALIDITY_NAMES[offered[fpr].validity]))
        export_changed = bool(export_path) and (bool(plan["import"]) or not os.path.isfile(export_path))
        if export_path and not export_changed:
            with open(export_path, "rb") as handle:
                export_changed = handle.read() != home.export(selected, armor=True)
        changed = bool(plan["import"] or plan["import_secret"] or plan["lsign"] or export_changed)
        changed = fix_modes(home_path, mode, check=True) or changed
        result.update(changed=changed, fingerprints=selected, export=export_path,
                      imported=sorted(set(plan["import"]) | set(plan["import_secret"])), lsigned=plan["lsign"],
                      trust_key=plan["anchor"], trust_key_created=bool(plan["lsign"]) and not plan["anchor"])
        before = plan["present"]
        if check_mode or not changed:
            after = predict(before, offered, plan, secret)
            result["export_exists"] = bool(export_path) and os.path.isfile(export_path)
        else:
            after = apply_changes(home, mode, plan, public, secrets, params, result)
            if export_changed:
                write_file_atomic(export_path, home.export(selected, armor=True), 0o644)
            result["export_exists"] = bool(export_path)
        order = sorted(set(before) | set(after), key=lambda f: (f not in selected, f))
        result["diff"] = {"before_header": "%s (keys)" % home_path, "after_header": "%s (keys)" % home_path,
                          "before": render(before, order), "after": render(after, order)}
        return result
    finally:
        home.stop_agent()


def render(keys, order):
    return "".join(keys[f].describe() + "\n" for f in order if f in keys)


def plan_changes(home, selected, offered, public, secret, trust):
    """What the home lacks: keys to import or update, secret keys, keys to lsign, the anchor."""
    present = home.public_keys() if os.path.isdir(home.path) else {}
    plan = {"present": present, "import": [f for f in selected if f not in present], "import_secret": [],
            "lsign": [], "anchor": None}
    known = [f for f in selected if f in present]
    if known and not plan["import"]:
        # Would the files add user IDs, subkeys, signatures or revocations? Ask gpg, on a copy.
        with ScratchHome() as merged:
            merged.import_data(home.export(known), "the keys of %s" % home.path)
            if import_changes(merged.import_data(public, "the key files")):
                plan["import"] = list(selected)
    if secret:
        plan["import_secret"] = [f for f in selected if not (f in present and present[f].secret)]
    if trust == "lsign":
        plan["lsign"] = [f for f in selected if offered[f].validity not in UNUSABLE
                         and (f not in present or present[f].validity not in TRUSTED)]
        anchors = sorted(f for f, k in present.items() if k.secret and k.validity == "u" and f not in selected)
        plan["anchor"] = anchors[0] if anchors else None
    return plan


def predict(before, offered, plan, secret):
    """The key set check mode expects after a run."""
    after = dict(before)
    for fpr in set(plan["import"]) | set(plan["import_secret"]) | set(plan["lsign"]):
        old, new = before.get(fpr), offered[fpr]
        validity = "f" if fpr in plan["lsign"] else (old.validity if old else new.validity)
        uids = (old.uids if old else []) + [u for u in new.uids if not old or u not in old.uids]
        after[fpr] = Key(fpr, validity, uids=uids, secret=secret or bool(old and old.secret))
    if plan["lsign"] and not plan["anchor"]:
        after["(new local trust key)"] = Key("(new local trust key)", "u", uids=["(created by this run)"], secret=True)
    return after


def fix_modes(path, mode, check):
    """Whether the home (and the keyring files a verifying user reads) need other modes; sets them
    unless ``check``. Files only gain the home's read bits: gpg's own choices are kept."""
    if not os.path.isdir(path):
        return True
    changed = False
    if os.stat(path).st_mode & 0o7777 != mode:
        changed = True
        if not check:
            os.chmod(path, mode)
    for name in SHARED_FILES:
        target = os.path.join(path, name)
        if not os.path.isfile(target) or os.path.islink(target):
            continue
        current = os.stat(target).st_mode & 0o7777
        if current | (mode & 0o044) != current:
            changed = True
            if not check:
                os.chmod(target, current | (mode & 0o044))
    return changed


def apply_changes(home, mode, plan, public, secrets, params, result):
    """Make the home hold what ``plan`` says it lacks; returns its key set afterwards."""
    if not os.path.isdir(home.path):
        parent = os.path.dirname(home.path)
        if not os.path.isdir(parent):
            os.makedirs(parent, 0o755)
        os.mkdir(home.path, mode)
    os.chmod(home.path, mode)
    if plan["import"]:
        home.import_data(public, "the keys of %s" % ", ".join(params["keys"]))
    if plan["import_secret"]:
        home.import_data(secrets, "the secret keys of %s" % ", ".join(params["keys"]), agent=True)
    anchor = plan["anchor"]
    if plan["lsign"]:
        if not anchor:
            anchor = create_trust_key(home, params.get("trust_key_uid") or DEFAULT_TRUST_UID)
            result["trust_key"] = anchor
        passfile = os.path.join(home.path, "pass")
        # getuto protects its trust key with the passphrase it keeps in <home>/pass.
        passphrase = ["--passphrase-file", passfile] if plan["anchor"] and os.path.isfile(passfile) \
            else ["--passphrase", ""]
        for fpr in plan["lsign"]:
            home.run(["--yes", "--pinentry-mode", "loopback"] + passphrase
                     + ["--local-user", anchor, "--quick-lsign-key", fpr], agent=True)
        home.run(["--check-trustdb"])
    fix_modes(home.path, mode, check=False)
    after = home.public_keys()
    for fpr in result["fingerprints"]:
        if fpr not in after:
            raise InfraError("key 0x%s is not in %s after importing it" % (fpr, home.path))
        if fpr in plan["import_secret"] and not after[fpr].secret:
            raise InfraError("the secret key of 0x%s is not in %s after importing it" % (fpr, home.path))
        if fpr in plan["lsign"] and after[fpr].validity not in TRUSTED:
            raise InfraError("key 0x%s is still %s in %s after signing it with the local trust key 0x%s; "
                             "Portage would refuse its signatures" % (
                                 fpr, VALIDITY_NAMES.get(after[fpr].validity, after[fpr].validity), home.path, anchor))
    return after


def create_trust_key(home, uid):
    """A new certification-only key without passphrase, ultimately trusted: the keyring's anchor."""
    _rc, out, _err = home.run(["--yes", "--status-fd", "1", "--pinentry-mode", "loopback", "--passphrase", "",
                               "--quick-gen-key", uid, "ed25519", "cert", "never"], agent=True)
    created = [line.split()[3] for line in out.splitlines()
               if line.startswith("[GNUPG:] KEY_CREATED ") and len(line.split()) > 3]
    if not created:
        raise InfraError("creating the local trust key in %s failed: gpg reported no new key" % home.path)
    fpr = created[0].upper()
    # gpg makes a key it creates ultimately trusted; say so explicitly should that ever change.
    if home.public_keys().get(fpr, Key(fpr, "-")).validity != "u":
        home.run(["--import-ownertrust"], data=("%s:6:\n" % fpr).encode("ascii"))
    return fpr
