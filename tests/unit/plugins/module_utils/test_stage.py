"""stage_unpack with real gpg signatures, real GNU tar and a real HTTP server on 127.0.0.1."""
import hashlib
import os
import stat
import tarfile
from pathlib import Path

import pytest
from stage_tarball import (
    COMPRESSORS,
    GOOD,
    NAME,
    STAGE4,
    catalyst_2022_digests,
    clearsign,
    current_digests,
    member,
    params,
    parent_listing,
    write_stage,
)

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._stage import (
    MARKER,
    StageError,
    parse_digests,
    unpack_stage,
)


@pytest.fixture
def stage(tmp_path, signing_key):
    return write_stage(tmp_path / "releases", signing_key)


@pytest.mark.requires_root
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


@pytest.mark.requires_root
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


@pytest.mark.requires_root
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


@pytest.mark.requires_root
def test_binrepos_conf_written_after_the_unpack_survives_a_rerun(tmp_path, signing_key, stage):
    """Only the stage's own binrepos.conf is removed: what a client role configures in the
    unpacked root afterwards is that root's configuration, not the stage's."""
    args = params(tmp_path, signing_key, stage, remove_binrepos_conf=True)
    first = unpack_stage(args)
    assert first["binrepos_conf_removed"] is True
    ours = Path(first["dest"]) / "etc/portage/binrepos.conf/company.conf"
    ours.parent.mkdir()
    ours.write_text("[company]\nsync-uri = https://binhost.example.org/desktop\n")
    for check_mode in (True, False):
        again = unpack_stage(args, check_mode=check_mode)
        assert again["changed"] is False and again["binrepos_conf_removed"] is False, again
    assert ours.read_text() == "[company]\nsync-uri = https://binhost.example.org/desktop\n"


def test_digests_parsing():
    text = "# BLAKE2B HASH\n%s  a.tar.xz\n# SHA512 HASH\n%s  a.tar.xz\n%s  b.tar.xz\n" % ("b" * 128, "c" * 128, "d" * 128)
    assert parse_digests(text, "a.tar.xz") == {"BLAKE2B": "b" * 128, "SHA512": "c" * 128}
    assert parse_digests(text, "b.tar.xz") == {"SHA512": "d" * 128}
    assert parse_digests(text, "z.tar.xz") == {}


def test_digests_parsing_of_the_catalyst_2022_layout():
    data = b"stage bytes"
    text = catalyst_2022_digests(data, "a.tar.xz")
    assert "# BLAKE2 (b2sum) HASH\n" in text and "  /var/tmp/catalyst/builds/default/a.tar.xz\n" in text
    assert parse_digests(text, "a.tar.xz") == {"BLAKE2B": hashlib.blake2b(data).hexdigest(),
                                               "SHA512": hashlib.sha512(data).hexdigest()}
    # An older catalyst also listed hashes this module does not check; they are not mistaken for SHA512.
    assert parse_digests("# WHIRLPOOL HASH\n%s  a.tar.xz\n" % ("e" * 128), "a.tar.xz") == {}


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
    (member("/etc/evil", b"x"), "absolute"),
    (member("./../evil", b"x"), "'..'"),
    (member("./usr/../../evil", b"x"), "'..'"),
    (member("./hard", kind=tarfile.LNKTYPE, linkname="../../etc/shadow"), "hard link"),
])
def test_escaping_members_are_refused(tmp_path, signing_key, member, fragment):
    tarball = write_stage(tmp_path / "releases", signing_key, GOOD[:5] + [member] + GOOD[5:])
    _refused(tmp_path, signing_key, tarball, [NAME, fragment])


def test_member_below_a_symlink_leaving_the_root_is_refused(tmp_path, signing_key):
    outside = tmp_path / "outside"
    evil = [member("./escape", kind=tarfile.SYMTYPE, linkname=str(outside)), member("./escape/planted", b"x")]
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


@pytest.mark.requires_root
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


