"""The portage_gpg_keyring module through the ansible CLI: four passes with diff, and refusals."""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from ansible_run import run_module, tree_snapshot as tree

MODULE = "gentoo_binhost.infra.portage_gpg_keyring"


@pytest.fixture
def base():
    """A short directory under /tmp (gpg-agent's sockets go into the homes below it)."""
    path = Path(tempfile.mkdtemp(prefix="gkm-", dir="/tmp"))
    yield path
    for home in path.iterdir():
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False)
    shutil.rmtree(path, ignore_errors=True)


def test_four_passes_with_diff_of_the_key_set(base, signing_key):
    home = base / "gnupg"
    args = {"home": str(home), "keys": [str(signing_key.pubkey_path)], "mode": "0755"}
    check = run_module(MODULE, args, check=True, diff=True)
    assert check["_rc"] == 0 and check["changed"] is True, check
    assert not home.exists(), "check mode created the home"
    assert re.search(r"^\+0x%s \[full\] " % signing_key.fingerprint, check["_stdout"], re.M), check["_stdout"]
    assert "+0x(new local trust key) [ultimate, secret]" in check["_stdout"], check["_stdout"]

    apply = run_module(MODULE, args, diff=True)
    assert apply["_rc"] == 0 and apply["changed"] is True, apply
    assert apply["imported"] == apply["lsigned"] == [signing_key.fingerprint]
    assert apply["trust_key_created"] is True and re.match(r"^[0-9A-F]{40}$", apply["trust_key"])
    assert "+0x%s [ultimate, secret] Portage Local Trust Key" % apply["trust_key"] in apply["_stdout"]
    listing = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--with-colons", "--list-keys",
                              signing_key.fingerprint], capture_output=True, text=True, check=True).stdout
    assert listing.split("\npub:", 1)[1].startswith("f:"), listing

    before = tree(home)
    again = run_module(MODULE, args, diff=True)
    assert again["_rc"] == 0 and again["changed"] is False, again
    assert again["imported"] == again["lsigned"] == [] and again["trust_key"] == apply["trust_key"]
    recheck = run_module(MODULE, args, check=True, diff=True)
    assert recheck["_rc"] == 0 and recheck["changed"] is False, recheck
    assert tree(home) == before


def test_refuses_a_pin_that_is_not_in_the_key_file(base, signing_key, other_key):
    home = base / "gnupg"
    args = {"home": str(home), "keys": [str(signing_key.pubkey_path)], "mode": "0755"}
    assert run_module(MODULE, args)["changed"] is True
    before = tree(base)
    for check in (True, False):
        result = run_module(MODULE, dict(args, fingerprints=[other_key.fingerprint]), check=check)
        assert result["_rc"] != 0 and result["failed"] is True, result
        assert result["msg"] == ("fingerprint 0x%s matches none of the keys in %s (0x%s): check the pin and "
                                 "the key file" % (other_key.fingerprint, signing_key.pubkey_path,
                                                   signing_key.fingerprint)), result["msg"]
        assert tree(base) == before


def test_refuses_a_file_without_keys(base):
    (base / "not-a-key.asc").write_text("hello\n")
    result = run_module(MODULE, {"home": str(base / "gnupg"), "keys": [str(base / "not-a-key.asc")]})
    assert result["_rc"] != 0 and "not-a-key.asc holds no OpenPGP public key" in result["msg"], result
    assert sorted(p.name for p in base.iterdir()) == ["not-a-key.asc"]
