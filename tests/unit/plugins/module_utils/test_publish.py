"""binpkg_publish logic with real gpkg files (real zstd), real rsync and real processes.

The PKGDIRs come from tests/fixtures/pkgdir.py: Portage's index format and gpkg layout.
"""
import gzip
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pkgdir import REVISION, change_package, make_pkgdir, read_index, write_index
from testkit import COLLECTIONS_PATH
from publishing import (
    OTHER,
    PKGS,
    at,
    claim_in_index,
    flip_a_byte_of_the_second_package,
    publish_params,
    remove_first_package,
    tree,
)

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._packages_index import (
    PublishError,
    parse_packages,
    validate_pkgdir,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._publish import (
    compare,
    package_list,
    publish,
    rollback,
    run_publication,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._stack import Stack


def sha1(path):
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def test_publish_refuses_an_index_that_lies_about_the_tree(tmp_path, dest):
    src = tmp_path / "pkgdir"
    make_pkgdir(src, [{"cpv": "app-misc/hello-1.0", "repo_revisions": {"gentoo": OTHER}},
                      {"cpv": "sys-apps/bar-0.9"}])
    claim_in_index(src, {"gentoo": REVISION})
    for check_mode in (True, False):
        with pytest.raises(PublishError, match=r"the index says ::gentoo 111111111111, the package records "
                                               r"::gentoo 222222222222"):
            publish(publish_params(src, dest, expect_revisions={"gentoo": REVISION}), check_mode=check_mode, now=at(1))
        assert not (dest / "current").exists() and Stack(str(dest)).list() == []
        assert Stack(str(dest)).partials() == []


def test_compare_added_removed_rebuilt(src):
    _h, entries = parse_packages((src / "Packages").read_text())
    before = package_list(entries)
    assert [p["cpv"] for p in before] == sorted(p["cpv"] for p in before)
    assert before[0]["size"] == int(entries[0]["SIZE"]) and before[0]["sha1"] == entries[0]["SHA1"]
    change_package(src, "dev-libs/libfoo-2.3-r1")
    _h, entries = parse_packages((src / "Packages").read_text())
    after = [p for p in package_list(entries) if p["cpv"] != "sys-apps/bar-0.9"]
    after.append(dict(after[0], cpv="app-misc/new-1"))
    assert compare(before, after) == {
        "added": ["app-misc/new-1"], "removed": ["sys-apps/bar-0.9"], "rebuilt": ["dev-libs/libfoo-2.3-r1"]}
    assert compare(None, before)["added"] == sorted(p["cpv"] for p in before)
    assert compare(before, before) == {"added": [], "removed": [], "rebuilt": []}


def test_first_publication_creates_a_complete_generation(src, dest):
    result = publish(publish_params(src, dest, provenance={"snapshot": {"tag": "2026-11-19", "commit": REVISION}},
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
    assert Stack(str(dest)).list() == [generation]
    validate_pkgdir(str(dest / "current"))
    assert not Stack(str(dest)).partials()


def test_check_apply_apply_check(src, dest):
    """Check, apply, apply again (no change), check again (no change)."""
    before_src = tree(src)
    check = run_publication(publish_params(src, dest), check_mode=True)
    assert check["changed"] and check["packages"] == 4
    assert check["changes"]["added"] == sorted(p["cpv"] for p in PKGS)
    assert not dest.exists() and not dest.parent.exists()
    apply = run_publication(publish_params(src, dest))
    assert apply["changed"]
    published = tree(dest)
    again = run_publication(publish_params(src, dest))
    assert not again["changed"] and again["generation"] == apply["generation"]
    assert again["transfer"] == {"files": 0, "bytes": 0} and again["packages"] == 4
    recheck = run_publication(publish_params(src, dest), check_mode=True)
    assert not recheck["changed"] and recheck["generation"] == apply["generation"]
    assert tree(dest) == published
    assert tree(src) == before_src


def test_check_mode_predicts_a_change_and_writes_nothing(src, dest):
    publish(publish_params(src, dest), now=at(1))
    change_package(src, "dev-libs/libfoo-2.3-r1")
    before = tree(dest)
    result = publish(publish_params(src, dest, expect_revisions={"gentoo": REVISION}), check_mode=True, now=at(2))
    assert result["changed"] and result["changes"] == {"added": [], "removed": [],
                                                       "rebuilt": ["dev-libs/libfoo-2.3-r1"]}
    assert tree(dest) == before
    # check mode reads the revisions of a local source, too
    change_package(src, "app-misc/hello-1.0", repo_revisions={"gentoo": OTHER}, salt=2)
    with pytest.raises(PublishError, match="app-misc/hello-1.0-2: built from ::gentoo 222222222222"):
        publish(publish_params(src, dest, expect_revisions={"gentoo": REVISION}), check_mode=True, now=at(3))
    assert tree(dest) == before


def test_one_changed_package_among_many_is_the_only_one_copied(tmp_path, dest):
    src = tmp_path / "many"
    specs = [{"cpv": "cat-%d/pkg%d-1.%d" % (i % 5, i, i), "size": 2000 + 1000 * i} for i in range(40)]
    make_pkgdir(src, specs, gz=True)
    first = publish(publish_params(src, dest), now=at(1))
    assert first["transfer"]["files"] == 42
    new = change_package(src, "cat-3/pkg13-1.13")
    second = publish(publish_params(src, dest), now=at(2))
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
    validate_pkgdir(str(old_gen))
    validate_pkgdir(str(new_gen))
    manifest = json.loads((new_gen / "manifest.json").read_text())
    assert manifest["previous"] == first["generation"] and manifest["transfer"]["files"] == 3


def test_rebuild_in_place_keeps_the_previous_generation_intact(src, dest):
    first = publish(publish_params(src, dest), now=at(1))
    old = dest / "generations" / first["generation"]
    before = tree(old)
    new = change_package(src, "app-misc/hello-1.0", new_build=False)
    second = publish(publish_params(src, dest), now=at(2))
    assert second["transfer"]["files"] == 3 and second["changes"]["rebuilt"] == ["app-misc/hello-1.0"]
    assert sha1(dest / "current" / new["PATH"]) == new["SHA1"]
    assert tree(old) == before


def test_rebuild_in_place_within_the_same_second_and_size(src, dest):
    """A gpkg is a tar padded to 10 KiB: a rebuild often has the very same size. If it also has
    the same mtime (seconds), rsync's quick check must not hard-link the old file."""
    publish(publish_params(src, dest), now=at(1))
    new = change_package(src, "app-misc/hello-1.0", new_build=False, same_mtime=True)
    old_stat = os.stat(dest / "current" / new["PATH"])
    assert old_stat.st_size == int(new["SIZE"]) and int(old_stat.st_mtime) == int(new["MTIME"])
    os.utime(src / new["PATH"], ns=(old_stat.st_atime_ns, old_stat.st_mtime_ns + 1000))
    result = publish(publish_params(src, dest), now=at(2))
    assert result["changed"] and result["changes"]["rebuilt"] == ["app-misc/hello-1.0"]
    assert sha1(dest / "current" / new["PATH"]) == new["SHA1"]


def test_removed_and_added_packages(src, dest):
    publish(publish_params(src, dest), now=at(1))
    header, entries = read_index(src)
    gone = next(e for e in entries if e["CPV"] == "sys-apps/bar-0.9")
    os.unlink(src / gone["PATH"])
    write_index(src, header, [e for e in entries if e is not gone])
    result = publish(publish_params(src, dest), now=at(2))
    assert result["changes"] == {"added": [], "removed": ["sys-apps/bar-0.9"], "rebuilt": []}
    assert not (dest / "current" / gone["PATH"]).exists()
    assert result["packages"] == 3


def test_keep_prunes_old_generations_but_never_the_current_one(src, dest):
    ids = []
    for minute in range(1, 5):
        change_package(src, "sys-apps/bar-0.9", salt=minute)
        ids.append(publish(publish_params(src, dest, keep=2), now=at(minute))["generation"])
    stack = Stack(str(dest))
    assert stack.list() == ids[-2:]
    # roll back to the older of the two, then prune to one: the newest and the current stay
    rollback(publish_params(None, dest, rollback_to=ids[-2]))
    assert stack.prune(1) == []
    assert stack.list() == ids[-2:] and stack.current() == ids[-2]
    change_package(src, "sys-apps/bar-0.9", salt=9)
    last = publish(publish_params(src, dest, keep=1), now=at(9))
    assert stack.list() == [last["generation"]] and sorted(last["pruned"]) == ids[-2:]
    assert not stack.partials()


@pytest.mark.parametrize("keep", [0, -1, True])
def test_keep_out_of_range_is_refused_before_anything_changes(src, dest, keep):
    """0 is not taken for the default: a publication that would keep nothing is refused."""
    publish(publish_params(src, dest), now=at(1))
    change_package(src, "sys-apps/bar-0.9")
    before = tree(dest)
    for check_mode in (True, False):
        with pytest.raises(PublishError) as info:
            publish(publish_params(src, dest, keep=keep), check_mode=check_mode, now=at(2))
        assert str(info.value) == ("keep must be a whole number of generations, at least 1 (the current one is "
                                   "always kept); got %r" % (keep,))
        assert tree(dest) == before


def test_generation_ids_are_never_reused_and_sort_in_publication_order(src, dest):
    """Several publications in one second: the ids get a suffix; a pruned id must not come
    back (a client holding the old index would fetch another generation's files)."""
    ids = []
    for salt in range(1, 13):
        change_package(src, "sys-apps/bar-0.9", salt=salt)
        ids.append(publish(publish_params(src, dest, keep=2), now=at(1))["generation"])
    assert len(set(ids)) == len(ids)
    stack = Stack(str(dest))
    assert stack.list() == ids[-2:] and stack.current() == ids[-1]
    assert json.loads((dest / "current" / "manifest.json").read_text())["previous"] == ids[-2]
    # a clock that went back still gives an id after the latest
    change_package(src, "sys-apps/bar-0.9", salt=20)
    back = publish(publish_params(src, dest, keep=2), now=at(0))["generation"]
    assert stack.list() == [ids[-1], back] and stack.current() == back


def test_rollback_switches_current_and_refuses_unknown_ids(src, dest):
    first = publish(publish_params(src, dest), now=at(1))["generation"]
    change_package(src, "sys-apps/bar-0.9")
    second = publish(publish_params(src, dest), now=at(2))["generation"]
    before = tree(dest)
    check = run_publication(publish_params(None, dest, rollback_to=first), check_mode=True)
    assert check["changed"] and check["previous"] == second and tree(dest) == before
    result = run_publication(publish_params(None, dest, rollback_to=first))
    assert result == {"changed": True, "dest": str(dest), "generation": first, "previous": second}
    assert os.readlink(dest / "current") == "generations/" + first
    page = (dest / "index.html").read_text()
    assert '<section class="generation current" id="g-%s">' % first in page
    assert not run_publication(publish_params(None, dest, rollback_to=first))["changed"]
    assert not run_publication(publish_params(None, dest, rollback_to=first), check_mode=True)["changed"]
    after = tree(dest)
    for bad in ("20200101T000000Z", "../generations/" + first, "current"):
        with pytest.raises(PublishError) as info:
            run_publication(publish_params(None, dest, rollback_to=bad))
        assert str(info.value) == "cannot roll back %s to %s: no such generation (have: %s, %s)" % (
            dest, bad, first, second)
    assert tree(dest) == after
    # publishing again after a rollback links against the rolled-back generation
    third = publish(publish_params(src, dest), now=at(3))
    assert third["previous"] == first and third["changes"]["rebuilt"] == ["sys-apps/bar-0.9"]


def test_rollback_refuses_a_damaged_generation(src, dest):
    first = publish(publish_params(src, dest), now=at(1))["generation"]
    change_package(src, "sys-apps/bar-0.9")
    publish(publish_params(src, dest), now=at(2))
    os.unlink(dest / "generations" / first / read_index(src)[1][0]["PATH"])
    before = tree(dest)
    with pytest.raises(PublishError, match="file missing"):
        rollback(publish_params(None, dest, rollback_to=first))
    assert tree(dest) == before


@pytest.mark.parametrize("spoil, expect, message", [
    (flip_a_byte_of_the_second_package, None, "dev-lang/baz/baz-1.2.3-1.gpkg.tar): MD5"),
    (remove_first_package, None, "hello-1.0-1.gpkg.tar): file missing"),
    (lambda src: change_package(src, "dev-libs/libfoo-2.3-r1", repo_revisions={"gentoo": OTHER}),
     {"gentoo": REVISION}, "dev-libs/libfoo-2.3-r1-2: built from ::gentoo 222222222222, not the pinned 111111111111"),
    (lambda src: change_package(src, "dev-libs/libfoo-2.3-r1", repo_revisions=None, index_revisions=False),
     {"gentoo": REVISION}, "dev-libs/libfoo-2.3-r1-2: no revision of ::gentoo recorded"),
])
def test_a_refused_publication_changes_nothing(src, dest, spoil, expect, message):
    publish(publish_params(src, dest, expect_revisions={"gentoo": REVISION}), now=at(1))
    change_package(src, "sys-apps/bar-0.9")
    spoil(src)
    before = tree(dest)
    with pytest.raises(PublishError) as info:
        publish(publish_params(src, dest, expect_revisions=expect), now=at(2))
    assert message in str(info.value)
    assert tree(dest) == before
    assert not Stack(str(dest)).partials()


def test_a_leftover_partial_is_removed_by_the_next_publication(src, dest):
    first = publish(publish_params(src, dest), now=at(1))["generation"]
    partial = dest / "generations" / ".partial-20261120T030200Z"
    (partial / "app-misc" / "hello").mkdir(parents=True)
    (partial / "app-misc" / "hello" / ".hello-1.0-1.gpkg.tar.Xy12ab").write_bytes(b"\0" * 1000)
    stack = Stack(str(dest))
    assert stack.list() == [first] and stack.current() == first
    change_package(src, "sys-apps/bar-0.9")
    result = publish(publish_params(src, dest), now=at(2))
    assert not partial.exists() and not stack.partials()
    assert stack.list() == [first, result["generation"]]


def test_a_leftover_partial_is_removed_by_an_unchanged_publication_too(src, dest):
    first = publish(publish_params(src, dest), now=at(1))["generation"]
    partial = dest / "generations" / ".partial-20261120T030200Z"
    partial.mkdir()
    (partial / "Packages").write_text("half\n")
    before = tree(dest / "generations" / first)
    assert publish(publish_params(src, dest), check_mode=True)["changed"] is False
    assert partial.exists(), "check mode removes nothing"
    assert publish(publish_params(src, dest))["changed"] is False
    assert not partial.exists() and tree(dest / "generations" / first) == before


@pytest.mark.parametrize("record, message", [
    (b"{not json", "the build record %s/build.json is not valid JSON: "),
    (b'{"packages": {}}', "the build record %s/build.json is not a build record (no package list)"),
])
def test_a_broken_build_record_in_the_source_is_refused(src, dest, record, message):
    publish(publish_params(src, dest), now=at(1))
    (src / "build.json").write_bytes(record)
    before = tree(dest)
    for check_mode in (True, False):
        with pytest.raises(PublishError) as info:
            publish(publish_params(src, dest), check_mode=check_mode, now=at(2))
        assert str(info.value).startswith(message % src)
        assert tree(dest) == before


def test_an_unchanged_source_is_refused_when_the_pin_moved(src, dest):
    publish(publish_params(src, dest, expect_revisions={"gentoo": REVISION}), now=at(1))
    assert publish(publish_params(src, dest, expect_revisions={"gentoo": REVISION}))["changed"] is False
    other = "f" * 40
    with pytest.raises(PublishError, match="not the pinned ffffffffffff"):
        publish(publish_params(src, dest, expect_revisions={"gentoo": other}))


def _publisher(src, dest):
    code = ("import sys, json; sys.path[:0] = %r\n"
            "from ansible_collections.gentoo_binhost.infra.plugins.module_utils._publish import publish\n"
            "print(json.dumps(publish(json.loads(sys.argv[1]))))\n" % [str(COLLECTIONS_PATH)])
    return subprocess.Popen([sys.executable, "-c", code, json.dumps(publish_params(src, dest))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def test_a_publication_killed_during_rsync_leaves_current_intact(src, dest, tmp_path):
    first = publish(publish_params(src, dest), now=at(1))["generation"]
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
    stack = Stack(str(dest))
    assert stack.current() == first and stack.list() == [first]
    assert len(stack.partials()) == 1
    after = tree(dest)
    partial_name = "generations/" + stack.partials()[0]
    assert {k: v for k, v in after.items() if not k.startswith(partial_name)} == served
    # the next run (the huge package dropped again) completes and removes the partial
    os.unlink(big)
    write_index(src, header, entries[:-1])
    change_package(src, "sys-apps/bar-0.9")
    result = publish(publish_params(src, dest), now=at(3))
    assert result["changed"] and result["previous"] == first
    assert stack.partials() == [] and stack.list() == [first, result["generation"]]
    validate_pkgdir(str(dest / "current"))


def test_base_url_sets_the_uri_of_the_generation_only(src, dest):
    first = publish(publish_params(src, dest), now=at(1))["generation"]
    old = dest / "generations" / first
    old_tree = tree(old)
    assert (old / "Packages").read_bytes() == (src / "Packages").read_bytes()
    # Same source, now with base_url: the copied index starts as a hard link to the previous one.
    result = publish(publish_params(src, dest, base_url="http://binhost.example.org/stack1/"), now=at(2))
    assert result["changed"]
    gen = dest / "generations" / result["generation"]
    uri = "URI: http://binhost.example.org/stack1/generations/%s" % result["generation"]
    text = (gen / "Packages").read_text()
    assert uri in text.partition("\n\n")[0].splitlines()
    assert gzip.decompress((gen / "Packages.gz").read_bytes()).decode() == text
    assert text.partition("\n\n")[2] == (src / "Packages").read_text().partition("\n\n")[2]
    assert tree(old) == old_tree
    assert "URI:" not in (old / "Packages").read_text()
    validate_pkgdir(str(gen))
    # and again: nothing to do
    assert not publish(publish_params(src, dest, base_url="http://binhost.example.org/stack1/"), now=at(3))["changed"]


def test_publish_refuses_a_missing_source_and_a_relative_dest(tmp_path, dest):
    with pytest.raises(PublishError, match="no Packages index in %s" % (tmp_path / "nope")):
        publish(publish_params(tmp_path / "nope", dest))
    with pytest.raises(PublishError, match="dest must be an absolute path, got 'relative/dir'"):
        publish(publish_params(tmp_path, "relative/dir"))
    assert not dest.exists()
