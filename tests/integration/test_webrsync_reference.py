"""Our import against the reference: real emerge-webrsync from the same signed mirror.

For each day, the tree at our tag must equal (byte for byte, executable bits included) both
the tarball's content and what emerge-webrsync leaves in its repository.
"""
import subprocess

from snapmirror import build_mirror, day_date, small_tree, tree_of_directory, write_snapshot
from webrsync import prepare_webrsync

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._snapshot import import_snapshot

DAYS = [day_date(i) for i in range(3)]


def test_each_tag_equals_emerge_webrsync_and_the_tarball(tmp_path, signing_key, http_mirror):
    snaps = build_mirror(tmp_path / "upstream", signing_key, DAYS)
    server = http_mirror(tmp_path / "upstream")
    repo = tmp_path / "gentoo.git"
    with prepare_webrsync(server.url, signing_key, tmp_path / "webrsync-repo", tmp_path / "wr") as webrsync:
        for date in DAYS:
            result = import_snapshot({
                "repo": str(repo), "mirrors": [server.url], "date": date,
                "key": str(signing_key.pubkey_path), "fingerprint": signing_key.fingerprint,
            })
            assert result["changed"] is True
            webrsync.run(date)
            reference = tree_of_directory(webrsync.dest_repo)
            clone = tmp_path / ("clone-" + date)
            subprocess.run(["git", "clone", "-q", "--branch", result["tag"], str(repo), str(clone)],
                           check=True, stderr=subprocess.DEVNULL)
            ours = tree_of_directory(clone)
            assert ours == reference
            assert ours == snaps[date].tree


def test_real_snapshot_layout_details_survive(tmp_path, signing_key, http_mirror):
    """Long paths (GNU longname members), non-ASCII names and a symlink inside the tree."""
    import tarfile

    from snapmirror import tar_member

    date = DAYS[0]
    top = "gentoo-%s" % date
    long_dir = "dev-python/" + "a-very-long-package-name-" * 5
    files = dict(small_tree(0))
    files[long_dir + "/Manifest"] = (b"DIST x 1 BLAKE2B 00\n", 0o644)
    files["app-misc/caf\u00e9/caf\u00e9-1.ebuild"] = (b"EAPI=8\n", 0o644)
    members = [tar_member(top + "/profiles/current", None, kind=tarfile.SYMTYPE, linkname="default/linux")]
    write_snapshot(tmp_path / "upstream", date, files, signing_key, members=members)
    server = http_mirror(tmp_path / "upstream")
    result = import_snapshot({
        "repo": str(tmp_path / "g.git"), "mirrors": [server.url], "date": date,
        "key": str(signing_key.pubkey_path),
    })
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--branch", result["tag"], str(tmp_path / "g.git"), str(clone)],
                   check=True, stderr=subprocess.DEVNULL)
    with prepare_webrsync(server.url, signing_key, tmp_path / "wr-repo", tmp_path / "wr") as webrsync:
        webrsync.run(date)
        assert tree_of_directory(clone) == tree_of_directory(webrsync.dest_repo)
    assert (clone / "profiles" / "current").is_symlink()
    assert (clone / long_dir / "Manifest").read_bytes() == b"DIST x 1 BLAKE2B 00\n"
