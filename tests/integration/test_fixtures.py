"""The test fixtures are themselves tested: every later test trusts that a mirror built by
snapmirror looks like distfiles.gentoo.org, that HttpMirror fails the way it is told to, and
that real emerge-webrsync accepts the mirror and yields exactly the tarball's tree."""
import email.utils
import http.client
import lzma
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from datetime import datetime, timezone
from pathlib import Path

import pytest

from snapmirror import (
    build_mirror,
    generate_tree,
    make_signing_key,
    mutate_tree,
    small_tree,
    snapshot_timestamp,
    tar_member,
    tree_of_directory,
    tree_timestamp,
    write_snapshot,
)
from webrsync import WebrsyncError, prepare_webrsync, run_emerge_webrsync

DAY1, DAY2 = "20250106", "20250107"


def gpg_verify(pubkey: Path, path: Path) -> subprocess.CompletedProcess:
    """``gpg --verify`` of ``path`` + ``.gpgsig`` in a fresh keyring holding only ``pubkey``."""
    home = tempfile.mkdtemp(prefix="gpg", dir="/tmp")
    try:
        base = ["gpg", "--homedir", home, "--batch", "--no-tty"]
        subprocess.run(base + ["--import", str(pubkey)], check=True, capture_output=True)
        return subprocess.run(
            base + ["--status-fd", "1", "--verify", f"{path}.gpgsig", str(path)],
            capture_output=True, text=True, check=False,
        )
    finally:
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "gpg-agent"], check=False)
        shutil.rmtree(home, ignore_errors=True)


