"""GnuPG homes for Portage (``_gpg_keyring``): real gpg in throwaway homes.

Four passes (check, apply, apply, check) for a verification keyring and a signing keyring;
the proof that a key is trusted the way Portage needs is ``gpg --verify`` printing
``TRUST_FULLY``. Refused input leaves the home byte for byte as it was.
"""
import os
import re
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
from ansible_run import tree_snapshot as tree
from snapmirror import make_signing_key

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._gpg_keyring import (
    GnupgHome,
    ensure_keyring,
    import_changes,
    parse_colons,
)

LISTING = """tru::1:1796177237:0:3:1:5
pub:f:255:22:90752372E8B711A2:1796177237:::-:::scSC:::::ed25519:::0:
fpr:::::::::F5FA9C5E3DFCA6B84812BA5F90752372E8B711A2:
grp:::::::::5E71B466162515FDE3E4D23B93332AADDB8AB759:
uid:f::::1796177237::5430BC1D4C781F62F148E5CA864F25F47413089E::Binhost \\x3a test <b@example.org>::::::::::0:
sub:f:255:18:0D7B2C0A9E8F1B22:1796177237::::::e:::::cv25519::
fpr:::::::::AAAA2222BBBB3333CCCC4444DDDD55550D7B2C0A9E8F1B22:
grp:::::::::1111111111111111111111111111111111111111:
sec:u:255:22:1234567890ABCDEF:1796177237:::u:::cC:::#::ed25519:::0:
fpr:::::::::99990000111122223333444455556666123456789ABCDEF:
uid:u::::1796177237::AB::Local <l@x>::::::::::0:
"""


def test_parse_colons_reads_keys_subkeys_grips_and_uids():
    keys = parse_colons(LISTING)
    assert sorted(keys) == ["99990000111122223333444455556666123456789ABCDEF",
                            "F5FA9C5E3DFCA6B84812BA5F90752372E8B711A2"]
    key = keys["F5FA9C5E3DFCA6B84812BA5F90752372E8B711A2"]
    assert (key.kind, key.validity, key.uids) == ("pub", "f", ["Binhost : test <b@example.org>"])
    assert key.subkeys == ["AAAA2222BBBB3333CCCC4444DDDD55550D7B2C0A9E8F1B22"]
    assert key.grips == ["5E71B466162515FDE3E4D23B93332AADDB8AB759", "1111111111111111111111111111111111111111"]
    assert keys["99990000111122223333444455556666123456789ABCDEF"].kind == "sec"


def test_import_changes_counts_what_an_import_adds():
    assert import_changes("[GNUPG:] IMPORT_RES 1 0 0 0 1 0 0 0 0 0 0 0 0 0 0") == 0  # unchanged
    assert import_changes("[GNUPG:] IMPORT_RES 1 0 1 0 0 0 0 0 0 0 0 0 0 0 0") == 1  # a new key
    assert import_changes("[GNUPG:] IMPORT_RES 1 0 0 0 0 1 1 2 0 0 0 0 0 0 0") == 4  # uid, subkey, 2 sigs
    assert import_changes("") == 0


@pytest.fixture
def base():
    """A short directory under /tmp: gpg-agent's sockets go into the homes below it, and socket
    paths are limited to ~108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="gk-", dir="/tmp"))
    yield path
    for home in path.iterdir():
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False)
    shutil.rmtree(path, ignore_errors=True)


def gpg(home, *args, check=True, input=None):
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", "--no-tty", *args], capture_output=True,
                          check=check, text=True, input=input)


def validity(home, fpr):
    listing = gpg(home, "--with-colons", "--list-keys", fpr).stdout
    return re.search(r"^pub:([^:]*):", listing, re.M).group(1)


def verify_status(home, key, tmp):
    """gpg's status of a signature by ``key`` checked in ``home`` the way Portage checks one."""
    data = tmp / "data"
    data.write_bytes(b"a package\n")
    sig = key.sign(data, tmp / "data.asc")
    return gpg(home, "--no-auto-check-trustdb", "--status-fd", "1", "--verify", str(sig), str(data),
               check=False).stdout


def secret_export(key, path):
    path.write_bytes(subprocess.run(["gpg", "--homedir", str(key.gnupghome), "--batch", "--armor",
                                     "--export-secret-keys", key.fingerprint],
                                    capture_output=True, check=True).stdout)
    return path


def four_passes(params):
    results = [ensure_keyring(dict(params), check_mode=check) for check in (True, False, False, True)]
    assert [r["changed"] for r in results] == [True, True, False, False], results
    return results


