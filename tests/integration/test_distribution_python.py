"""The import under the distribution's own Python and python-gnupg (Debian 12: 0.4.9).

Managed hosts and the mirror's timer CLI run the logic with /usr/bin/python3 and the OS's
python3-gnupg, not with this project's virtualenv: it must verify, refuse and import there too.
"""
import json
import subprocess
from pathlib import Path

import pytest
from snapmirror import build_mirror, day_date

SYSTEM_PYTHON = "/usr/bin/python3"
COLLECTIONS = str(Path(__file__).resolve().parents[2] / ".collections")
SCRIPT = """
import json, sys
sys.path.insert(0, %r)
import gnupg
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._snapshot import SnapshotError, import_snapshot
try:
    result = import_snapshot(json.loads(sys.argv[1]))
except SnapshotError as exc:
    result = {"error": str(exc)}
result["gnupg"] = gnupg.__version__
print(json.dumps(result))
""" % COLLECTIONS

DAYS = [day_date(i) for i in range(2)]


def _run(args):
    out = subprocess.run([SYSTEM_PYTHON, "-c", SCRIPT, json.dumps(args)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_import_and_refusals_with_the_distribution_python_gnupg(tmp_path, signing_key, other_key, http_mirror):
    has_gnupg = subprocess.run([SYSTEM_PYTHON, "-c", "import gnupg"], capture_output=True).returncode == 0
    if not has_gnupg:
        pytest.fail("%s lacks python-gnupg: run `make deps` (Debian package python3-gnupg)" % SYSTEM_PYTHON)
    snaps = build_mirror(tmp_path / "upstream", signing_key, DAYS)
    server = http_mirror(tmp_path / "upstream")
    args = {"repo": str(tmp_path / "g.git"), "mirrors": [server.url], "key": str(signing_key.pubkey_path),
            "fingerprint": signing_key.fingerprint, "date": DAYS[0], "timeout": 5}
    first = _run(args)
    assert first.get("changed") is True, first
    assert first["signed_by"] == signing_key.fingerprint
    # Day 1 re-signed by an impostor: refused, named, and the tip stays where it was.
    other_key.sign(snaps[DAYS[1]].tarball, signature=snaps[DAYS[1]].gpgsig)
    refused = _run(dict(args, date=DAYS[1]))
    assert "gentoo-%s.tar.xz" % DAYS[1] in refused["error"] and "not in" in refused["error"], refused
    # A corrupted signature: refused as bad.
    snaps[DAYS[1]].gpgsig.write_bytes(snaps[DAYS[1]].gpgsig.read_bytes().replace(b"\n=", b"\nX="))
    refused = _run(dict(args, date=DAYS[1]))
    assert "error" in refused, refused
    again = _run(args)
    assert again["changed"] is False and again["commit"] == first["commit"]
    print("python-gnupg", first["gnupg"])
