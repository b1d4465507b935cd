"""stage_unpack with real gpg signatures, real GNU tar and a real HTTP server on 127.0.0.1."""
import hashlib
import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
from ansible_run import run_module

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._stage import (
    MARKER,
    StageError,
    parse_digests,
    unpack_stage,
)

NAME = "stage3-amd64-gbhtest-20261120T000000Z.tar.xz"


def _member(name, data=b"", kind=tarfile.REGTYPE, mode=0o644, uid=0, gid=0, linkname="", pax=None,
            devmajor=0, devminor=0):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.linkname = kind, mode, uid, gid, linkname
    info.devmajor, info.devminor = devmajor, devminor
    info.pax_headers = pax or {}
    info.mtime = 1795000000
    if kind == tarfile.REGTYPE:
        info.size = len(data)
    return info, (io.BytesIO(data) if kind == tarfile.REGTYPE else None)


GOOD = [
    _member("./", kind=tarfile.DIRTYPE, mode=0o755),
    _member("./usr", kind=tarfile.DIRTYPE, mode=0o755),
    _member("./usr/bin", kind=tarfile.DIRTYPE, mode=0o755),
    _member("./bin", kind=tarfile.SYMTYPE, linkname="usr/bin"),
    _member("./usr/bin/su", b"#!/bin/sh\n", mode=0o4755),
    _member("./usr/bin/sudo-link", kind=tarfile.LNKTYPE, linkname="./usr/bin/su"),
    _member("./etc", kind=tarfile.DIRTYPE, mode=0o755),
    _member("./etc/localtime", kind=tarfile.SYMTYPE, linkname="/usr/share/zoneinfo/UTC"),
    _member("./etc/portage", kind=tarfile.DIRTYPE, mode=0o755),
    _member("./etc/portage/binrepos.conf", kind=tarfile.DIRTYPE, mode=0o755),
    _member("./etc/portage/binrepos.conf/gentoobinhost.conf",
            b"[gentoobinhost]\nsync-uri = https://distfiles.gentoo.org/releases/amd64/binpackages/23.0/x86-64\n"),
    _member("./var", kind=tarfile.DIRTYPE, mode=0o755),
    _member("./var/lib", kind=tarfile.DIRTYPE, mode=0o755),
    _member("./var/lib/portage", kind=tarfile.DIRTYPE, mode=0o2750, uid=250, gid=250),
    _member("./var/lib/portage/world", b"app-misc/hello\n", uid=250, gid=250),
    _member("./usr/bin/ping", b"\x7fELF", mode=0o755, pax={"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
                                                         "SCHILY.xattr.user.gbh": "kept"}),
    _member("./dev", kind=tarfile.DIRTYPE, mode=0o755),
    _member("./dev/null", kind=tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3),
]


def _clearsign(key, path):
    out = path.with_name(path.name + ".signed")
    subprocess.run(["gpg", "--homedir", str(key.gnupghome), "--batch", "--yes", "--clearsign",
                    "--local-user", key.fingerprint + "!", "--output", str(out), str(path)], check=True,
                   capture_output=True)
    out.replace(path)


def write_stage(directory, key, members=GOOD, name=NAME, digests_key=None):
    """A stage tarball with Gentoo's companions: clearsigned .DIGESTS and detached .asc."""
    directory.mkdir(parents=True, exist_ok=True)
    tarball = directory / name
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, data)
            if data is not None:
                data.seek(0)
    subprocess.run(["xz", "-6", "-c"], input=raw.getvalue(), stdout=tarball.open("wb"), check=True)
    data = tarball.read_bytes()
    digests = directory / (name + ".DIGESTS")
    digests.write_text("# BLAKE2B HASH\n%s  %s\n# SHA512 HASH\n%s  %s\n" % (
        hashlib.blake2b(data).hexdigest(), name, hashlib.sha512(data).hexdigest(), name))
    _clearsign(digests_key or key, digests)
    key.sign(tarball, signature=directory / (name + ".asc"))
    return tarball


@pytest.fixture
def stage(tmp_path, signing_key):
    return write_stage(tmp_path / "releases", signing_key)