@pytest.mark.parametrize("timeout", [0, -5, 86401, 2.5, "sixty", True])
def test_out_of_range_timeout_is_refused_before_anything_is_read(tmp_path, signing_key, stage, http_mirror, timeout):
    server = http_mirror(stage.parent)
    message = _refused(tmp_path, signing_key, server.url + "/" + NAME, [], timeout=timeout)
    assert message == ("timeout %r is out of range: give the seconds to wait for a server's answer, "
                       "a whole number from 1 to 86400" % (timeout,))
    assert server.requests == [] and parent_listing(tmp_path) == []


def test_missing_required_option_is_refused(tmp_path, signing_key, stage):
    with pytest.raises(StageError, match="^missing required arguments: dest$"):
        unpack_stage({"src": str(stage), "key": str(signing_key.pubkey_path)})
    assert parent_listing(tmp_path) == []


# -- dest must be the staging root itself, not a link to one ---------------------------------------
@pytest.mark.parametrize("points_at", ["directory", "file", "nothing"])
def test_symlink_dest_is_refused_before_anything_is_read(tmp_path, signing_key, stage, http_mirror, points_at):
    server = http_mirror(stage.parent)
    target = tmp_path / "elsewhere"
    if points_at == "directory":
        target.mkdir()
    elif points_at == "file":
        target.write_text("keep")
    dest = tmp_path / "chroots" / "stack"
    dest.parent.mkdir()
    dest.symlink_to(target)
    with pytest.raises(StageError) as err:
        unpack_stage(params(tmp_path, signing_key, server.url + "/" + NAME))
    assert str(err.value) == "dest %s is a symbolic link to %s; give the staging root's real path" % (dest, target)
    assert server.requests == [], "refused before reading the DIGESTS or the tarball"
    assert parent_listing(tmp_path) == ["stack"] and os.readlink(dest) == str(target)
    if points_at == "directory":
        assert list(target.iterdir()) == []
    elif points_at == "file":
        assert target.read_text() == "keep"
    else:
        assert not target.exists()


# -- every compression stages and stage4 tools use, told by the bytes, not the name -------------------
@pytest.mark.parametrize("compression", sorted(COMPRESSORS))
@pytest.mark.requires_root
def test_every_compression_unpacks(tmp_path, signing_key, compression):
    tarball = write_stage(tmp_path / "releases", signing_key, compression=compression)
    result = unpack_stage(params(tmp_path, signing_key, tarball))
    root = Path(result["dest"])
    assert result["changed"] is True and result["signed_by"] == signing_key.fingerprint
    assert stat.S_IMODE((root / "usr/bin/su").lstat().st_mode) == 0o4755
    assert (root / "usr/bin/sudo-link").lstat().st_ino == (root / "usr/bin/su").lstat().st_ino
    assert os.getxattr(root / "usr/bin/ping", "user.gbh") == b"kept"
    assert stat.S_ISCHR((root / "dev/null").lstat().st_mode)
    assert (root / MARKER).exists() and parent_listing(tmp_path) == ["stack"]


@pytest.mark.parametrize("compression, name", [
    ("bzip2", "stage4-desktop-20261120.tar.xz"),
    ("gzip", "stage4-desktop-20261120.tbz2"),
    ("zstd", "stage4-desktop-20261120.tar.gz"),
    ("tar", "stage4-desktop-20261120.tar.zst"),
])
@pytest.mark.requires_root
def test_compression_is_told_by_the_bytes_not_the_name(tmp_path, signing_key, compression, name):
    tarball = write_stage(tmp_path / "releases", signing_key, name=name, compression=compression)
    result = unpack_stage(params(tmp_path, signing_key, tarball))
    assert result["changed"] is True and result["stage"] == name
    assert (Path(result["dest"]) / "var/lib/portage/world").read_text() == "app-misc/hello\n"


@pytest.mark.parametrize("compression", ["bzip2", "gzip", "zstd", "tar"])
def test_hostile_members_are_refused_in_every_compression(tmp_path, signing_key, compression):
    outside = tmp_path / "outside"
    evil = [member("./escape", kind=tarfile.SYMTYPE, linkname=str(outside)), member("./escape/planted", b"x")]
    tarball = write_stage(tmp_path / "releases", signing_key, GOOD + evil, compression=compression)
    _refused(tmp_path, signing_key, tarball, [NAME, "escape", "leads out of the root"])
    dotdot = write_stage(tmp_path / "releases", signing_key, GOOD[:5] + [member("./usr/../../evil", b"x")],
                         compression=compression)
    _refused(tmp_path, signing_key, dotdot, [NAME, "'..'"])