def processes_mentioning(text: str) -> list[int]:
    """PIDs of live processes whose command line contains ``text`` (zombies have none)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text.encode() in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# --------------------------------------------------------------------------- keys


def test_signing_key_is_ed25519_with_the_gentoo_uid(signing_key):
    """emerge-webrsync finds the release key by the UID suffix <infrastructure@gentoo.org>."""
    out = subprocess.run(
        ["gpg", "--with-colons", "--show-keys", str(signing_key.pubkey_path)],
        capture_output=True, text=True, check=True,
    ).stdout
    pub = next(line for line in out.splitlines() if line.startswith("pub:")).split(":")
    assert pub[3] == "22"  # EdDSA
    assert f"fpr:::::::::{signing_key.fingerprint}:" in out
    assert len(signing_key.fingerprint) == 40
    assert signing_key.uid.endswith("<infrastructure@gentoo.org>")
    assert len(str(signing_key.gnupghome)) < 40


def test_close_stops_the_keys_gpg_agent(tmp_path):
    """Signing starts a gpg-agent for the keyring; close() must not leave it running."""
    key = make_signing_key()
    (tmp_path / "f").write_text("x")
    key.sign(tmp_path / "f")
    assert processes_mentioning(str(key.gnupghome))
    key.close()
    assert wait_until(lambda: not processes_mentioning(str(key.gnupghome)))
    assert not key.gnupghome.exists()


# --------------------------------------------------------------------------- snapshots


def test_snapshot_has_one_top_folder_holding_the_tree(tmp_path, signing_key):
    """Real snapshots: one top folder gentoo-YYYYMMDD/, directory members before contents."""
    snap = write_snapshot(tmp_path, DAY1, small_tree(0), signing_key)
    assert snap.tarball == tmp_path / "snapshots" / f"gentoo-{DAY1}.tar.xz"
    with tarfile.open(snap.tarball, "r:xz") as tar:
        members = tar.getmembers()
        content = {
            m.name.split("/", 1)[1]: (tar.extractfile(m).read(), m.mode)
            for m in members if m.isfile()
        }
    names = [m.name for m in members]
    assert names[0] == f"gentoo-{DAY1}" and members[0].isdir()
    assert all(n.split("/")[0] == f"gentoo-{DAY1}" for n in names)
    seen_dirs = set()
    for m in members:
        assert m.name.rsplit("/", 1)[0] in seen_dirs | {m.name}
        if m.isdir():
            seen_dirs.add(m.name)
    assert content == snap.tree
    assert snap.tree["scripts/bootstrap.sh"][1] == 0o755
    header = snap.tarball.read_bytes()[:12]
    assert header[:6] == b"\xfd7zXZ\x00" and header[7] == lzma.CHECK_CRC64


def test_md5sum_files_name_their_tarballs(tmp_path, signing_key):
    """The .md5sum holds "<md5>  <file name>", for the dated and the latest tarball alike."""
    snap = write_snapshot(tmp_path, DAY1, small_tree(0), signing_key)
    md5 = subprocess.run(["md5sum", str(snap.tarball)], capture_output=True, text=True,
                         check=True).stdout.split()[0]
    assert snap.md5 == md5
    assert snap.md5sum.read_text() == f"{md5}  gentoo-{DAY1}.tar.xz\n"
    latest = tmp_path / "snapshots" / "gentoo-latest.tar.xz"
    assert latest.read_bytes() == snap.tarball.read_bytes()
    assert Path(f"{latest}.md5sum").read_text() == f"{md5}  gentoo-latest.tar.xz\n"


def test_signature_verifies_with_the_signing_key_only(tmp_path, signing_key, other_key):
    """gpg accepts the detached signature with the signer's public key, not with another's."""
    snap = write_snapshot(tmp_path, DAY1, small_tree(0), signing_key)
    assert snap.gpgsig.read_text().startswith("-----BEGIN PGP SIGNATURE-----")
    good = gpg_verify(signing_key.pubkey_path, snap.tarball)
    assert good.returncode == 0
    assert f"[GNUPG:] VALIDSIG {signing_key.fingerprint} " in good.stdout
    assert gpg_verify(signing_key.pubkey_path, tmp_path / "snapshots/gentoo-latest.tar.xz").returncode == 0
    assert gpg_verify(other_key.pubkey_path, snap.tarball).returncode != 0

    forged = write_snapshot(tmp_path / "forged", DAY1, small_tree(0), other_key)
    assert gpg_verify(signing_key.pubkey_path, forged.tarball).returncode != 0


def test_unsigned_snapshot_has_no_signature_files(tmp_path, signing_key):
    """key=None publishes no .gpgsig, and drops a stale gentoo-latest one."""
    write_snapshot(tmp_path, DAY1, small_tree(0), signing_key)
    snap = write_snapshot(tmp_path, DAY2, small_tree(1), None)
    assert snap.gpgsig is None
    assert sorted(p.name for p in (tmp_path / "snapshots").glob("*.gpgsig")) == [f"gentoo-{DAY1}.tar.xz.gpgsig"]


def test_timestamp_of_day_d_is_0045_utc_on_d_plus_1(tmp_path):
    """The module derives the tag from timestamp.x - 86400 s in UTC: that must give day D back."""
    assert snapshot_timestamp(DAY1) == int(datetime(2025, 1, 7, 0, 45, tzinfo=timezone.utc).timestamp())
    snap = write_snapshot(tmp_path, DAY1, small_tree(5), None)
    unix, text = snap.tree["metadata/timestamp.x"][0].decode().rstrip("\n").split(" ", 1)
    assert int(unix) == snap.timestamp == snapshot_timestamp(DAY1)
    assert datetime.fromtimestamp(int(unix) - 86400, timezone.utc).strftime("%Y%m%d") == DAY1
    assert datetime.strptime(text, "%a %b %d %H:%M:%S UTC %Y").replace(tzinfo=timezone.utc).timestamp() == int(unix)
    chk = snap.tree["metadata/timestamp.chk"][0].decode().strip()
    assert email.utils.parsedate_to_datetime(chk).timestamp() == int(unix)
    commit, commit_time, zone = snap.tree["metadata/timestamp.commit"][0].decode().split()
    assert len(commit) == 40 and int(commit_time) == int(unix) and zone == "+0000"

    other = write_snapshot(tmp_path, DAY2, small_tree(1), None, timestamp=1_700_000_000, latest=False)
    assert tree_timestamp(other.tree) == other.timestamp == 1_700_000_000
    with tarfile.open(other.tarball) as tar:
        stamp = tar.extractfile(f"gentoo-{DAY2}/metadata/timestamp.x").read()
    assert stamp.startswith(b"1700000000 ")


def test_small_tree_changes_a_few_files_per_day():
    """Daily imports need modified, added and deleted files (whole directories too)."""
    day0, day1 = small_tree(0), small_tree(1)
    assert small_tree(1) == day1
    added, deleted = set(day1) - set(day0), set(day0) - set(day1)
    modified = {p for p in set(day0) & set(day1) if day0[p] != day1[p]}
    assert any(p.startswith("app-misc/oddday/") for p in added)
    assert any(p.endswith(".ebuild") for p in deleted)
    assert "dev-libs/libfoo/libfoo-1.4.2.ebuild" in modified
    assert not any(p.startswith("app-misc/oddday/") for p in small_tree(2))
    assert day0["profiles/repo_name"] == (b"gentoo\n", 0o644)
    assert b"masters =" in day0["metadata/layout.conf"][0]
    assert any(" " in p for p in day0)
    assert any(content.decode() != content.decode().encode("ascii", "ignore").decode()
               for content, _ in day0.values())
    assert {p.split("/")[0] for p in day0 if p.endswith(".ebuild")} == set(
        day0["profiles/categories"][0].decode().split())
    for path, (content, _) in day0.items():
        if path.endswith(".ebuild"):
            assert b"\nEAPI=8\n" in content
            cat, pn, name = path.split("/")
            assert f"metadata/md5-cache/{cat}/{name[:-7]}" in day0


def test_hostile_members_are_written_signed_and_summed(tmp_path, signing_key):
    """Tests of the importer's defences need tarballs that are authentic yet malicious."""
    top = f"gentoo-{DAY1}"
    members = [
        tar_member(f"{top}/../escape", b"out"),
        tar_member("/etc/evil", b"abs"),
        tar_member(f"{top}/dev-null", None, kind=tarfile.CHRTYPE),
        tar_member(f"{top}/hardlink", None, kind=tarfile.LNKTYPE, linkname="/etc/shadow"),
        tar_member(f"{top}/symlink", None, kind=tarfile.SYMTYPE, linkname="../../outside"),
    ]
    snap = write_snapshot(tmp_path, DAY1, small_tree(0), signing_key, members=members)
    with tarfile.open(snap.tarball) as tar:
        by_name = {m.name: m for m in tar.getmembers()}
    assert by_name[f"{top}/../escape"].size == 3
    assert "/etc/evil" in by_name
    assert by_name[f"{top}/dev-null"].ischr()
    assert by_name[f"{top}/hardlink"].linkname == "/etc/shadow"
    assert by_name[f"{top}/symlink"].issym()
    assert f"{top}/metadata/timestamp.x" in by_name
    assert gpg_verify(signing_key.pubkey_path, snap.tarball).returncode == 0

    bare = write_snapshot(tmp_path, DAY2, None, signing_key, members=members[:1])
    with tarfile.open(bare.tarball) as tar:
        assert tar.getnames() == [f"{top}/../escape"]
    assert bare.tree == {}


