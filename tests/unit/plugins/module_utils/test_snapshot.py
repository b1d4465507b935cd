"""portage_snapshot logic against real gpg keys, real git and a real HTTP mirror on 127.0.0.1."""
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import git
import pytest
from snapmirror import (
    build_mirror,
    day_date,
    small_tree,
    tar_member,
    tree_of_directory,
    write_snapshot,
)
from testkit import COLLECTIONS_PATH

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._gitstore import STAGING_DIR
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._snapshot import SnapshotError, import_snapshot

DAYS = [day_date(i) for i in range(3)]
COLLECTIONS = str(COLLECTIONS_PATH)
IMPORTER = (
    "import sys, json; sys.path.insert(0, %r)\n"
    "from ansible_collections.gentoo_binhost.infra.plugins.module_utils._snapshot import import_snapshot\n"
    "print(json.dumps(import_snapshot(json.loads(sys.argv[1]))['changed']))\n" % COLLECTIONS
)


def iso(date):
    return "%s-%s-%s" % (date[:4], date[4:6], date[6:])


@pytest.fixture
def mirror(tmp_path, signing_key, http_mirror):
    """Three signed consecutive days served over HTTP; returns (server, snapshots, key)."""
    snaps = build_mirror(tmp_path / "upstream", signing_key, DAYS)
    return http_mirror(tmp_path / "upstream"), snaps, signing_key


def params(tmp_path, server, signing, **extra):
    base = {
        "repo": str(tmp_path / "gentoo.git"),
        "mirrors": [server.url],
        "key": str(signing.pubkey_path),
        "fingerprint": signing.fingerprint,
        "timeout": 5,
    }
    base.update(extra)
    return base


def repo_state(path):
    """Everything an import may change: refs and the object store (files and sizes)."""
    repo = Path(path)
    refs = subprocess.run(["git", "--git-dir", str(repo), "for-each-ref"], capture_output=True, check=True).stdout
    objects = sorted(
        (str(p.relative_to(repo)), p.stat().st_size) for p in (repo / "objects").rglob("*") if p.is_file()
    )
    packed = (repo / "packed-refs").read_bytes() if (repo / "packed-refs").exists() else b""
    return refs, objects, packed


def checkout(repo, ref, dest):
    subprocess.run(["git", "clone", "-q", "--branch", ref, str(repo), str(dest)], check=True,
                   stderr=subprocess.DEVNULL)
    return tree_of_directory(dest)


def test_days_are_committed_and_tagged_with_their_date(tmp_path, mirror):
    server, snaps, key = mirror
    for date in DAYS:
        result = import_snapshot(params(tmp_path, server, key, date=date))
        assert result["changed"] is True
        assert result["tag"] == iso(date)
        assert result["date"] == iso(date)
        assert result["md5"] == snaps[date].md5
        assert result["signed_by"] == key.fingerprint
        assert result["timestamp"] == snaps[date].timestamp
    repo = git.Repo(tmp_path / "gentoo.git")
    assert repo.bare
    assert [t.name for t in repo.tags] == [iso(d) for d in DAYS]
    log = list(repo.iter_commits("master"))
    assert [c.summary for c in log] == ["Update portage tree to %s" % iso(d) for d in reversed(DAYS)]
    for date in DAYS:
        tag = repo.tags[iso(date)]
        assert tag.tag is not None, "tags are annotated"
        assert "Snapshot-MD5: %s" % snaps[date].md5 in tag.tag.message
        assert tag.commit.authored_date == snaps[date].timestamp


def test_tree_at_each_tag_is_the_tarball_content_byte_for_byte(tmp_path, mirror):
    server, snaps, key = mirror
    for date in DAYS:
        import_snapshot(params(tmp_path, server, key, date=date))
    for date in DAYS:
        got = checkout(tmp_path / "gentoo.git", iso(date), tmp_path / ("co-" + date))
        want = {path: (data, mode) for path, (data, mode) in snaps[date].tree.items()}
        assert got == want
        assert any(mode == 0o755 for _d, mode in got.values()), "executable bits survive"