def params(tmp_path, key, tarball, **extra):
    base = {"src": str(tarball), "dest": str(tmp_path / "chroots" / "stack"), "key": str(key.pubkey_path),
            "fingerprint": key.fingerprint}
    base.update(extra)
    return base


def parent_listing(tmp_path):
    chroots = tmp_path / "chroots"
    return sorted(p.name for p in chroots.iterdir()) if chroots.exists() else []


def test_unpack_keeps_owners_modes_links_devices_and_xattrs(tmp_path, signing_key, stage):
    result = unpack_stage(params(tmp_path, signing_key, stage))
    root = Path(result["dest"])
    assert result["changed"] is True and result["signed_by"] == signing_key.fingerprint
    assert result["sha512"] == hashlib.sha512(stage.read_bytes()).hexdigest()
    su = (root / "usr/bin/su").lstat()
    assert stat.S_IMODE(su.st_mode) == 0o4755
    assert (root / "usr/bin/sudo-link").lstat().st_ino == su.st_ino
    world = (root / "var/lib/portage/world").lstat()
    assert (world.st_uid, world.st_gid) == (250, 250)
    assert stat.S_IMODE((root / "var/lib/portage").lstat().st_mode) == 0o2750
    assert os.readlink(root / "bin") == "usr/bin"
    assert os.readlink(root / "etc/localtime") == "/usr/share/zoneinfo/UTC"
    null = (root / "dev/null").lstat()
    assert stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1 and os.minor(null.st_rdev) == 3
    assert os.getxattr(root / "usr/bin/ping", "user.gbh") == b"kept"
    assert (root / MARKER).exists()
    assert parent_listing(tmp_path) == ["stack"], "no partial directory left"


def test_rerun_reads_only_the_digests(tmp_path, signing_key, stage, http_mirror):
    server = http_mirror(stage.parent)
    args = params(tmp_path, signing_key, server.url + "/" + NAME)
    assert unpack_stage(args)["changed"] is True
    world = Path(args["dest"]) / "var/lib/portage/world"
    before = world.stat().st_mtime_ns
    seen = len(server.requests)
    again = unpack_stage(args)
    assert again["changed"] is False
    assert server.requests[seen:] == ["/" + NAME + ".DIGESTS"]
    assert world.stat().st_mtime_ns == before


def test_check_mode_creates_nothing(tmp_path, signing_key, stage):
    result = unpack_stage(params(tmp_path, signing_key, stage), check_mode=True)
    assert result["changed"] is True
    assert parent_listing(tmp_path) == []


def test_binrepos_conf_removed_when_asked(tmp_path, signing_key, stage):
    args = params(tmp_path, signing_key, stage)
    kept = unpack_stage(args)
    assert (Path(kept["dest"]) / "etc/portage/binrepos.conf/gentoobinhost.conf").exists()
    check = unpack_stage(dict(args, remove_binrepos_conf=True), check_mode=True)
    assert check["changed"] is True and (Path(kept["dest"]) / "etc/portage/binrepos.conf").exists()
    removed = unpack_stage(dict(args, remove_binrepos_conf=True))
    assert removed["changed"] is True and removed["binrepos_conf_removed"] is True
    assert not (Path(kept["dest"]) / "etc/portage/binrepos.conf").exists()
    assert unpack_stage(dict(args, remove_binrepos_conf=True))["changed"] is False


def test_digests_parsing():
    text = "# BLAKE2B HASH\n%s  a.tar.xz\n# SHA512 HASH\n%s  a.tar.xz\n%s  b.tar.xz\n" % ("b" * 128, "c" * 128, "d" * 128)
    assert parse_digests(text, "a.tar.xz") == "c" * 128
    assert parse_digests(text, "b.tar.xz") == "d" * 128
    assert parse_digests(text, "z.tar.xz") is None


