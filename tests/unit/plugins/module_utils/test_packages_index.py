"""Reading Portage's Packages index and checking it against its PKGDIR, on real gpkg files.

The PKGDIRs come from tests/fixtures/pkgdir.py: Portage's index format and gpkg layout.
"""
import gzip
import json
import os

import pytest
from pkgdir import REVISION, read_index, write_index
from publishing import flip_a_byte_of_the_second_package, remove_first_package

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._packages_index import (
    PublishError,
    entry_path,
    parse_packages,
    set_header_uri,
    validate_pkgdir,
)


def test_parse_packages_agrees_with_portage(src):
    from portage.getbinpkg import PackageIndex

    header, entries = parse_packages((src / "Packages").read_text())
    theirs = PackageIndex()
    with open(src / "Packages") as handle:
        theirs.read(handle)
    assert header["PACKAGES"] == theirs.header["PACKAGES"] == "4"
    assert [e["CPV"] for e in entries] == [p["CPV"] for p in theirs.packages]
    assert [entry_path(e) for e in entries] == [p["PATH"] for p in theirs.packages]
    assert json.loads(entries[0]["REPO_REVISIONS"]) == {"gentoo": REVISION}


def test_entry_path_falls_back_to_tbz2():
    assert entry_path({"CPV": "app-misc/hello-1.0"}) == "app-misc/hello-1.0.tbz2"


@pytest.mark.parametrize("text, message", [
    ("", "the Packages index is empty"),
    ("\n\n\n", "the Packages index is empty"),
    ("CPV: app-misc/hello-1.0\nSIZE: 1\n", "has no header block"),
    ("VERSION: 0\n\nSIZE: 1\nPATH: a/b.gpkg.tar\n", "entry 1 of the Packages index has no CPV"),
    ("VERSION: 0\nthis is not a field\n", "Packages line 2 is not 'KEY: value'"),
    ("VERSION: 0\n\nCPV: a/b-1\n SIZE: 1\n", "Packages line 4 is not 'KEY: value'"),
    (": no key\n", "Packages line 1 is not 'KEY: value'"),
])
def test_parse_packages_refuses(text, message):
    with pytest.raises(PublishError, match=message.replace("(", r"\(")):
        parse_packages(text)


def test_set_header_uri_touches_only_the_header(src):
    text = (src / "Packages").read_text()
    head, _sep, body = text.partition("\n\n")
    with_uri = set_header_uri(text, "http://h/stack1/generations/X")
    assert with_uri.endswith(body)
    new_head = with_uri.partition("\n\n")[0].split("\n")
    assert "URI: http://h/stack1/generations/X" in new_head
    assert new_head == sorted(new_head, key=lambda line: line.split(":")[0])
    replaced = set_header_uri(with_uri, "http://other/Y")
    assert replaced.count("URI:") == 1 and "URI: http://other/Y" in replaced
    assert set_header_uri(replaced, None) == text
    parse_packages(with_uri)


def test_validate_pkgdir_accepts_a_real_pkgdir(src):
    header, entries, text = validate_pkgdir(str(src))
    assert header["PACKAGES"] == "4" and len(entries) == 4
    assert text == (src / "Packages").read_text()


def _rewrite(src, mutate_entries=None, mutate_header=None):
    header, entries = read_index(src)
    if mutate_entries:
        mutate_entries(entries)
    header = dict(header)
    text = write_index(src, header, entries)
    if mutate_header:
        text = mutate_header(text)
        (src / "Packages").write_text(text)
        (src / "Packages.gz").write_bytes(gzip.compress(text.encode(), mtime=0))


def _wrong_size(src):
    with open(src / read_index(src)[1][1]["PATH"], "ab") as handle:
        handle.write(b"\0" * 512)


def _dotdot(src):
    def mutate(entries):
        entries[0]["PATH"] = "../outside/" + entries[0]["PATH"]
    (src.parent / "outside" / "app-misc" / "hello").mkdir(parents=True)
    first = read_index(src)[1][0]["PATH"]
    os.link(src / first, src.parent / "outside" / first)
    _rewrite(src, mutate)


def _absolute(src):
    def mutate(entries):
        entries[0]["PATH"] = str(src / entries[0]["PATH"])
    _rewrite(src, mutate)


def _symlink(src):
    path = src / read_index(src)[1][0]["PATH"]
    elsewhere = src.parent / "elsewhere.gpkg.tar"
    os.rename(path, elsewhere)
    os.symlink(elsewhere, path)