@pytest.mark.parametrize("head", [
    b"\x04\x22\x4d\x18" + b"lz4 frame",  # lz4: not something stages use
    b"7z\xbc\xaf\x27\x1c" + b"\0" * 600,
    b"this is not a stage\n" * 40,
])
def test_unknown_format_is_refused_before_anything_is_written(tmp_path, signing_key, head):
    directory = tmp_path / "releases"
    directory.mkdir()
    tarball = directory / NAME
    tarball.write_bytes(head)
    (directory / (NAME + ".DIGESTS")).write_text(current_digests(head, NAME))
    clearsign(signing_key, directory / (NAME + ".DIGESTS"))
    signing_key.sign(tarball, signature=directory / (NAME + ".asc"))
    message = _refused(tmp_path, signing_key, tarball, [NAME, "not a tar archive in a format stages use",
                                                        "xz, bzip2, gzip, zstd or uncompressed tar"])
    assert str(tarball) in message
    assert parent_listing(tmp_path) == []


# -- a stage4 of one's own: pinned SHA-512 and/or a signature by one's own key, no DIGESTS ----------
@pytest.mark.requires_root
def test_pinned_sha512_needs_no_digests_and_no_signature(tmp_path, signing_key, http_mirror):
    tarball = write_stage(tmp_path / "releases", signing_key, name=STAGE4, compression="bzip2",
                          digests=None, signed=False)
    pin = hashlib.sha512(tarball.read_bytes()).hexdigest()
    server = http_mirror(tarball.parent)
    args = params(tmp_path, signing_key, server.url + "/" + STAGE4, sha512=pin.upper())
    check = unpack_stage(args, check_mode=True)
    assert check["changed"] is True and check["sha512"] == pin and server.requests == []
    assert parent_listing(tmp_path) == []
    first = unpack_stage(args)
    assert first["changed"] is True and first["sha512"] == pin and "signed_by" not in first
    assert server.requests == ["/" + STAGE4]
    world = Path(first["dest"]) / "var/lib/portage/world"
    before = world.stat().st_mtime_ns
    for check_mode in (False, True):
        again = unpack_stage(args, check_mode=check_mode)
        assert again["changed"] is False and again["sha512"] == pin
    assert server.requests == ["/" + STAGE4], "a re-run recognises the root by the pin, reading nothing"
    assert world.stat().st_mtime_ns == before
    other = hashlib.sha512(b"another stage").hexdigest()
    with pytest.raises(StageError, match="already holds stage %s" % STAGE4):
        unpack_stage(dict(args, sha512=other))


def test_wrong_pin_is_refused_with_both_digests(tmp_path, signing_key):
    tarball = write_stage(tmp_path / "releases", signing_key, name=STAGE4, compression="bzip2",
                          digests=None, signed=False)
    actual = hashlib.sha512(tarball.read_bytes()).hexdigest()
    wrong = hashlib.sha512(b"what the admin meant").hexdigest()
    message = _refused(tmp_path, signing_key, tarball, ["sha512 mismatch", STAGE4, wrong, actual], sha512=wrong)
    assert parent_listing(tmp_path) == []
    assert "expected %s (option sha512)" % wrong in message


def test_malformed_pin_is_refused(tmp_path, signing_key, stage):
    _refused(tmp_path, signing_key, stage, ["sha512 'abc' is not a SHA-512 digest (128 hex digits)"], sha512="abc")
    assert parent_listing(tmp_path) == []


def test_pin_and_digests_together_are_refused(tmp_path, signing_key, stage):
    pin = hashlib.sha512(stage.read_bytes()).hexdigest()
    _refused(tmp_path, signing_key, stage, ["sha512 and digests are mutually exclusive"], sha512=pin,
             digests=str(stage) + ".DIGESTS")


