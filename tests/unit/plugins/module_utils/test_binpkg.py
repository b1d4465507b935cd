"""binpkg_publish logic with real gpkg files (real zstd), real rsync and real processes.

The PKGDIRs come from tests/fixtures/pkgdir.py: Portage's index format and gpkg layout.
"""
import datetime
import gzip
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pkgdir import REVISION, change_package, make_pkgdir, read_index, write_index

from ansible_collections.gentoo_binhost.infra.plugins.module_utils import _binpkg as B
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._binpkg import PublishError

ROOT = Path(__file__).resolve().parents[4]
OTHER = "2" * 40
PKGS = [
    {"cpv": "app-misc/hello-1.0", "size": 5000},
    {"cpv": "dev-libs/libfoo-2.3-r1", "size": 70000},
    {"cpv": "sys-apps/bar-0.9", "size": 1000},
    {"cpv": "dev-lang/baz-1.2.3", "size": 30000},
]


def at(minute):
    return datetime.datetime(2026, 11, 20, 3, minute, 0, tzinfo=datetime.timezone.utc)


def params(src, dest, **extra):
    out = {"src": str(src), "dest": str(dest), "name": None, "keep": 5, "expect_revisions": None,
           "provenance": None, "base_url": None, "rollback_to": None}
    out.update(extra)
    return out


def tree(root):
    """Everything below ``root``: path → (kind, inode, size, mtime_ns, sha1 or link target)."""
    out = {}
    root = Path(root)
    if not root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            if path.is_symlink():
                out[str(path.relative_to(root))] = ("link", st.st_ino, 0, st.st_mtime_ns, os.readlink(path))
            elif path.is_dir():
                out[str(path.relative_to(root))] = ("dir", st.st_ino, 0, None, None)  # entries are compared
            else:
                digest = hashlib.sha1(path.read_bytes()).hexdigest()
                out[str(path.relative_to(root))] = ("file", st.st_ino, st.st_size, st.st_mtime_ns, digest)
    return out


def sha1(path):
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "pkgdir"
    make_pkgdir(path, PKGS, gz=True)
    return path


@pytest.fixture
def dest(tmp_path):
    return tmp_path / "binhost" / "stack1"


# -- the Packages index -------------------------------------------------------------------------
def test_parse_packages_agrees_with_portage(src):
    from portage.getbinpkg import PackageIndex

    header, entries = B.parse_packages((src / "Packages").read_text())
    theirs = PackageIndex()
    with open(src / "Packages") as handle:
        theirs.read(handle)
    assert header["PACKAGES"] == theirs.header["PACKAGES"] == "4"
    assert [e["CPV"] for e in entries] == [p["CPV"] for p in theirs.packages]
    assert [B.entry_path(e) for e in entries] == [p["PATH"] for p in theirs.packages]
    assert json.loads(entries[0]["REPO_REVISIONS"]) == {"gentoo": REVISION}


def test_entry_path_falls_back_to_tbz2():
    assert B.entry_path({"CPV": "app-misc/hello-1.0"}) == "app-misc/hello-1.0.tbz2"


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
        B.parse_packages(text)


def test_set_header_uri_touches_only_the_header(src):
    text = (src / "Packages").read_text()
    head, _sep, body = text.partition("\n\n")
    with_uri = B.set_header_uri(text, "http://h/stack1/generations/X")
    assert with_uri.endswith(body)
    new_head = with_uri.partition("\n\n")[0].split("\n")
    assert "URI: http://h/stack1/generations/X" in new_head
    assert new_head == sorted(new_head, key=lambda line: line.split(":")[0])
    replaced = B.set_header_uri(with_uri, "http://other/Y")
    assert replaced.count("URI:") == 1 and "URI: http://other/Y" in replaced
    assert B.set_header_uri(replaced, None) == text
    B.parse_packages(with_uri)


# -- validate_pkgdir ----------------------------------------------------------------------------
def test_validate_pkgdir_accepts_a_real_pkgdir(src):
    header, entries, text = B.validate_pkgdir(str(src))
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


def _missing(src):
    os.unlink(src / read_index(src)[1][0]["PATH"])


def _wrong_size(src):
    with open(src / read_index(src)[1][1]["PATH"], "ab") as handle:
        handle.write(b"\0" * 512)


def _wrong_checksum(src):
    path = src / read_index(src)[1][1]["PATH"]
    data = bytearray(path.read_bytes())
    data[-20000] ^= 0xFF  # inside the image, same size
    path.write_bytes(bytes(data))


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
    (_missing, "app-misc/hello-1.0-1 (app-misc/hello/hello-1.0-1.gpkg.tar): file missing"),
    (_wrong_size, "dev-lang/baz-1.2.3-1 (dev-lang/baz/baz-1.2.3-1.gpkg.tar): size 41472, index says 40960"),
    (_wrong_checksum, "dev-lang/baz-1.2.3-1 (dev-lang/baz/baz-1.2.3-1.gpkg.tar): MD5 "),
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
        B.validate_pkgdir(str(src))
    assert "the Packages index of %s does not match its files" % src in str(info.value)
    assert message in str(info.value)