# -- refusals: the error names the stage and the reason; nothing is left on disk ------------------
def _refused(tmp_path, key, tarball, fragments, **extra):
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    with pytest.raises(StageError) as err:
        unpack_stage(params(tmp_path, key, tarball, **extra))
    for fragment in fragments:
        assert fragment in str(err.value)
    assert parent_listing(tmp_path) in ([], ["stack"])
    assert not (tmp_path / "chroots" / "stack").exists() or not any((tmp_path / "chroots" / "stack").iterdir())
    assert list(outside.iterdir()) == []
    return str(err.value)


@pytest.mark.parametrize("member, fragment", [
    (_member("/etc/evil", b"x"), "absolute"),
    (_member("./../evil", b"x"), "'..'"),
    (_member("./usr/../../evil", b"x"), "'..'"),
    (_member("./hard", kind=tarfile.LNKTYPE, linkname="../../etc/shadow"), "hard link"),
])
def test_escaping_members_are_refused(tmp_path, signing_key, member, fragment):
    tarball = write_stage(tmp_path / "releases", signing_key, GOOD[:5] + [member] + GOOD[5:])
    _refused(tmp_path, signing_key, tarball, [NAME, fragment])


def test_member_below_a_symlink_leaving_the_root_is_refused(tmp_path, signing_key):
    outside = tmp_path / "outside"
    evil = [_member("./escape", kind=tarfile.SYMTYPE, linkname=str(outside)), _member("./escape/planted", b"x")]
    tarball = write_stage(tmp_path / "releases", signing_key, GOOD + evil)
    _refused(tmp_path, signing_key, tarball, [NAME, "escape", "leads out of the root"])


def test_signature_by_another_key_is_refused(tmp_path, signing_key, other_key, stage):
    other_key.sign(stage, signature=stage.with_name(NAME + ".asc"))
    _refused(tmp_path, signing_key, stage, ["stage signature check failed", NAME])


def test_digests_signed_by_another_key_are_refused(tmp_path, signing_key, other_key):
    tarball = write_stage(tmp_path / "releases", signing_key, digests_key=other_key)
    _refused(tmp_path, signing_key, tarball, ["signature check failed", NAME + ".DIGESTS"])


def test_sha512_mismatch_is_refused(tmp_path, signing_key, stage):
    data = bytearray(stage.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stage.write_bytes(bytes(data))
    _refused(tmp_path, signing_key, stage, ["sha512 mismatch", NAME])


def test_missing_signature_is_refused(tmp_path, signing_key, stage):
    stage.with_name(NAME + ".asc").unlink()
    _refused(tmp_path, signing_key, stage, ["OpenPGP signature", NAME])


def test_occupied_or_foreign_roots_are_refused(tmp_path, signing_key, stage):
    dest = tmp_path / "chroots" / "stack"
    dest.mkdir(parents=True)
    (dest / "precious").write_text("keep")
    with pytest.raises(StageError, match="not empty"):
        unpack_stage(params(tmp_path, signing_key, stage))
    assert (dest / "precious").read_text() == "keep"
    with pytest.raises(StageError, match="onto /"):
        unpack_stage(params(tmp_path, signing_key, stage, dest="/"))
    (dest / "precious").unlink()
    unpack_stage(params(tmp_path, signing_key, stage))
    other = write_stage(tmp_path / "other", signing_key, GOOD[:8], name=NAME)
    with pytest.raises(StageError, match="already holds stage"):
        unpack_stage(params(tmp_path, signing_key, other))


def test_four_passes_through_ansible(tmp_path, signing_key, stage):
    args = params(tmp_path, signing_key, stage, remove_binrepos_conf=True)
    check = run_module("gentoo_binhost.infra.stage_unpack", args, check=True)
    assert check["_rc"] == 0 and check["changed"] is True and parent_listing(tmp_path) == []
    apply = run_module("gentoo_binhost.infra.stage_unpack", args)
    assert apply["_rc"] == 0 and apply["changed"] is True, apply
    again = run_module("gentoo_binhost.infra.stage_unpack", args)
    assert again["changed"] is False, again
    recheck = run_module("gentoo_binhost.infra.stage_unpack", args, check=True)
    assert recheck["changed"] is False, recheck
    failed = run_module("gentoo_binhost.infra.stage_unpack", dict(args, dest="/"))
    assert failed["failed"] and "onto /" in failed["msg"]
