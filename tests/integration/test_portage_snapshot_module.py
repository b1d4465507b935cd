"""The portage_snapshot module through the real ansible CLI: the four passes, diff, errors."""
from pathlib import Path

import pytest
from ansible_run import ROOT, run_module
from snapmirror import build_mirror, day_date

MODULE = "gentoo_binhost.infra.portage_snapshot"
DAYS = [day_date(i) for i in range(2)]


@pytest.fixture
def served(tmp_path, signing_key, http_mirror):
    snaps = build_mirror(tmp_path / "upstream", signing_key, DAYS)
    server = http_mirror(tmp_path / "upstream")
    args = {
        "repo": str(tmp_path / "gentoo.git"),
        "mirrors": [server.url],
        "key": str(signing_key.pubkey_path),
        "fingerprint": signing_key.fingerprint,
        "date": DAYS[0],
    }
    return server, snaps, args


def test_four_passes(tmp_path, served):
    _server, _snaps, args = served
    check = run_module(MODULE, args, check=True)
    assert check["_rc"] == 0 and check["changed"] is True, check
    assert not Path(args["repo"]).exists(), "check mode wrote the repository"
    apply = run_module(MODULE, args)
    assert apply["_rc"] == 0 and apply["changed"] is True, apply
    assert apply["tag"] == check["tag"] == "%s-%s-%s" % (DAYS[0][:4], DAYS[0][4:6], DAYS[0][6:])
    again = run_module(MODULE, args)
    assert again["changed"] is False and again["commit"] == apply["commit"], again
    recheck = run_module(MODULE, args, check=True)
    assert recheck["changed"] is False and recheck["commit"] == apply["commit"], recheck


def test_diff_mode_shows_the_paths(tmp_path, served):
    _server, snaps, args = served
    run_module(MODULE, args)
    result = run_module(MODULE, dict(args, date=DAYS[1]), check=True, diff=True)
    shown = result["_stdout"]
    old, new = snaps[DAYS[0]].tree, snaps[DAYS[1]].tree
    changed = sorted(p for p in new if old.get(p) != new[p])
    assert changed and all(("+ %s" % p) in shown for p in changed)
    assert all(("- %s" % p) in shown for p in old if p not in new)
    assert "master: %s" % result["previous_commit"] in shown


def test_errors_are_messages_not_tracebacks(tmp_path, served):
    server, _snaps, args = served
    server.faults["/snapshots/gentoo-%s.tar.xz.gpgsig" % DAYS[0]] = 404
    result = run_module(MODULE, args)
    assert result["_rc"] != 0 and result.get("failed") is True
    assert "gentoo-%s.tar.xz" % DAYS[0] in result["msg"] and "HTTP 404" in result["msg"]
    assert "exception" not in result
    assert not Path(args["repo"]).exists()


def test_argument_spec_constraints(tmp_path, served):
    _server, _snaps, args = served
    both = run_module(MODULE, dict(args, src="/tmp/x.tar.xz"))
    assert both.get("failed") and "mutually exclusive" in both["msg"]
    push = run_module(MODULE, dict(args, push=True))
    assert push.get("failed") and "remote" in push["msg"]
    assert not Path(args["repo"]).exists()


def test_documentation_renders():
    import subprocess
    import sys

    out = subprocess.run([str(Path(sys.executable).parent / "ansible-doc"), MODULE], cwd=ROOT,
                         capture_output=True, text=True, env={"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
                                                              "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    for word in ("fingerprint", "allow_older", "tag_format", "EXAMPLES", "RETURN"):
        assert word in out.stdout