def test_validate_pkgdir_lists_every_problem_and_both_checksums(src):
    _wrong_checksum(src)
    _missing(src)
    with pytest.raises(PublishError) as info:
        B.validate_pkgdir(str(src))
    text = str(info.value)
    assert "hello-1.0-1.gpkg.tar): file missing" in text
    assert "baz-1.2.3-1.gpkg.tar): MD5" in text and "baz-1.2.3-1.gpkg.tar): SHA1" in text


def test_validate_pkgdir_without_packages(tmp_path):
    with pytest.raises(PublishError, match="no Packages index in %s" % tmp_path):
        B.validate_pkgdir(str(tmp_path))


def test_validate_pkgdir_trusts_known_inodes_only_with_the_same_checksums(src):
    _header, entries, _text = B.validate_pkgdir(str(src))
    first = entries[0]
    path = src / first["PATH"]
    inode = os.stat(path).st_ino
    known = {first["PATH"]: (inode, {"md5": first["MD5"], "sha1": first["SHA1"]})}
    # Same inode and checksums: not read again, so even a corrupted file passes (by design).
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    with open(path, "r+b") as handle:  # in place: the inode stays
        handle.write(bytes(data))
    B.validate_pkgdir(str(src), known)
    # Another inode, or other checksums listed: read and refused.
    with pytest.raises(PublishError, match="MD5"):
        B.validate_pkgdir(str(src), {first["PATH"]: (inode + 1, known[first["PATH"]][1])})
    with pytest.raises(PublishError, match="MD5"):
        B.validate_pkgdir(str(src), {first["PATH"]: (inode, {"md5": "0" * 32, "sha1": first["SHA1"]})})


# -- revisions ------------------------------------------------------------------------------------
def test_package_revisions_reads_them_from_inside_a_gpkg(tmp_path):
    revisions = {"gentoo": REVISION, "myoverlay": "3" * 40}
    make_pkgdir(tmp_path, [{"cpv": "app-misc/hello-1.0", "repo_revisions": revisions},
                           {"cpv": "app-misc/none-1", "repo_revisions": None}], index_revisions=False)
    _header, entries = read_index(tmp_path)
    assert all("REPO_REVISIONS" not in e for e in entries)
    assert B.package_revisions(str(tmp_path / entries[0]["PATH"])) == revisions
    assert B.package_revisions(str(tmp_path / entries[1]["PATH"])) == {}
    assert B.resolve_revisions(str(tmp_path), entries) == {"app-misc/hello-1.0-1": revisions,
                                                           "app-misc/none-1-1": {}}


def test_package_revisions_of_something_else(tmp_path):
    (tmp_path / "hello-1.0.tbz2").write_bytes(os.urandom(4096) + b"XPAKPACK" + b"\0" * 16 + b"XPAKSTOP")
    assert B.package_revisions(str(tmp_path / "hello-1.0.tbz2")) is None
    subprocess.run(["tar", "-cf", str(tmp_path / "plain.tar"), "-C", str(tmp_path), "hello-1.0.tbz2"], check=True)
    assert B.package_revisions(str(tmp_path / "plain.tar")) is None


def _claim_in_index(path, revisions):
    """Rewrite ``path``'s index so every entry (and the header) claims ``revisions``; the
    package files keep what they record."""
    header, entries = read_index(path)
    for entry in entries:
        entry["REPO_REVISIONS"] = json.dumps(revisions, sort_keys=True)
    header["REPO_REVISIONS"] = json.dumps(revisions, sort_keys=True)
    write_index(path, header, entries)
    return entries


def test_resolve_revisions_reads_the_package_and_refuses_an_index_that_disagrees(tmp_path):
    make_pkgdir(tmp_path, [{"cpv": "app-misc/hello-1.0", "repo_revisions": {"gentoo": OTHER}}])
    entries = _claim_in_index(tmp_path, {"gentoo": REVISION})
    with pytest.raises(PublishError) as info:
        B.resolve_revisions(str(tmp_path), entries)
    assert str(info.value) == (
        "the Packages index and the package files disagree on what the packages were built from: "
        "app-misc/hello-1.0-1: the index says ::gentoo 111111111111, the package records ::gentoo 222222222222")