def test_stats_count_added_modified_deleted(tmp_path, mirror):
    server, snaps, key = mirror
    import_snapshot(params(tmp_path, server, key, date=DAYS[0]))
    result = import_snapshot(params(tmp_path, server, key, date=DAYS[1]))
    old, new = snaps[DAYS[0]].tree, snaps[DAYS[1]].tree
    assert result["stats"] == {
        "added": len(set(new) - set(old)),
        "modified": sum(1 for p in set(new) & set(old) if new[p] != old[p]),
        "deleted": len(set(old) - set(new)),
    }
    assert result["stats"]["deleted"] > 0 and result["stats"]["added"] > 0


def test_nothing_new_is_decided_from_the_md5sum_alone(tmp_path, mirror):
    server, _snaps, key = mirror
    first = import_snapshot(params(tmp_path, server, key))
    before = list(server.requests)
    again = import_snapshot(params(tmp_path, server, key))
    fetched = server.requests[len(before):]
    assert again["changed"] is False
    assert again["commit"] == first["commit"] == again["previous_commit"]
    assert again["tag"] == first["tag"]
    assert [p for p in fetched if "latest" in p] == ["/snapshots/gentoo-latest.tar.xz.md5sum"]


def test_check_mode_reports_the_import_and_writes_nothing(tmp_path, mirror):
    server, snaps, key = mirror
    result = import_snapshot(params(tmp_path, server, key, date=DAYS[0]), check_mode=True)
    assert result["changed"] is True
    assert result["tag"] == iso(DAYS[0])
    assert result["stats"]["added"] == len(snaps[DAYS[0]].tree)
    assert not (tmp_path / "gentoo.git").exists()
    import_snapshot(params(tmp_path, server, key, date=DAYS[0]))
    state = repo_state(tmp_path / "gentoo.git")
    result = import_snapshot(params(tmp_path, server, key, date=DAYS[1]), check_mode=True)
    assert result["changed"] is True and result["tag"] == iso(DAYS[1])
    assert repo_state(tmp_path / "gentoo.git") == state


def test_same_snapshots_give_the_same_commit_ids_anywhere(tmp_path, mirror):
    server, _snaps, key = mirror
    a = [import_snapshot(params(tmp_path, server, key, date=d, repo=str(tmp_path / "a.git")))["commit"] for d in DAYS]
    b = [import_snapshot(params(tmp_path, server, key, date=d, repo=str(tmp_path / "b")))["commit"] for d in DAYS]
    assert a == b


def test_work_tree_moves_writing_only_changed_files(tmp_path, mirror):
    server, snaps, key = mirror
    work = tmp_path / "work"
    import_snapshot(params(tmp_path, server, key, date=DAYS[0], repo=str(work), bare=False))
    assert tree_of_directory(work) == snaps[DAYS[0]].tree
    old, new = snaps[DAYS[0]].tree, snaps[DAYS[1]].tree
    unchanged = next(p for p in new if p in old and new[p] == old[p])
    inode = (work / unchanged).stat().st_ino, (work / unchanged).stat().st_mtime_ns
    import_snapshot(params(tmp_path, server, key, date=DAYS[1], repo=str(work)))
    assert tree_of_directory(work) == new
    assert ((work / unchanged).stat().st_ino, (work / unchanged).stat().st_mtime_ns) == inode
    assert git.Repo(work).is_dirty(untracked_files=True) is False


def test_push_sends_branch_and_tag_once(tmp_path, mirror):
    server, _snaps, key = mirror
    remote = tmp_path / "served.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    first = import_snapshot(params(tmp_path, server, key, date=DAYS[0], remote=str(remote), push=True))
    assert first["pushed"] is True
    served = git.Repo(remote)
    assert served.commit("master").hexsha == first["commit"]
    assert served.tags[iso(DAYS[0])].commit.hexsha == first["commit"]
    again = import_snapshot(params(tmp_path, server, key, date=DAYS[0], remote=str(remote), push=True))
    assert again["changed"] is False and again["pushed"] is False