def test_verification_keyring_four_passes_trusts_the_key_as_portage_needs(base, signing_key):
    home = base / "gnupg"
    params = {"home": str(home), "keys": [str(signing_key.pubkey_path)], "mode": "0755"}
    check = ensure_keyring(dict(params), check_mode=True)
    assert check["changed"] and not home.exists()
    assert check["imported"] == check["lsigned"] == [signing_key.fingerprint]
    assert check["trust_key_created"] is True
    assert check["diff"]["before"] == ""
    assert check["diff"]["after"].startswith("0x%s [full] " % signing_key.fingerprint)
    assert "(new local trust key) [ultimate, secret]" in check["diff"]["after"]

    apply, again, recheck = [ensure_keyring(dict(params), check_mode=c) for c in (False, False, True)]
    assert apply["changed"] and not again["changed"] and not recheck["changed"], (apply, again, recheck)
    assert again["imported"] == again["lsigned"] == [] and again["trust_key"] == apply["trust_key"]
    assert validity(home, signing_key.fingerprint) == "f"  # fully valid, not ultimately trusted
    assert validity(home, apply["trust_key"]) == "u"
    assert apply["diff"]["after"] == again["diff"]["after"] == again["diff"]["before"]
    assert stat.S_IMODE(home.stat().st_mode) == 0o755
    assert stat.S_IMODE((home / "trustdb.gpg").stat().st_mode) & 0o044 == 0o044
    assert stat.S_IMODE((home / "pubring.kbx").stat().st_mode) & 0o044 == 0o044
    assert GnupgHome(str(home)).agent_pid() is None, "an agent the module started is still running"
    assert not [p for p in os.listdir(home) if p.startswith("S.")]
    status = verify_status(home, signing_key, base)
    assert "[GNUPG:] GOODSIG" in status and "[GNUPG:] TRUST_FULLY" in status, status
    # The last two passes changed nothing on disk, check mode included.
    before = tree(home)
    ensure_keyring(dict(params), check_mode=True)
    ensure_keyring(dict(params))
    assert tree(home) == before


def test_an_imported_only_key_is_of_undefined_trust(base, signing_key):
    """Why the module lsigns: the same key imported alone is refused by Portage's check."""
    home = base / "plain"
    home.mkdir(mode=0o700)
    gpg(home, "--import", str(signing_key.pubkey_path))
    status = verify_status(home, signing_key, base)
    assert "[GNUPG:] GOODSIG" in status and "TRUST_UNDEFINED" in status, status


def test_signing_keyring_imports_the_pinned_secret_key_and_exports_it(base, signing_key, other_key):
    home = base / "signing"
    both = base / "both.asc"
    both.write_bytes(secret_export(signing_key, base / "a.asc").read_bytes()
                     + secret_export(other_key, base / "b.asc").read_bytes())
    params = {"home": str(home), "keys": [str(both)], "fingerprints": ["0x" + signing_key.fingerprint.lower()],
              "secret": True, "trust": "none", "export": str(home / "signing-key.asc")}
    check, apply, again, recheck = four_passes(params)
    assert GnupgHome(str(home)).agent_pid() is None, "an agent the module started is still running"
    assert check["export_exists"] is False and recheck["export_exists"] is True
    assert apply["imported"] == [signing_key.fingerprint] and apply["lsigned"] == [] and apply["trust_key"] is None
    listing = gpg(home, "--with-colons", "--list-secret-keys").stdout
    assert re.findall(r"^fpr:+([0-9A-F]{40}):", listing, re.M) == [signing_key.fingerprint], listing
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    exported = gpg(home, "--with-colons", "--show-keys", str(home / "signing-key.asc")).stdout
    assert re.findall(r"^(pub|sec):", exported, re.M) == ["pub"] and signing_key.fingerprint in exported
    # The key signs there without a passphrase, as Portage's unattended signing does.
    data = base / "data"
    data.write_bytes(b"x\n")
    gpg(home, "--local-user", signing_key.fingerprint, "--armor", "--detach-sign", "--output",
        str(base / "data.sig"), str(data))
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)


def test_new_user_id_of_a_known_key_is_seen_by_check_mode(base):
    with make_signing_key(uid="Binhost <binhost@example.org>") as key:
        home = base / "gnupg"
        params = {"home": str(home), "keys": [str(key.pubkey_path)], "mode": "0755"}
        ensure_keyring(dict(params))
        gpg(key.gnupghome, "--quick-add-uid", key.fingerprint, "Binhost 2 <b2@example.org>")
        key.pubkey_path.write_text(gpg(key.gnupghome, "--armor", "--export", key.fingerprint).stdout)
        check = ensure_keyring(dict(params), check_mode=True)
        assert check["changed"] and check["imported"] == [key.fingerprint] and check["lsigned"] == []
        assert "Binhost 2 <b2@example.org>" not in check["diff"]["before"]
        assert "Binhost 2 <b2@example.org>" in check["diff"]["after"]
        apply = ensure_keyring(dict(params))
        assert apply["changed"] and "Binhost 2 <b2@example.org>" in apply["diff"]["after"]
        assert not ensure_keyring(dict(params))["changed"]
        assert not ensure_keyring(dict(params), check_mode=True)["changed"]