def test_an_index_claiming_revisions_the_package_does_not_record_is_refused(tmp_path):
    make_pkgdir(tmp_path, [{"cpv": "app-misc/hello-1.0", "repo_revisions": None}], index_revisions=False)
    entries = _claim_in_index(tmp_path, {"gentoo": REVISION})
    with pytest.raises(PublishError, match=r"app-misc/hello-1.0-1: the index says ::gentoo 111111111111, "
                                           r"the package records none"):
        B.resolve_revisions(str(tmp_path), entries)


def test_an_index_and_a_package_that_both_record_nothing_agree(tmp_path):
    """What Portage writes without git in the build root: ``REPO_REVISIONS: {}`` in the index,
    nothing in the package."""
    make_pkgdir(tmp_path, [{"cpv": "app-misc/hello-1.0", "repo_revisions": None}], index_revisions=False)
    entries = _claim_in_index(tmp_path, {})
    assert B.resolve_revisions(str(tmp_path), entries) == {"app-misc/hello-1.0-1": {}}


def test_publish_refuses_an_index_that_lies_about_the_tree(tmp_path, dest):
    src = tmp_path / "pkgdir"
    make_pkgdir(src, [{"cpv": "app-misc/hello-1.0", "repo_revisions": {"gentoo": OTHER}},
                      {"cpv": "sys-apps/bar-0.9"}])
    _claim_in_index(src, {"gentoo": REVISION})
    for check_mode in (True, False):
        with pytest.raises(PublishError, match=r"the index says ::gentoo 111111111111, the package records "
                                               r"::gentoo 222222222222"):
            B.publish(params(src, dest, expect_revisions={"gentoo": REVISION}), check_mode=check_mode, now=at(1))
        assert not (dest / "current").exists() and B.Stack(str(dest)).list() == []
        assert B.Stack(str(dest)).partials() == []


def xpak_package(path, metadata, payload=b"BZh91AY&SY not really bzip2"):
    """A ``.tbz2``/``.xpak`` binary package: compressed image, then Portage's xpak segment
    (XPAKPACK, index length, data length, index entries of name/offset/length, data,
    XPAKSTOP), then the segment's length and STOP."""
    index, data = b"", b""
    for name, value in sorted(metadata.items()):
        key = name.encode()
        index += len(key).to_bytes(4, "big") + key + len(data).to_bytes(4, "big") + len(value).to_bytes(4, "big")
        data += value
    segment = (b"XPAKPACK" + len(index).to_bytes(4, "big") + len(data).to_bytes(4, "big") + index + data
               + b"XPAKSTOP")
    Path(path).write_bytes(payload + segment + len(segment).to_bytes(4, "big") + b"STOP")


def test_package_revisions_reads_xpak_packages_too(tmp_path):
    revisions = {"gentoo": REVISION}
    xpak_package(tmp_path / "hello-1.0-1.xpak", {"CATEGORY": b"app-misc\n", "PF": b"hello-1.0\n",
                                                 "REPO_REVISIONS": json.dumps(revisions).encode()})
    xpak_package(tmp_path / "none-1.tbz2", {"CATEGORY": b"app-misc\n", "PF": b"none-1\n"})
    assert B.package_revisions(str(tmp_path / "hello-1.0-1.xpak")) == revisions
    assert B.package_revisions(str(tmp_path / "none-1.tbz2")) == {}
    (tmp_path / "broken.tbz2").write_bytes(b"\0" * 100 + (1000).to_bytes(4, "big") + b"STOP")
    assert B.package_revisions(str(tmp_path / "broken.tbz2")) is None


def _entries(tmp_path, specs, index_revisions=True):
    make_pkgdir(tmp_path, specs, index_revisions=index_revisions)
    _header, entries, _text = B.validate_pkgdir(str(tmp_path))
    return entries, B.resolve_revisions(str(tmp_path), entries)


def test_check_revisions_accepts_the_pinned_commit(tmp_path):
    entries, revisions = _entries(tmp_path, [
        {"cpv": "app-misc/hello-1.0"},
        {"cpv": "app-misc/ov-1", "repo": "myoverlay", "repo_revisions": {"gentoo": REVISION, "myoverlay": OTHER}},
    ], index_revisions=False)
    B.check_revisions(entries, revisions, {"gentoo": REVISION})
    B.check_revisions(entries, revisions, {"gentoo": REVISION, "myoverlay": OTHER})
    B.check_revisions(entries, revisions, {})
    B.check_revisions(entries, revisions, None)


def test_check_revisions_refuses_another_commit(tmp_path):
    entries, revisions = _entries(tmp_path, [{"cpv": "app-misc/hello-1.0"},
                                             {"cpv": "app-misc/old-1", "repo_revisions": {"gentoo": OTHER}}])
    with pytest.raises(PublishError) as info:
        B.check_revisions(entries, revisions, {"gentoo": REVISION})
    assert str(info.value) == ("packages built from another tree than the pinned one: app-misc/old-1-1: "
                               "built from ::gentoo 222222222222, not the pinned 111111111111")