def test_build_mirror_publishes_consecutive_days(tmp_path, signing_key):
    snaps = build_mirror(tmp_path, signing_key, [DAY1, DAY2])
    assert list(snaps) == [DAY1, DAY2]
    assert snaps[DAY2].tree != snaps[DAY1].tree
    latest = tmp_path / "snapshots" / "gentoo-latest.tar.xz"
    assert latest.read_bytes() == snaps[DAY2].tarball.read_bytes()


def test_tree_of_directory_normalises_modes_like_git(tmp_path):
    """Comparisons with git checkouts: 0o644/0o755 only, .git and empty directories ignored."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a/x").write_bytes(b"x")
    (tmp_path / "a/x").chmod(0o600)
    (tmp_path / "run").write_bytes(b"#!/bin/sh\n")
    (tmp_path / "run").chmod(0o750)
    (tmp_path / "link").symlink_to("a/x")
    (tmp_path / "dirlink").symlink_to("a")
    (tmp_path / "empty").mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git/HEAD").write_text("ref: refs/heads/master\n")
    assert tree_of_directory(tmp_path) == {
        "a/x": (b"x", 0o644),
        "dirlink": (b"a", 0o120000),
        "link": (b"a/x", 0o120000),
        "run": (b"#!/bin/sh\n", 0o755),
    }


# --------------------------------------------------------------------------- large trees


def test_generate_tree_has_the_shape_of_gentoo():
    """Benchmarks need ::gentoo's scale and file mix, with realistically compressible text."""
    tree = generate_tree(150_000, 170, seed=0)
    assert len(tree) == 150_000
    categories = tree["profiles/categories"][0].decode().split()
    assert len(categories) == 170
    ebuilds = {p: c for p, (c, _) in tree.items() if p.endswith(".ebuild")}
    sizes = sorted(len(c) for c in ebuilds.values())
    assert 30_000 < len(ebuilds) < 70_000
    assert 500 <= sizes[len(sizes) // 2] <= 3000 and sizes[-1] < 4000
    assert {p.split("/")[0] for p in ebuilds} <= set(categories)
    manifests = [p for p in tree if p.endswith("/Manifest")]
    assert len(manifests) == len([p for p in tree if p.endswith("/metadata.xml")]) > 10_000
    cache = [p for p in tree if p.startswith("metadata/md5-cache/")]
    assert abs(len(cache) - len(ebuilds)) <= 2
    assert all(mode == 0o644 for p, (_, mode) in tree.items() if p != "scripts/bootstrap.sh")
    sample = b"".join(c for c, _ in list(tree.values())[::50])
    assert 3 < len(sample) / len(zlib.compress(sample)) < 20
    assert generate_tree(2000, 20, seed=3) == generate_tree(2000, 20, seed=3)
    assert generate_tree(2000, 20, seed=3) != generate_tree(2000, 20, seed=4)


def test_mutate_tree_changes_about_the_fraction_asked():
    tree = generate_tree(20_000, 40, seed=1)
    before = dict(tree)
    new = mutate_tree(tree, fraction=0.01, seed=2)
    assert tree == before
    added, deleted = set(new) - set(tree), set(tree) - set(new)
    modified = {p for p in set(tree) & set(new) if tree[p] != new[p]}
    assert added and deleted and all(p.endswith(".ebuild") or "/md5-cache/" in p for p in added | deleted)
    assert 150 <= len(added) + len(deleted) + len(modified) <= 250
    assert tree_timestamp(new) == tree_timestamp(tree) + 86400
    assert mutate_tree(tree, 0.01, seed=2) == new


# --------------------------------------------------------------------------- HTTP mirror


def test_http_mirror_serves_files_and_logs_requests(tmp_path, http_mirror):
    (tmp_path / "snapshots").mkdir()
    (tmp_path / "snapshots/a.md5sum").write_text("abc  a\n")
    mirror = http_mirror(tmp_path)
    assert mirror.url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(f"{mirror.url}/snapshots/a.md5sum", timeout=5) as resp:
        assert resp.read() == b"abc  a\n"
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{mirror.url}/snapshots/missing", timeout=5)
    assert err.value.code == 404
    urllib.request.urlopen(urllib.request.Request(f"{mirror.url}/snapshots/a.md5sum?x=1", method="HEAD"), timeout=5)
    assert mirror.requests == ["/snapshots/a.md5sum", "/snapshots/missing", "/snapshots/a.md5sum"]
    assert mirror.count("/snapshots/a.md5sum") == 1
    assert mirror.count("/snapshots/a.md5sum", "HEAD") == 1


@pytest.mark.parametrize("code", [404, 500])
def test_http_mirror_fault_status(tmp_path, http_mirror, code):
    (tmp_path / "f").write_bytes(b"data")
    mirror = http_mirror(tmp_path)
    mirror.faults["/f"] = code
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{mirror.url}/f", timeout=5)
    assert err.value.code == code


def test_http_mirror_hang_times_out_the_client_and_still_stops(tmp_path, http_mirror):
    (tmp_path / "f").write_bytes(b"data")
    mirror = http_mirror(tmp_path)
    mirror.faults["/f"] = "hang"
    start = time.monotonic()
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
        urllib.request.urlopen(f"{mirror.url}/f", timeout=0.5)
    assert time.monotonic() - start < 5
    assert mirror.requests == ["/f"]
    start = time.monotonic()
    mirror.stop()
    assert time.monotonic() - start < 5
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(mirror.url.rsplit(":", 1)[1])), timeout=1)