@pytest.mark.requires_root
def test_signature_by_own_key_without_digests(tmp_path, signing_key, other_key, http_mirror):
    tarball = write_stage(tmp_path / "releases", signing_key, name=STAGE4, compression="gzip", digests=None)
    server = http_mirror(tarball.parent)
    args = params(tmp_path, signing_key, server.url + "/" + STAGE4, digests="")
    result = unpack_stage(args)
    assert result["changed"] is True and result["signed_by"] == signing_key.fingerprint
    assert result["sha512"] == hashlib.sha512(tarball.read_bytes()).hexdigest()
    assert sorted(server.requests) == sorted(["/" + STAGE4, "/" + STAGE4 + ".asc"])
    seen = len(server.requests)
    assert unpack_stage(args)["changed"] is False
    assert server.requests[seen:] == [], "a re-run recognises the root by its marker"
    renamed = params(tmp_path, signing_key, server.url + "/" + NAME, digests="")
    with pytest.raises(StageError, match="already holds stage %s" % STAGE4):
        unpack_stage(renamed)


def test_signature_without_digests_is_still_checked(tmp_path, signing_key, other_key):
    tarball = write_stage(tmp_path / "releases", other_key, name=STAGE4, compression="gzip", digests=None)
    _refused(tmp_path, signing_key, tarball, ["stage signature check failed", STAGE4], digests="")
    tarball.with_name(STAGE4 + ".asc").unlink()
    _refused(tmp_path, signing_key, tarball, ["OpenPGP signature", STAGE4], digests="")
    assert parent_listing(tmp_path) == []


@pytest.mark.requires_root
def test_pin_with_a_signature_checks_both(tmp_path, signing_key, other_key):
    tarball = write_stage(tmp_path / "releases", other_key, name=STAGE4, compression="gzip", digests=None)
    pin = hashlib.sha512(tarball.read_bytes()).hexdigest()
    asc = str(tarball) + ".asc"
    _refused(tmp_path, signing_key, tarball, ["stage signature check failed", STAGE4], sha512=pin, signature=asc)
    other_key.sign(tarball, signature=Path(asc))
    result = unpack_stage(params(tmp_path, other_key, tarball, sha512=pin, signature=asc))
    assert result["signed_by"] == other_key.fingerprint and result["sha512"] == pin


def test_missing_digests_tells_how_to_do_without(tmp_path, signing_key):
    tarball = write_stage(tmp_path / "releases", signing_key, name=STAGE4, compression="bzip2", digests=None)
    message = _refused(tmp_path, signing_key, tarball, ["cannot get the DIGESTS of %s" % STAGE4])
    assert "sha512" in message and "digests=''" in message


# -- DIGESTS of older catalyst releases ------------------------------------------------------------
@pytest.mark.requires_root
def test_digests_in_the_catalyst_2022_layout_are_accepted(tmp_path, signing_key):
    tarball = write_stage(tmp_path / "releases", signing_key, digests=catalyst_2022_digests)
    text = tarball.with_name(NAME + ".DIGESTS").read_text()
    assert text.startswith("-----BEGIN PGP SIGNED MESSAGE-----") and "# BLAKE2 (b2sum) HASH" in text
    result = unpack_stage(params(tmp_path, signing_key, tarball))
    assert result["changed"] is True and result["sha512"] == hashlib.sha512(tarball.read_bytes()).hexdigest()
    assert unpack_stage(params(tmp_path, signing_key, tarball))["changed"] is False


def test_blake2b_mismatch_is_refused(tmp_path, signing_key):
    def wrong_blake2b(data, name):
        return "# BLAKE2B HASH\n%s  %s\n# SHA512 HASH\n%s  %s\n" % (
            hashlib.blake2b(b"other").hexdigest(), name, hashlib.sha512(data).hexdigest(), name)

    tarball = write_stage(tmp_path / "releases", signing_key, digests=wrong_blake2b)
    _refused(tmp_path, signing_key, tarball, ["blake2b mismatch", NAME, hashlib.blake2b(b"other").hexdigest(),
                                              hashlib.blake2b(tarball.read_bytes()).hexdigest()])
    assert parent_listing(tmp_path) == []