def test_check_revisions_refuses_missing_revisions(tmp_path):
    entries, revisions = _entries(tmp_path, [{"cpv": "app-misc/hello-1.0", "repo_revisions": None}],
                                  index_revisions=False)
    with pytest.raises(PublishError, match=r"app-misc/hello-1.0-1: no revision of ::gentoo recorded"):
        B.check_revisions(entries, revisions, {"gentoo": REVISION})
    # a file that is no gpkg: nothing can be read
    with pytest.raises(PublishError, match=r"app-misc/hello-1.0-1: its revisions cannot be read"):
        B.check_revisions(entries, {"app-misc/hello-1.0-1": None}, {"gentoo": REVISION})


# -- package lists ----------------------------------------------------------------------------
def test_compare_added_removed_rebuilt(src):
    _h, entries = B.parse_packages((src / "Packages").read_text())
    before = B.package_list(entries)
    assert [p["cpv"] for p in before] == sorted(p["cpv"] for p in before)
    assert before[0]["size"] == int(entries[0]["SIZE"]) and before[0]["sha1"] == entries[0]["SHA1"]
    change_package(src, "dev-libs/libfoo-2.3-r1")
    _h, entries = B.parse_packages((src / "Packages").read_text())
    after = [p for p in B.package_list(entries) if p["cpv"] != "sys-apps/bar-0.9"]
    after.append(dict(after[0], cpv="app-misc/new-1"))
    assert B.compare(before, after) == {"added": ["app-misc/new-1"], "removed": ["sys-apps/bar-0.9"],
                                        "rebuilt": ["dev-libs/libfoo-2.3-r1"]}
    assert B.compare(None, before)["added"] == sorted(p["cpv"] for p in before)
    assert B.compare(before, before) == {"added": [], "removed": [], "rebuilt": []}


# -- publish ------------------------------------------------------------------------------------
def test_first_publication_creates_a_complete_generation(src, dest):
    result = B.publish(params(src, dest, provenance={"snapshot": {"tag": "2026-11-19", "commit": REVISION}},
                              expect_revisions={"gentoo": REVISION}), now=at(1))
    generation = "20261120T030100Z"
    assert result["changed"] and result["generation"] == generation and result["previous"] is None
    assert os.readlink(dest / "current") == "generations/" + generation
    assert result["url_path"] == "generations/" + generation
    gen = dest / "generations" / generation
    source_files = {k: v[4] for k, v in tree(src).items() if v[0] == "file"}
    published = {k: v[4] for k, v in tree(gen).items() if v[0] == "file"}
    assert published.pop("manifest.json")
    assert published == source_files
    assert result["transfer"]["files"] == 6  # 4 packages + Packages + Packages.gz
    assert result["transfer"]["bytes"] == sum(v[2] for v in tree(src).values())
    manifest = json.loads((gen / "manifest.json").read_text())
    assert manifest["generation"] == generation and manifest["previous"] is None
    assert manifest["stack"] == "stack1" and manifest["source"] == str(src)
    assert manifest["published_at"] == "2026-11-20T03:01:00Z"
    assert manifest["changes"]["added"] == sorted(p["cpv"] for p in PKGS)
    assert [p["repo_revisions"] for p in manifest["packages"]] == [{"gentoo": REVISION}] * 4
    assert manifest["transfer"] == result["transfer"]
    assert (dest / "index.html").read_text().count('class="generation current"') == 1
    assert B.Stack(str(dest)).list() == [generation]
    B.validate_pkgdir(str(dest / "current"))
    assert not B.Stack(str(dest)).partials()


def test_check_apply_apply_check(src, dest):
    """STYLE 13: check, apply, apply again (no change), check again (no change)."""
    before_src = tree(src)
    check = B.run_publication(params(src, dest), check_mode=True)
    assert check["changed"] and check["packages"] == 4
    assert check["changes"]["added"] == sorted(p["cpv"] for p in PKGS)
    assert not dest.exists() and not dest.parent.exists()
    apply = B.run_publication(params(src, dest))
    assert apply["changed"]
    published = tree(dest)
    again = B.run_publication(params(src, dest))
    assert not again["changed"] and again["generation"] == apply["generation"]
    assert again["transfer"] == {"files": 0, "bytes": 0} and again["packages"] == 4
    recheck = B.run_publication(params(src, dest), check_mode=True)
    assert not recheck["changed"] and recheck["generation"] == apply["generation"]
    assert tree(dest) == published
    assert tree(src) == before_src