def test_http_mirror_truncate_sends_half_the_announced_body(tmp_path, http_mirror):
    (tmp_path / "f").write_bytes(bytes(range(256)) * 64)
    mirror = http_mirror(tmp_path)
    mirror.faults["/f"] = "truncate"
    with urllib.request.urlopen(f"{mirror.url}/f", timeout=5) as resp:
        assert resp.headers["Content-Length"] == str(256 * 64)
        with pytest.raises(http.client.IncompleteRead) as err:
            resp.read()
    assert len(err.value.partial) == 256 * 32


# --------------------------------------------------------------------------- emerge-webrsync


def test_emerge_webrsync_imports_each_day_exactly(tmp_path, signing_key, http_mirror):
    """The reference: real emerge-webrsync, OpenPGP check on, yields the tarball's tree with
    nothing added (it rsyncs with --delete, so day 2 also removes day 1's stale files)."""
    snaps = build_mirror(tmp_path / "mirror", signing_key, [DAY1, DAY2])
    mirror = http_mirror(tmp_path / "mirror")
    repo = tmp_path / "repo"
    with prepare_webrsync(mirror.url, signing_key, repo, tmp_path / "work") as webrsync:
        webrsync.run(DAY1)
        assert tree_of_directory(repo) == snaps[DAY1].tree
        assert mirror.count(f"/snapshots/gentoo-{DAY1}.tar.xz.gpgsig") == 1
        webrsync.run(DAY2)
        assert tree_of_directory(repo) == snaps[DAY2].tree
        assert mirror.count(f"/snapshots/gentoo-{DAY2}.tar.xz") == 1
        assert not processes_mentioning(str(webrsync.tmpdir))
    assert not webrsync.tmpdir.exists()


def test_run_emerge_webrsync_refuses_a_snapshot_signed_by_another_key(tmp_path, signing_key,
                                                                      other_key, http_mirror):
    build_mirror(tmp_path / "mirror", other_key, [DAY1])
    mirror = http_mirror(tmp_path / "mirror")
    with pytest.raises(WebrsyncError, match="signature verification failed"):
        run_emerge_webrsync(mirror.url, DAY1, signing_key, tmp_path / "repo", tmp_path / "work")
    assert tree_of_directory(tmp_path / "repo") == {}