def _symlinked_dir(src):
    elsewhere = src.parent / "elsewhere"
    os.rename(src / "app-misc", elsewhere)
    os.symlink(elsewhere, src / "app-misc")


def _duplicate(src):
    def mutate(entries):
        entries[2]["PATH"] = entries[1]["PATH"]
        for key in ("MD5", "SHA1", "SIZE"):
            entries[2][key] = entries[1][key]
    _rewrite(src, mutate)


def _count(src):
    _rewrite(src, mutate_header=lambda text: text.replace("PACKAGES: 4", "PACKAGES: 5"))


def _gz_differs(src):
    (src / "Packages.gz").write_bytes(gzip.compress((src / "Packages").read_bytes().replace(b"amd64", b"arm64")))


def _gz_broken(src):
    (src / "Packages.gz").write_bytes(b"not gzip at all")


def _no_checksum(src):
    def mutate(entries):
        del entries[3]["MD5"], entries[3]["SHA1"]
    _rewrite(src, mutate)


@pytest.mark.parametrize("break_it, message", [
    (remove_first_package, "app-misc/hello-1.0-1 (app-misc/hello/hello-1.0-1.gpkg.tar): file missing"),
    (_wrong_size, "dev-lang/baz-1.2.3-1 (dev-lang/baz/baz-1.2.3-1.gpkg.tar): size 41472, index says 40960"),
    (flip_a_byte_of_the_second_package, "dev-lang/baz-1.2.3-1 (dev-lang/baz/baz-1.2.3-1.gpkg.tar): MD5 "),
    (_dotdot, "path leaves the package directory"),
    (_absolute, "path leaves the package directory"),
    (_symlink, "app-misc/hello-1.0-1 (app-misc/hello/hello-1.0-1.gpkg.tar): file missing"),
    (_symlinked_dir, "app-misc/hello-1.0-1 (app-misc/hello/hello-1.0-1.gpkg.tar): file missing"),
    (_duplicate, "(dev-lang/baz/baz-1.2.3-1.gpkg.tar): listed twice"),
    (_count, "header says PACKAGES: 5 but the index lists 4"),
    (_gz_differs, "Packages.gz is not the same index as Packages"),
    (_gz_broken, "Packages.gz is unreadable"),
    (_no_checksum, "sys-apps/bar-0.9-1 (sys-apps/bar/bar-0.9-1.gpkg.tar): the index lists no checksum"),
])
def test_validate_pkgdir_refuses(src, break_it, message):
    break_it(src)
    with pytest.raises(PublishError) as info:
        validate_pkgdir(str(src))
    assert "the Packages index of %s does not match its files" % src in str(info.value)
    assert message in str(info.value)


def test_validate_pkgdir_lists_every_problem_and_both_checksums(src):
    flip_a_byte_of_the_second_package(src)
    remove_first_package(src)
    with pytest.raises(PublishError) as info:
        validate_pkgdir(str(src))
    text = str(info.value)
    assert "hello-1.0-1.gpkg.tar): file missing" in text
    assert "baz-1.2.3-1.gpkg.tar): MD5" in text and "baz-1.2.3-1.gpkg.tar): SHA1" in text


def test_validate_pkgdir_without_packages(tmp_path):
    with pytest.raises(PublishError, match="no Packages index in %s" % tmp_path):
        validate_pkgdir(str(tmp_path))


def test_validate_pkgdir_trusts_known_inodes_only_with_the_same_checksums(src):
    _header, entries, _text = validate_pkgdir(str(src))
    first = entries[0]
    path = src / first["PATH"]
    inode = os.stat(path).st_ino
    known = {first["PATH"]: (inode, {"md5": first["MD5"], "sha1": first["SHA1"]})}
    # Same inode and checksums: not read again, so even a corrupted file passes (by design).
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    with open(path, "r+b") as handle:  # in place: the inode stays
        handle.write(bytes(data))
    validate_pkgdir(str(src), known)
    # Another inode, or other checksums listed: read and refused.
    with pytest.raises(PublishError, match="MD5"):
        validate_pkgdir(str(src), {first["PATH"]: (inode + 1, known[first["PATH"]][1])})
    with pytest.raises(PublishError, match="MD5"):
        validate_pkgdir(str(src), {first["PATH"]: (inode, {"md5": "0" * 32, "sha1": first["SHA1"]})})