def test_check_mode_predicts_a_change_and_writes_nothing(src, dest):
    B.publish(params(src, dest), now=at(1))
    change_package(src, "dev-libs/libfoo-2.3-r1")
    before = tree(dest)
    result = B.publish(params(src, dest, expect_revisions={"gentoo": REVISION}), check_mode=True, now=at(2))
    assert result["changed"] and result["changes"] == {"added": [], "removed": [],
                                                       "rebuilt": ["dev-libs/libfoo-2.3-r1"]}
    assert tree(dest) == before
    # check mode reads the revisions of a local source, too
    change_package(src, "app-misc/hello-1.0", repo_revisions={"gentoo": OTHER}, salt=2)
    with pytest.raises(PublishError, match="app-misc/hello-1.0-2: built from ::gentoo 222222222222"):
        B.publish(params(src, dest, expect_revisions={"gentoo": REVISION}), check_mode=True, now=at(3))
    assert tree(dest) == before


def test_one_changed_package_among_many_is_the_only_one_copied(tmp_path, dest):
    src = tmp_path / "many"
    specs = [{"cpv": "cat-%d/pkg%d-1.%d" % (i % 5, i, i), "size": 2000 + 1000 * i} for i in range(40)]
    make_pkgdir(src, specs, gz=True)
    first = B.publish(params(src, dest), now=at(1))
    assert first["transfer"]["files"] == 42
    new = change_package(src, "cat-3/pkg13-1.13")
    second = B.publish(params(src, dest), now=at(2))
    index_bytes = (src / "Packages").stat().st_size + (src / "Packages.gz").stat().st_size
    assert second["transfer"]["files"] == 3
    assert second["transfer"]["bytes"] == int(new["SIZE"]) + index_bytes
    assert second["transfer"]["total_bytes"] == sum(v[2] for v in tree(src).values())
    assert second["changes"] == {"added": [], "removed": [], "rebuilt": ["cat-3/pkg13-1.13"]}
    old_gen, new_gen = dest / "generations" / first["generation"], dest / "generations" / second["generation"]
    _h, entries = read_index(src)
    for entry in entries:
        if entry["CPV"] == "cat-3/pkg13-1.13":
            assert not (old_gen / entry["PATH"]).exists()
            assert os.stat(new_gen / entry["PATH"]).st_nlink == 1
        else:
            assert os.stat(old_gen / entry["PATH"]).st_ino == os.stat(new_gen / entry["PATH"]).st_ino
    assert not (new_gen / "cat-3/pkg13/pkg13-1.13-1.gpkg.tar").exists()
    assert (old_gen / "cat-3/pkg13/pkg13-1.13-1.gpkg.tar").exists()
    B.validate_pkgdir(str(old_gen))
    B.validate_pkgdir(str(new_gen))
    manifest = json.loads((new_gen / "manifest.json").read_text())
    assert manifest["previous"] == first["generation"] and manifest["transfer"]["files"] == 3


def test_rebuild_in_place_keeps_the_previous_generation_intact(src, dest):
    first = B.publish(params(src, dest), now=at(1))
    old = dest / "generations" / first["generation"]
    before = tree(old)
    new = change_package(src, "app-misc/hello-1.0", new_build=False)
    second = B.publish(params(src, dest), now=at(2))
    assert second["transfer"]["files"] == 3 and second["changes"]["rebuilt"] == ["app-misc/hello-1.0"]
    assert sha1(dest / "current" / new["PATH"]) == new["SHA1"]
    assert tree(old) == before


def test_rebuild_in_place_within_the_same_second_and_size(src, dest):
    """A gpkg is a tar padded to 10 KiB: a rebuild often has the very same size. If it also has
    the same mtime (seconds), rsync's quick check must not hard-link the old file."""
    B.publish(params(src, dest), now=at(1))
    new = change_package(src, "app-misc/hello-1.0", new_build=False, same_mtime=True)
    old_stat = os.stat(dest / "current" / new["PATH"])
    assert old_stat.st_size == int(new["SIZE"]) and int(old_stat.st_mtime) == int(new["MTIME"])
    os.utime(src / new["PATH"], ns=(old_stat.st_atime_ns, old_stat.st_mtime_ns + 1000))
    result = B.publish(params(src, dest), now=at(2))
    assert result["changed"] and result["changes"]["rebuilt"] == ["app-misc/hello-1.0"]
    assert sha1(dest / "current" / new["PATH"]) == new["SHA1"]


def test_removed_and_added_packages(src, dest):
    B.publish(params(src, dest), now=at(1))
    header, entries = read_index(src)
    gone = next(e for e in entries if e["CPV"] == "sys-apps/bar-0.9")
    os.unlink(src / gone["PATH"])
    write_index(src, header, [e for e in entries if e is not gone])
    result = B.publish(params(src, dest), now=at(2))
    assert result["changes"] == {"added": [], "removed": ["sys-apps/bar-0.9"], "rebuilt": []}
    assert not (dest / "current" / gone["PATH"]).exists()
    assert result["packages"] == 3