def test_a_revocation_reaches_the_keyring_and_is_reported(base):
    with make_signing_key(uid="Binhost <binhost@example.org>") as key:
        home = base / "gnupg"
        params = {"home": str(home), "keys": [str(key.pubkey_path)], "mode": "0755"}
        assert ensure_keyring(dict(params))["lsigned"] == [key.fingerprint]
        certificate = key.gnupghome / "openpgp-revocs.d" / (key.fingerprint + ".rev")
        gpg(key.gnupghome, "--import", input=certificate.read_text().replace(":-----BEGIN", "-----BEGIN"))
        key.pubkey_path.write_text(gpg(key.gnupghome, "--armor", "--export", key.fingerprint).stdout)
        check = ensure_keyring(dict(params), check_mode=True)
        assert check["changed"] and check["imported"] == [key.fingerprint]
        apply = ensure_keyring(dict(params))
        assert apply["warnings"] == ["key 0x%s is revoked: Portage refuses what it signs" % key.fingerprint]
        assert validity(home, key.fingerprint) == "r" and apply["lsigned"] == []
        assert "0x%s [revoked] " % key.fingerprint in apply["diff"]["after"]
        assert not ensure_keyring(dict(params))["changed"]
        assert not ensure_keyring(dict(params), check_mode=True)["changed"]


def test_getuto_keyring_is_signed_with_its_own_protected_key(base, signing_key):
    home = base / "gnupg"
    home.mkdir(mode=0o755)
    gpg(home, "--pinentry-mode", "loopback", "--passphrase", "s3cret", "--quick-gen-key",
        "Portage Local Trust Key <portage@localhost>", "ed25519", "cert", "never")
    (home / "pass").write_text("s3cret\n")
    anchor = re.findall(r"^fpr:+([0-9A-F]{40}):", gpg(home, "--with-colons", "--list-secret-keys").stdout, re.M)
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)
    result = ensure_keyring({"home": str(home), "keys": [str(signing_key.pubkey_path)], "mode": "0755"})
    assert result["trust_key"] == anchor[0] and result["trust_key_created"] is False
    assert validity(home, signing_key.fingerprint) == "f"
    sigs = gpg(home, "--with-colons", "--check-sigs", signing_key.fingerprint).stdout
    assert re.search(r"^sig:!::22:%s:" % anchor[0][-16:], sigs, re.M), sigs


@pytest.mark.parametrize("case, message", [
    ("missing", "cannot read key file {base}/missing.asc: No such file or directory"),
    ("directory", "cannot read key file {base}: Is a directory"),
    ("no_keys", "{base}/not-a-key.asc holds no OpenPGP public key (gpg: "),
    ("pin", "fingerprint 0x{other} matches none of the keys in {key} (0x{fpr}): check the pin and the key file"),
    ("short_pin", "is not a full OpenPGP fingerprint"),
    ("no_secret", "{key} holds no secret key for 0x{fpr}: give an export made with gpg --export-secret-keys"),
    ("mode", "mode 0775 of a GnuPG home must give its owner rwx and nobody else write access"),
    ("relative", "home 'gnupg' must be an absolute path"),
])
def test_bad_input_is_refused_and_the_home_is_left_alone(base, signing_key, other_key, case, message):
    home = base / "gnupg"
    params = {"home": str(home), "keys": [str(signing_key.pubkey_path)], "mode": "0755"}
    ensure_keyring(dict(params))
    (base / "not-a-key.asc").write_text("hello\n")
    bad = {"missing": {"keys": [str(base / "missing.asc")]}, "directory": {"keys": [str(base)]},
           "no_keys": {"keys": [str(base / "not-a-key.asc")]}, "pin": {"fingerprints": [other_key.fingerprint]},
           "short_pin": {"fingerprints": [signing_key.fingerprint[-16:]]}, "no_secret": {"secret": True},
           "mode": {"mode": "0775"}, "relative": {"home": "gnupg"}}[case]
    before = tree(base)
    for check in (True, False):
        with pytest.raises(InfraError) as failure:
            ensure_keyring(dict(params, **bad), check_mode=check)
        assert message.format(base=base, key=signing_key.pubkey_path, fpr=signing_key.fingerprint,
                              other=other_key.fingerprint) in str(failure.value)
        assert tree(base) == before