def test_older_snapshot_is_refused_unless_allowed(tmp_path, mirror):
    server, snaps, key = mirror
    import_snapshot(params(tmp_path, server, key, date=DAYS[2]))
    # An older day's snapshot that was never imported (the newer one was imported first).
    state = repo_state(tmp_path / "gentoo.git")
    with pytest.raises(SnapshotError) as err:
        import_snapshot(params(tmp_path, server, key, date=DAYS[1]))
    assert "gentoo-%s.tar.xz" % DAYS[1] in str(err.value)
    assert "older" in str(err.value) and "allow_older" in str(err.value)
    assert repo_state(tmp_path / "gentoo.git") == state
    result = import_snapshot(params(tmp_path, server, key, date=DAYS[1], allow_older=True))
    assert result["changed"] is True and result["tag"] == iso(DAYS[1])
    assert checkout(tmp_path / "gentoo.git", "master", tmp_path / "co") == snaps[DAYS[1]].tree


def test_next_mirror_is_tried_when_one_fails(tmp_path, mirror, http_mirror):
    server, _snaps, key = mirror
    broken = http_mirror(tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    result = import_snapshot(params(tmp_path, server, key, mirrors=[broken.url, server.url]))
    assert result["changed"] is True
    assert result["url"].startswith(server.url)


# -- broken mirrors: skipped for the next, never the end of the run -------------------------------
LATEST = "/snapshots/gentoo-latest.tar.xz"


def _bad_latest(tmp_path, key, tree=None, members=None):
    """A second mirror directory whose latest snapshot is ``tree`` (+ raw ``members``), signed
    with the real key: it passes every check that does not look inside the tarball."""
    bad = tmp_path / "bad"
    write_snapshot(bad, DAYS[2], tree, key, members=members, latest=True)
    return bad


def _html_md5sum(tmp_path, key, server):
    server.faults[LATEST + ".md5sum"] = "html"


def _empty_md5sum(tmp_path, key, server):
    server.faults[LATEST + ".md5sum"] = "empty"


def _truncated_md5sum(tmp_path, key, server):
    md5sum = tmp_path / "bad" / "snapshots" / "gentoo-latest.tar.xz.md5sum"
    md5sum.write_text(md5sum.read_text()[:14])


def _corrupt_tarball(tmp_path, key, server):
    tarball = tmp_path / "bad" / "snapshots" / "gentoo-latest.tar.xz"
    data = bytearray(tarball.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0xFF
    tarball.write_bytes(bytes(data))


def _timestamp(text):
    def make(tmp_path, key, server):
        top = "gentoo-%s" % DAYS[2]
        _bad_latest(tmp_path, key, members=[
            tar_member(top + "/profiles/repo_name", b"gentoo\n"),
            tar_member(top + "/metadata/timestamp.x", text),
        ])
    return make


def _no_timestamp(tmp_path, key, server):
    _bad_latest(tmp_path, key, members=[tar_member("gentoo-%s/profiles/repo_name" % DAYS[2], b"gentoo\n")])


def _stale(tmp_path, key, server):
    # Yesterday's snapshot, older than the tip: a mirror that has not synchronised for days.
    write_snapshot(tmp_path / "bad", DAYS[0], small_tree(0), key, latest=True)


def _hostile_member(tmp_path, key, server):
    _bad_latest(tmp_path, key, small_tree(2), members=[tar_member("gentoo-%s/../evil" % DAYS[2], b"x")])


BROKEN_MIRRORS = {
    "html page as md5sum": (_html_md5sum, "is not an md5sum file", {}),
    "empty md5sum": (_empty_md5sum, "is not an md5sum file", {}),
    "truncated md5sum": (_truncated_md5sum, "is not an md5sum file", {}),
    "corrupt tarball, unverified": (_corrupt_tarball, "cannot decompress", {"verify": False}),
    "unreadable timestamp": (_timestamp(b"yesterday-ish\n"), "does not start with a unix time", {}),
    "empty timestamp": (_timestamp(b""), "does not start with a unix time", {}),
    "no timestamp": (_no_timestamp, "no metadata/timestamp.x", {}),
    "stale mirror": (_stale, "older", {}),
    "hostile member": (_hostile_member, "'..'", {}),
}


@pytest.mark.parametrize("case", list(BROKEN_MIRRORS))
def test_broken_mirror_is_skipped_for_the_next(tmp_path, mirror, http_mirror, case):
    server, snaps, key = mirror
    break_it, reason, extra = BROKEN_MIRRORS[case]
    import_snapshot(params(tmp_path, server, key, date=DAYS[1]))
    write_snapshot(tmp_path / "bad", DAYS[2], small_tree(2), key, latest=True)
    bad = http_mirror(tmp_path / "bad")
    break_it(tmp_path, key, bad)

    result = import_snapshot(params(tmp_path, server, key, mirrors=[bad.url, server.url], **extra))

    assert result["changed"] is True and result["tag"] == iso(DAYS[2])
    assert result["url"] == server.url + LATEST
    assert [s["mirror"] for s in result["skipped_mirrors"]] == [bad.url]
    assert reason in result["skipped_mirrors"][0]["reason"]
    assert any(bad.url in w and reason in w for w in result["warnings"]), result["warnings"]
    assert checkout(tmp_path / "gentoo.git", "master", tmp_path / "co") == snaps[DAYS[2]].tree
    assert not any((tmp_path / "gentoo.git" / STAGING_DIR).iterdir())


def test_mirror_serving_another_day_under_the_asked_name_is_skipped(tmp_path, mirror, http_mirror):
    server, snaps, key = mirror
    import_snapshot(params(tmp_path, server, key, date=DAYS[1]))
    # Day 0's genuine, signed tarball published as day 2's: the signature covers the bytes,
    # not the name, so only its timestamp.x shows that this is not the day asked for.
    bad_dir = tmp_path / "bad" / "snapshots"
    bad_dir.mkdir(parents=True)
    for suffix in ("", ".md5sum", ".gpgsig"):
        (bad_dir / ("gentoo-%s.tar.xz%s" % (DAYS[2], suffix))).write_bytes(
            Path(str(snaps[DAYS[0]].tarball) + suffix).read_bytes())
    bad = http_mirror(tmp_path / "bad")

    result = import_snapshot(params(tmp_path, server, key, date=DAYS[2], mirrors=[bad.url, server.url]))

    assert result["tag"] == iso(DAYS[2]) and result["url"].startswith(server.url)
    assert "older" in result["skipped_mirrors"][0]["reason"]


def test_all_mirrors_broken_lists_each_mirror_and_changes_nothing(tmp_path, mirror, http_mirror):
    server, _snaps, key = mirror
    import_snapshot(params(tmp_path, server, key, date=DAYS[1]))
    state = repo_state(tmp_path / "gentoo.git")
    write_snapshot(tmp_path / "bad", DAYS[2], small_tree(2), key, latest=True)
    html = http_mirror(tmp_path / "bad")
    html.faults[LATEST + ".md5sum"] = "html"
    hostile = http_mirror(tmp_path / "hostile")
    write_snapshot(tmp_path / "hostile", DAYS[2], small_tree(2), key, latest=True,
                   members=[tar_member("/etc/evil", b"x")])
    server.faults[LATEST] = 404

    with pytest.raises(SnapshotError) as err:
        import_snapshot(params(tmp_path, server, key, mirrors=[html.url, hostile.url, server.url]))

    message = str(err.value)
    assert message.startswith("no mirror gave a usable snapshot")
    reasons = message.split("; ")
    assert len(reasons) == 3, message
    for part, (url, why) in zip(reasons, ((html.url, "is not an md5sum file"),
                                          (hostile.url, "absolute path"),
                                          (server.url, "HTTP 404"))):
        assert url in part and why in part, message
    assert repo_state(tmp_path / "gentoo.git") == state
    assert not any((tmp_path / "gentoo.git" / STAGING_DIR).iterdir())


def test_older_snapshot_of_the_day_asked_for_stops_at_the_first_mirror(tmp_path, mirror, http_mirror):
    server, _snaps, key = mirror
    import_snapshot(params(tmp_path, server, key, date=DAYS[2]))
    state = repo_state(tmp_path / "gentoo.git")
    # Every mirror has this same day's snapshot: asking each of them gives the same answer.
    other = http_mirror(tmp_path / "upstream")
    with pytest.raises(SnapshotError) as err:
        import_snapshot(params(tmp_path, server, key, date=DAYS[1], mirrors=[server.url, other.url]))
    assert "older" in str(err.value) and "allow_older" in str(err.value)
    assert not str(err.value).startswith("no mirror")
    assert other.requests == []
    assert repo_state(tmp_path / "gentoo.git") == state


def test_local_src_with_companions(tmp_path, mirror):
    _server, snaps, key = mirror
    result = import_snapshot({
        "repo": str(tmp_path / "gentoo.git"),
        "src": str(snaps[DAYS[0]].tarball),
        "key": str(key.pubkey_path),
    })
    assert result["tag"] == iso(DAYS[0]) and result["changed"] is True


def test_concurrent_runs_are_serialised(tmp_path, mirror):
    server, _snaps, key = mirror
    import_snapshot(params(tmp_path, server, key, date=DAYS[0]))
    args = json.dumps(params(tmp_path, server, key))
    procs = [subprocess.Popen([sys.executable, "-c", IMPORTER, args], stdout=subprocess.PIPE) for _run in range(3)]
    outputs = sorted(p.communicate()[0].decode().strip() for p in procs)
    assert [p.returncode for p in procs] == [0, 0, 0]
    assert outputs == ["false", "false", "true"]
    assert subprocess.run(["git", "--git-dir", str(tmp_path / "gentoo.git"), "fsck", "--strict"], check=False).returncode == 0


# -- hostile and broken inputs: refused, named, and the repository untouched -------------------
def _hostile(tmp_path, mirror, make, match, **extra):
    """Import day 0, then try what ``make(mirror_dir, key)`` publishes as day 1."""
    server, _snaps, key = mirror
    import_snapshot(params(tmp_path, server, key, date=DAYS[0]))
    state = repo_state(tmp_path / "gentoo.git")
    make(tmp_path / "upstream", key)
    with pytest.raises(SnapshotError) as err:
        import_snapshot(params(tmp_path, server, key, date=DAYS[1], **extra))
    message = str(err.value)
    assert "gentoo-%s.tar.xz" % DAYS[1] in message
    for fragment in match:
        assert fragment in message
    assert repo_state(tmp_path / "gentoo.git") == state
    assert not (tmp_path / "gentoo.git" / STAGING_DIR).exists() or not any((tmp_path / "gentoo.git" / STAGING_DIR).iterdir())
    return message


def _snapshot_path(mirror_dir, suffix=""):
    return Path(mirror_dir) / "snapshots" / ("gentoo-%s.tar.xz%s" % (DAYS[1], suffix))


def _with_members(*members):
    def make(mirror_dir, key):
        write_snapshot(mirror_dir, DAYS[1], small_tree(1), key, members=list(members), latest=False)
    return make


def test_bad_signature_is_refused(tmp_path, mirror):
    def make(mirror_dir, key):
        tarball = _snapshot_path(mirror_dir)
        # Sign other data, keep the real tarball and md5: the signature does not match it.
        other = tarball.with_name("other")
        other.write_bytes(b"not the snapshot")
        key.sign(other, signature=_snapshot_path(mirror_dir, ".gpgsig"))
    _hostile(tmp_path, mirror, make, ["signature", "bad"])


def test_signature_by_another_key_is_refused(tmp_path, mirror, other_key):
    def make(mirror_dir, key):
        other_key.sign(_snapshot_path(mirror_dir), signature=_snapshot_path(mirror_dir, ".gpgsig"))
    message = _hostile(tmp_path, mirror, make, ["signature check failed", "not in"], fingerprint=None)
    assert other_key.fingerprint[-16:] in message


def test_fingerprint_mismatch_is_refused(tmp_path, mirror, other_key):
    server, _snaps, key = mirror
    # The key file holds both keys; only the pin says which one counts.
    both = tmp_path / "both.asc"
    both.write_bytes(key.pubkey_path.read_bytes() + other_key.pubkey_path.read_bytes())

    def make(mirror_dir, _key):
        other_key.sign(_snapshot_path(mirror_dir), signature=_snapshot_path(mirror_dir, ".gpgsig"))
    message = _hostile(tmp_path, mirror, make, ["signed by 0x%s" % other_key.fingerprint,
                                                "expected 0x%s" % key.fingerprint], key=str(both))
    assert "signature check failed" in message


def test_fingerprint_not_in_key_file_is_refused(tmp_path, mirror, other_key):
    _hostile(tmp_path, mirror, lambda d, k: None, ["fingerprint", other_key.fingerprint, "not among the keys"],
             fingerprint=other_key.fingerprint)


def test_md5_mismatch_is_refused(tmp_path, mirror):
    def make(mirror_dir, key):
        _snapshot_path(mirror_dir, ".md5sum").write_text("0" * 32 + "  gentoo-%s.tar.xz\n" % DAYS[1])
    _hostile(tmp_path, mirror, make, ["md5 mismatch", "0" * 32])


def test_truncated_tarball_is_refused(tmp_path, mirror):
    def make(mirror_dir, key):
        tarball = _snapshot_path(mirror_dir)
        data = tarball.read_bytes()
        tarball.write_bytes(data[: len(data) // 2])
    _hostile(tmp_path, mirror, make, ["md5 mismatch"])


def test_truncated_tarball_without_verification_is_refused(tmp_path, mirror):
    def make(mirror_dir, key):
        tarball = _snapshot_path(mirror_dir)
        data = tarball.read_bytes()
        tarball.write_bytes(data[: len(data) // 2])
        _snapshot_path(mirror_dir, ".md5sum").unlink()
    message = _hostile(tmp_path, mirror, make, ["cannot decompress"], verify=False)
    assert "gentoo-%s.tar.xz" % DAYS[1] in message


def test_missing_signature_is_refused(tmp_path, mirror):
    _hostile(tmp_path, mirror, lambda d, k: _snapshot_path(d, ".gpgsig").unlink(),
             ["OpenPGP signature", "404"])


def test_missing_md5sum_is_refused(tmp_path, mirror):
    _hostile(tmp_path, mirror, lambda d, k: _snapshot_path(d, ".md5sum").unlink(), ["checksum", "404"])


def test_member_with_dotdot_is_refused(tmp_path, mirror):
    _hostile(tmp_path, mirror, _with_members(tar_member("gentoo-%s/../evil" % DAYS[1], b"x")), ["'..'"])


def test_absolute_member_is_refused(tmp_path, mirror):
    _hostile(tmp_path, mirror, _with_members(tar_member("/etc/evil", b"x")), ["absolute path", "/etc/evil"])


def test_device_node_member_is_refused(tmp_path, mirror):
    _hostile(tmp_path, mirror, _with_members(tar_member("gentoo-%s/null" % DAYS[1], None, kind=tarfile.CHRTYPE)),
             ["character device"])


def test_hardlink_pointing_outside_is_refused(tmp_path, mirror):
    member = tar_member("gentoo-%s/passwd" % DAYS[1], None, kind=tarfile.LNKTYPE, linkname="etc/passwd")
    _hostile(tmp_path, mirror, _with_members(member), ["hard link", "outside"])


def test_symlink_pointing_outside_is_refused(tmp_path, mirror):
    member = tar_member("gentoo-%s/profiles/shadow" % DAYS[1], None, kind=tarfile.SYMTYPE, linkname="../../etc/shadow")
    _hostile(tmp_path, mirror, _with_members(member), ["symbolic link", "outside"])


def test_http_404_is_refused(tmp_path, mirror):
    server, _snaps, _key = mirror

    def make(mirror_dir, key):
        server.faults["/snapshots/gentoo-%s.tar.xz" % DAYS[1]] = 404
    _hostile(tmp_path, mirror, make, ["HTTP 404"])


def test_http_500_is_refused(tmp_path, mirror):
    server, _snaps, _key = mirror

    def make(mirror_dir, key):
        server.faults["/snapshots/gentoo-%s.tar.xz.md5sum" % DAYS[1]] = 500
    _hostile(tmp_path, mirror, make, ["HTTP 500"])


def test_mirror_that_never_answers_times_out(tmp_path, mirror):
    server, _snaps, _key = mirror

    def make(mirror_dir, key):
        server.faults["/snapshots/gentoo-%s.tar.xz" % DAYS[1]] = "hang"
    # The server never answers; only the timeout option can end the wait.
    _hostile(tmp_path, mirror, make, ["timeout", "2 s"], timeout=2)


def test_transfer_broken_off_is_refused(tmp_path, mirror):
    server, _snaps, _key = mirror

    def make(mirror_dir, key):
        server.faults["/snapshots/gentoo-%s.tar.xz" % DAYS[1]] = "truncate"
    _hostile(tmp_path, mirror, make, ["broken off"])


def test_failed_first_import_leaves_no_repository(tmp_path, mirror):
    server, _snaps, key = mirror
    server.faults["/snapshots/gentoo-%s.tar.xz.gpgsig" % DAYS[0]] = 404
    with pytest.raises(SnapshotError):
        import_snapshot(params(tmp_path, server, key, date=DAYS[0]))
    assert not (tmp_path / "gentoo.git").exists()


def test_bad_parameters_are_refused_before_anything_happens(tmp_path, mirror):
    server, _snaps, key = mirror
    for extra, fragment in (
        ({"date": "2026-13-45"}, "date"),
        ({"fingerprint": "DEADBEEF"}, "fingerprint"),
        ({"branch": "bad..name"}, "branch"),
        ({"push": True}, "push is True but all of the following are missing: remote"),
        ({"src": "/var/tmp/gentoo-latest.tar.xz"}, "mirrors and src are mutually exclusive"),
        ({"timeout": 0}, "timeout 0 is out of range"),
        ({"repo": None}, "missing required arguments: repo"),
    ):
        with pytest.raises(SnapshotError) as err:
            import_snapshot(params(tmp_path, server, key, **extra))
        assert fragment in str(err.value)
        assert not (tmp_path / "gentoo.git").exists()
    assert server.requests == []


def test_kill_9_during_import_then_next_run_succeeds(tmp_path, signing_key, http_mirror):
    from snapmirror import generate_tree

    date = DAYS[0]
    write_snapshot(tmp_path / "upstream", date, generate_tree(40_000, 40, seed=3), signing_key, preset=1)
    server = http_mirror(tmp_path / "upstream")
    args = params(tmp_path, server, signing_key, date=date)
    repo = tmp_path / "gentoo.git"
    proc = subprocess.Popen([sys.executable, "-c", IMPORTER, json.dumps(args)], start_new_session=True)
    # Wait until fast-import is writing into the staging directory, then kill the whole group.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        staging = repo / STAGING_DIR
        if staging.exists() and any(staging.glob("*/objects/pack/tmp_pack_*")):
            break
        time.sleep(0.01)
    assert proc.poll() is None, "import finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert subprocess.run(["git", "--git-dir", str(repo), "rev-parse", "--verify", "-q", "master"],
                          capture_output=True, check=False).returncode != 0
    result = import_snapshot(args)
    assert result["changed"] is True and result["tag"] == iso(date)
    assert subprocess.run(["git", "--git-dir", str(repo), "fsck", "--strict"], capture_output=True,
                          check=False).returncode == 0
    assert not any((repo / STAGING_DIR).iterdir())