def test_keep_prunes_old_generations_but_never_the_current_one(src, dest):
    ids = []
    for minute in range(1, 5):
        change_package(src, "sys-apps/bar-0.9", salt=minute)
        ids.append(B.publish(params(src, dest, keep=2), now=at(minute))["generation"])
    stack = B.Stack(str(dest))
    assert stack.list() == ids[-2:]
    # roll back to the older of the two, then prune to one: the newest and the current stay
    B.rollback(params(None, dest, rollback_to=ids[-2]))
    assert B._prune(stack, 1) == []
    assert stack.list() == ids[-2:] and stack.current() == ids[-2]
    change_package(src, "sys-apps/bar-0.9", salt=9)
    last = B.publish(params(src, dest, keep=1), now=at(9))
    assert stack.list() == [last["generation"]] and sorted(last["pruned"]) == ids[-2:]
    assert not stack.partials()
    with pytest.raises(PublishError, match="keep must be at least 1, got -1"):
        B.publish(params(src, dest, keep=-1))


def test_generation_ids_are_never_reused_and_sort_in_publication_order(src, dest):
    """Several publications in one second: the ids get a suffix; a pruned id must not come
    back (a client holding the old index would fetch another generation's files)."""
    ids = []
    for salt in range(1, 13):
        change_package(src, "sys-apps/bar-0.9", salt=salt)
        ids.append(B.publish(params(src, dest, keep=2), now=at(1))["generation"])
    assert len(set(ids)) == len(ids)
    stack = B.Stack(str(dest))
    assert stack.list() == ids[-2:] and stack.current() == ids[-1]
    assert json.loads((dest / "current" / "manifest.json").read_text())["previous"] == ids[-2]
    # a clock that went back still gives an id after the latest
    change_package(src, "sys-apps/bar-0.9", salt=20)
    back = B.publish(params(src, dest, keep=2), now=at(0))["generation"]
    assert stack.list() == [ids[-1], back] and stack.current() == back


def test_rollback_switches_current_and_refuses_unknown_ids(src, dest):
    first = B.publish(params(src, dest), now=at(1))["generation"]
    change_package(src, "sys-apps/bar-0.9")
    second = B.publish(params(src, dest), now=at(2))["generation"]
    before = tree(dest)
    check = B.run_publication(params(None, dest, rollback_to=first), check_mode=True)
    assert check["changed"] and check["previous"] == second and tree(dest) == before
    result = B.run_publication(params(None, dest, rollback_to=first))
    assert result == {"changed": True, "dest": str(dest), "generation": first, "previous": second}
    assert os.readlink(dest / "current") == "generations/" + first
    page = (dest / "index.html").read_text()
    assert '<section class="generation current" id="g-%s">' % first in page
    assert not B.run_publication(params(None, dest, rollback_to=first))["changed"]
    assert not B.run_publication(params(None, dest, rollback_to=first), check_mode=True)["changed"]
    after = tree(dest)
    for bad in ("20200101T000000Z", "../generations/" + first, "current"):
        with pytest.raises(PublishError) as info:
            B.run_publication(params(None, dest, rollback_to=bad))
        assert str(info.value) == "cannot roll back %s to %s: no such generation (have: %s, %s)" % (
            dest, bad, first, second)
    assert tree(dest) == after
    # publishing again after a rollback links against the rolled-back generation
    third = B.publish(params(src, dest), now=at(3))
    assert third["previous"] == first and third["changes"]["rebuilt"] == ["sys-apps/bar-0.9"]


def test_rollback_refuses_a_damaged_generation(src, dest):
    first = B.publish(params(src, dest), now=at(1))["generation"]
    change_package(src, "sys-apps/bar-0.9")
    B.publish(params(src, dest), now=at(2))
    os.unlink(dest / "generations" / first / read_index(src)[1][0]["PATH"])
    before = tree(dest)
    with pytest.raises(PublishError, match="file missing"):
        B.rollback(params(None, dest, rollback_to=first))
    assert tree(dest) == before


