"""stage_unpack driven through the ansible CLI: check, apply, apply again, check again.

The logic's own cases (refusals, compressions, pins) are unit tests in
tests/unit/plugins/module_utils/test_stage.py; these runs prove the module around it: its
argument spec, check mode and the failures Ansible reports.
"""
import hashlib

import pytest
from ansible_run import run_module
from stage_tarball import STAGE4, params, parent_listing, write_stage


MODULE = "gentoo_binhost.infra.stage_unpack"


def four_passes(tmp_path, args):
    """Check (nothing written), apply, apply again and check again: changed only the first two times."""
    check = run_module(MODULE, args, check=True)
    assert check["_rc"] == 0 and check["changed"] is True and parent_listing(tmp_path) == [], check
    apply = run_module(MODULE, args)
    assert apply["_rc"] == 0 and apply["changed"] is True, apply
    again = run_module(MODULE, args)
    assert again["changed"] is False, again
    recheck = run_module(MODULE, args, check=True)
    assert recheck["changed"] is False, recheck


@pytest.fixture
def stage(tmp_path, signing_key):
    return write_stage(tmp_path / "releases", signing_key)


@pytest.mark.ansible_cli
def test_four_passes_through_ansible(tmp_path, signing_key, stage):
    args = params(tmp_path, signing_key, stage, remove_binrepos_conf=True)
    four_passes(tmp_path, args)
    failed = run_module(MODULE, dict(args, dest="/"))
    assert failed["failed"] and "onto /" in failed["msg"]


@pytest.mark.ansible_cli
def test_pinned_stage_four_passes_through_ansible(tmp_path, signing_key):
    tarball = write_stage(tmp_path / "releases", signing_key, name=STAGE4, compression="bzip2",
                          digests=None, signed=False)
    args = params(tmp_path, signing_key, tarball, sha512=hashlib.sha512(tarball.read_bytes()).hexdigest())
    four_passes(tmp_path, args)
    both = run_module(MODULE, dict(args, digests=str(tarball) + ".DIGESTS"))
    assert both["failed"] and "mutually exclusive" in both["msg"], both


@pytest.mark.ansible_cli
def test_out_of_range_timeout_fails_before_anything_is_read(tmp_path, signing_key, stage):
    failed = run_module(MODULE, params(tmp_path, signing_key, stage, timeout=0))
    assert failed["failed"] and failed["msg"] == (
        "timeout 0 is out of range: give the seconds to wait for a server's answer, a whole number from 1 to 86400")
    assert parent_listing(tmp_path) == []