@pytest.mark.parametrize("spoil, expect, message", [
    (_wrong_checksum, None, "dev-lang/baz/baz-1.2.3-1.gpkg.tar): MD5"),
    (_missing, None, "hello-1.0-1.gpkg.tar): file missing"),
    (lambda src: change_package(src, "dev-libs/libfoo-2.3-r1", repo_revisions={"gentoo": OTHER}),
     {"gentoo": REVISION}, "dev-libs/libfoo-2.3-r1-2: built from ::gentoo 222222222222, not the pinned 111111111111"),
    (lambda src: change_package(src, "dev-libs/libfoo-2.3-r1", repo_revisions=None, index_revisions=False),
     {"gentoo": REVISION}, "dev-libs/libfoo-2.3-r1-2: no revision of ::gentoo recorded"),
])
def test_a_refused_publication_changes_nothing(src, dest, spoil, expect, message):
    B.publish(params(src, dest, expect_revisions={"gentoo": REVISION}), now=at(1))
    change_package(src, "sys-apps/bar-0.9")
    spoil(src)
    before = tree(dest)
    with pytest.raises(PublishError) as info:
        B.publish(params(src, dest, expect_revisions=expect), now=at(2))
    assert message in str(info.value)
    assert tree(dest) == before
    assert not B.Stack(str(dest)).partials()


def test_a_leftover_partial_is_removed_by_the_next_publication(src, dest):
    first = B.publish(params(src, dest), now=at(1))["generation"]
    partial = dest / "generations" / ".partial-20261120T030200Z"
    (partial / "app-misc" / "hello").mkdir(parents=True)
    (partial / "app-misc" / "hello" / ".hello-1.0-1.gpkg.tar.Xy12ab").write_bytes(b"\0" * 1000)
    stack = B.Stack(str(dest))
    assert stack.list() == [first] and stack.current() == first
    change_package(src, "sys-apps/bar-0.9")
    result = B.publish(params(src, dest), now=at(2))
    assert not partial.exists() and not stack.partials()
    assert stack.list() == [first, result["generation"]]


def test_a_leftover_partial_is_removed_by_an_unchanged_publication_too(src, dest):
    first = B.publish(params(src, dest), now=at(1))["generation"]
    partial = dest / "generations" / ".partial-20261120T030200Z"
    partial.mkdir()
    (partial / "Packages").write_text("half\n")
    before = tree(dest / "generations" / first)
    assert B.publish(params(src, dest), check_mode=True)["changed"] is False
    assert partial.exists(), "check mode removes nothing"
    assert B.publish(params(src, dest))["changed"] is False
    assert not partial.exists() and tree(dest / "generations" / first) == before


def test_an_unchanged_source_is_refused_when_the_pin_moved(src, dest):
    B.publish(params(src, dest, expect_revisions={"gentoo": REVISION}), now=at(1))
    assert B.publish(params(src, dest, expect_revisions={"gentoo": REVISION}))["changed"] is False
    other = "f" * 40
    with pytest.raises(PublishError, match="not the pinned ffffffffffff"):
        B.publish(params(src, dest, expect_revisions={"gentoo": other}))


def _publisher(src, dest):
    code = ("import sys, json; sys.path[:0] = %r\n"
            "from ansible_collections.gentoo_binhost.infra.plugins.module_utils._binpkg import publish\n"
            "print(json.dumps(publish(json.loads(sys.argv[1]))))\n" % [str(ROOT / ".collections")])
    return subprocess.Popen([sys.executable, "-c", code, json.dumps(params(src, dest))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def test_a_publication_killed_during_rsync_leaves_current_intact(src, dest, tmp_path):
    first = B.publish(params(src, dest), now=at(1))["generation"]
    served = tree(dest)
    big = src / "dev-util" / "huge" / "huge-1-1.gpkg.tar"
    big.parent.mkdir(parents=True)
    with open(big, "wb") as handle:
        handle.truncate(3 << 30)  # sparse: rsync reads and writes 3 GiB of zeros
    header, entries = read_index(src)
    entries.append({"CPV": "dev-util/huge-1", "BUILD_ID": "1", "PATH": "dev-util/huge/huge-1-1.gpkg.tar",
                    "SIZE": str(3 << 30), "MD5": "0" * 32, "REPO": "gentoo"})
    write_index(src, header, entries)
    proc = _publisher(src, dest)
    try:
        deadline = time.time() + 60
        copying = []
        while time.time() < deadline and not copying:
            partial_dirs = list((dest / "generations").glob(".partial-*"))
            copying = [p for d in partial_dirs for p in d.rglob(".huge-1-1.gpkg.tar.*") if p.stat().st_size > 0]
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        assert copying, "rsync never started writing the large file"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the publisher and its rsync: its own session
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    stack = B.Stack(str(dest))
    assert stack.current() == first and stack.list() == [first]
    assert len(stack.partials()) == 1
    after = tree(dest)
    partial_name = "generations/" + stack.partials()[0]
    assert {k: v for k, v in after.items() if not k.startswith(partial_name)} == served
    # the next run (the huge package dropped again) completes and removes the partial
    os.unlink(big)
    write_index(src, header, entries[:-1])
    change_package(src, "sys-apps/bar-0.9")
    result = B.publish(params(src, dest), now=at(3))
    assert result["changed"] and result["previous"] == first
    assert stack.partials() == [] and stack.list() == [first, result["generation"]]
    B.validate_pkgdir(str(dest / "current"))


def test_base_url_sets_the_uri_of_the_generation_only(src, dest):
    first = B.publish(params(src, dest), now=at(1))["generation"]
    old = dest / "generations" / first
    old_tree = tree(old)
    assert (old / "Packages").read_bytes() == (src / "Packages").read_bytes()
    # Same source, now with base_url: the copied index starts as a hard link to the previous one.
    result = B.publish(params(src, dest, base_url="http://binhost.example.org/stack1/"), now=at(2))
    assert result["changed"]
    gen = dest / "generations" / result["generation"]
    uri = "URI: http://binhost.example.org/stack1/generations/%s" % result["generation"]
    text = (gen / "Packages").read_text()
    assert uri in text.partition("\n\n")[0].splitlines()
    assert gzip.decompress((gen / "Packages.gz").read_bytes()).decode() == text
    assert text.partition("\n\n")[2] == (src / "Packages").read_text().partition("\n\n")[2]
    assert tree(old) == old_tree
    assert "URI:" not in (old / "Packages").read_text()
    B.validate_pkgdir(str(gen))
    # and again: nothing to do
    assert not B.publish(params(src, dest, base_url="http://binhost.example.org/stack1/"), now=at(3))["changed"]


class _Checker(HTMLParser):
    VOID = {"meta", "br", "img", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.text, self.classes = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.classes += [(tag, dict(attrs).get("class"), "".join(self.text[-1:]))]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append("unexpected </%s> with %s open" % (tag, self.stack))
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def test_render_index_lists_generations_and_changes(src, dest):
    prov = {"snapshot": {"tag": "2026-11-19<script>", "commit": REVISION}, "portage_version": "3.0.83",
            "overlays": [{"name": "myoverlay", "commit": OTHER}], "stage": {"file": "/x/stage3-amd64.tar.xz"}}
    first = B.publish(params(src, dest, provenance=prov, name="Stack <one>"), now=at(1))["generation"]
    change_package(src, "dev-libs/libfoo-2.3-r1")
    second = B.publish(params(src, dest, provenance=prov, name="Stack <one>"), now=at(2))["generation"]
    page = (dest / "index.html").read_text()
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert page.startswith("<!DOCTYPE html>") and checker.errors == [] and checker.stack == []
    text = "".join(checker.text)
    assert "<script>" not in page and "2026-11-19<script>" in text
    assert "Stack <one>" in text
    assert page.index('id="g-%s"' % second) < page.index('id="g-%s"' % first)
    assert '<section class="generation current" id="g-%s">' % second in page
    assert '<a href="generations/%s/">%s</a>' % (first, first) in page
    assert '<li class="rebuilt">dev-libs/libfoo-2.3-r1</li>' in page
    for cpv in (p["cpv"] for p in PKGS):
        assert '<li class="added">%s</li>' % cpv in page
    assert "myoverlay 222222222222" in text and "stage3-amd64.tar.xz" in text
    assert B.render_index("Stack <one>", B.Stack(str(dest))) == page


def test_publish_refuses_a_missing_source_and_a_relative_dest(tmp_path, dest):
    with pytest.raises(PublishError, match="no Packages index in %s" % (tmp_path / "nope")):
        B.publish(params(tmp_path / "nope", dest))
    with pytest.raises(PublishError, match="dest must be an absolute path, got 'relative/dir'"):
        B.publish(params(tmp_path, "relative/dir"))
    assert not dest.exists()


def test_the_module_check_apply_apply_check(src, dest):
    """STYLE 13 through the real ansible CLI, then a rollback."""
    from ansible_run import run_module

    args = {"src": str(src), "dest": str(dest), "keep": 3, "expect_revisions": {"gentoo": REVISION},
            "base_url": "http://127.0.0.1:8080/stack1"}
    check = run_module("gentoo_binhost.infra.binpkg_publish", args, check=True)
    assert check["changed"] and not check["failed"] and not dest.exists(), check
    apply = run_module("gentoo_binhost.infra.binpkg_publish", args)
    assert apply["changed"] and apply["transfer"]["files"] == 6, apply
    again = run_module("gentoo_binhost.infra.binpkg_publish", args)
    assert not again["changed"] and again["generation"] == apply["generation"]
    recheck = run_module("gentoo_binhost.infra.binpkg_publish", args, check=True)
    assert not recheck["changed"]
    bad = run_module("gentoo_binhost.infra.binpkg_publish", {"dest": str(dest), "rollback_to": "20200101T000000Z"})
    assert bad["failed"] and "cannot roll back %s to 20200101T000000Z: no such generation" % dest in bad["msg"]
