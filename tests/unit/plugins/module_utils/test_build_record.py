"""Build records (binpkg_collect) and their publication, with real gpkg files and rsync.

A chroot here is a directory with a PKGDIR in Portage's format (tests/fixtures/pkgdir.py,
real zstd-compressed gpkgs, binpkg-multi-instance layout) and a package database in
Portage's /var/db/pkg layout; the build itself is what tests/integration/test_build_host.py
and test_binpkg_server.py run with real Portage. Here every case of what a build leaves in a
PKGDIR is laid out on purpose: earlier pins, packages without REPO_REVISIONS (a stage without
git), links leading out of the chroot.
"""
import datetime
import json
import os
import shutil
from pathlib import Path

import pytest
import publishing
from pkgdir import REVISION, add_instance, install, make_pkgdir, read_index, write_index

from ansible_collections.gentoo_binhost.infra.plugins.module_utils import _build_record as R
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._binpkg_revisions import package_revisions
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._build_record import BuildRecordError
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._generations import id_key
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._packages_index import PublishError
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._publish import publish
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._stack import Stack

OLD = REVISION  # the pkgdir fixture's default commit: the earlier pin
NEW = "a" * 40
NEWER = "b" * 40
PKGS = ["app-misc/hello-1.0", "dev-libs/libfoo-2.3", "sys-apps/bar-0.9"]


@pytest.fixture
def chroot(tmp_path):
    """A chroot built once at the OLD pin: every package installed from that build."""
    root = tmp_path / "chroot"
    entries = make_pkgdir(root / "var/cache/binpkgs", [{"cpv": cpv} for cpv in PKGS])
    install(root, entries)
    return root


def params(root, dest, **extra):
    out = {"root": str(root), "dest": str(dest), "pkgdir": "/var/cache/binpkgs", "name": "stack1",
           "revisions": {"gentoo": OLD}, "provenance": {}, "keep": 3, "state": "recorded"}
    out.update(extra)
    return out


def publish_params(src, dest, expected):
    return publishing.publish_params(src, dest, expect_revisions=expected)


def build(root, dest, revisions, rebuild, *, package_revisions="pinned", salt=1):
    """One build as the build host runs it: ``state=started``, Portage adds a new instance of
    every package in ``rebuild`` and installs it, then ``state=recorded``. Packages record
    ``revisions`` themselves unless ``package_revisions`` is None (no git in the chroot)."""
    R.start(params(root, dest))
    pkgdir = root / "var/cache/binpkgs"
    for cpv in rebuild:
        own = dict(revisions) if package_revisions == "pinned" else package_revisions
        entry = add_instance(pkgdir, cpv, repo_revisions=own, salt=salt, index_revisions=own is not None)
        install(root, [entry])
    return R.record(params(root, dest, revisions=dict(revisions)))


def published_paths(stack):
    current = Path(stack, "current")
    _header, entries = read_index(current)
    return sorted(e["PATH"] for e in entries)


def test_a_full_build_at_a_moved_pin_publishes_exactly_that_build(chroot, tmp_path):
    dest, stack = tmp_path / "builds/stack1", tmp_path / "binhost/stack1"
    first = build(chroot, dest, {"gentoo": OLD}, PKGS)
    publish(publish_params(first["path"], stack, {"gentoo": OLD}))
    # The pin moves; emerge -e @world rebuilds everything. The PKGDIR keeps every old instance.
    result = build(chroot, dest, {"gentoo": NEW}, PKGS, salt=2)
    _header, all_entries = read_index(chroot / "var/cache/binpkgs")
    assert len(all_entries) == 3 * len(PKGS), "binpkg-multi-instance keeps the earlier builds"
    with pytest.raises(PublishError, match="not the pinned aaaaaaaaaaaa"):
        publish(publish_params(chroot / "var/cache/binpkgs", stack, {"gentoo": NEW}))

    assert result["changed"] and result["packages"] == len(PKGS) and result["built"] == sorted(PKGS)
    published = publish(publish_params(result["path"], stack, {"gentoo": NEW}))
    assert published["changed"] and published["packages"] == len(PKGS)
    newest = sorted(e["PATH"] for e in all_entries if e["BUILD_ID"] == "3")
    assert published_paths(stack) == newest
    manifest = Stack(str(stack)).manifest(published["generation"])
    assert [p["repo_revisions"] for p in manifest["packages"]] == [{"gentoo": NEW}] * len(PKGS)
    assert {p["revisions_from"] for p in manifest["packages"]} == {"package"}
    assert not (stack / "current" / "build.json").exists(), "the record stays with the build host"


def test_a_stage_without_git_binds_its_packages_through_the_record(chroot, tmp_path):
    dest, stack = tmp_path / "builds/stack1", tmp_path / "binhost/stack1"
    result = build(chroot, dest, {"gentoo": NEW}, PKGS, package_revisions=None)
    assert result["unbound"] == [] and result["built"] == sorted(PKGS)
    record = json.loads((Path(result["path"]) / "build.json").read_text())
    assert {p["bound_by"] for p in record["packages"]} == {"this build"}
    assert all(p["repo_revisions"] == {"gentoo": NEW} for p in record["packages"])
    for path in published_paths_of(result["path"]):
        assert package_revisions(str(Path(result["path"], path))) == {}, "no git: Portage recorded nothing"

    with pytest.raises(PublishError, match=r"built from ::gentoo aaaaaaaaaaaa, not the pinned bbbbbbbbbbbb"):
        publish(publish_params(result["path"], stack, {"gentoo": NEWER}))
    assert not (stack / "current").exists()
    published = publish(publish_params(result["path"], stack, {"gentoo": NEW}))
    manifest = Stack(str(stack)).manifest(published["generation"])
    assert {p["revisions_from"] for p in manifest["packages"]} == {"build record"}
    assert [p["repo_revisions"] for p in manifest["packages"]] == [{"gentoo": NEW}] * len(PKGS)
    # Without its record the same files are bound to nothing.
    bare = tmp_path / "bare"
    shutil.copytree(result["path"], bare)
    os.unlink(bare / "build.json")
    with pytest.raises(PublishError, match=r"no revision of ::gentoo recorded, neither in the package nor by a "
                                           r"build record"):
        publish(publish_params(bare, tmp_path / "binhost/other", {"gentoo": NEW}))


def published_paths_of(path):
    _header, entries = read_index(path)
    return [e["PATH"] for e in entries]


def test_a_record_binds_only_the_very_files_it_lists(chroot, tmp_path):
    dest = tmp_path / "builds/stack1"
    result = build(chroot, dest, {"gentoo": NEW}, PKGS, package_revisions=None)
    # Another file put in place of a recorded one (same path, the index rewritten to match it).
    src = tmp_path / "tampered"
    shutil.copytree(result["path"], src)
    victim = published_paths_of(src)[0]
    pkgdir = chroot / "var/cache/binpkgs"
    # A file that records no revisions either, so only the record could bind it.
    other = add_instance(pkgdir, "dev-libs/libfoo-2.3", repo_revisions=None, salt=9, index_revisions=False)
    (src / victim).write_bytes((pkgdir / other["PATH"]).read_bytes())
    header, entries = read_index(src)
    for entry in entries:
        if entry["PATH"] == victim:
            entry.update(SIZE=other["SIZE"], MD5=other["MD5"], SHA1=other["SHA1"])
    write_index(src, header, entries)
    with pytest.raises(PublishError, match=r"no revision of ::gentoo recorded"):
        publish(publish_params(src, tmp_path / "binhost/stack1", {"gentoo": NEW}))


def test_a_partial_build_keeps_the_earlier_bindings_and_a_moved_pin_refuses_them(chroot, tmp_path):
    dest, stack = tmp_path / "builds/stack1", tmp_path / "binhost/stack1"
    first = build(chroot, dest, {"gentoo": NEW}, PKGS, package_revisions=None)
    # Same pin, only hello rebuilt (emerge --oneshot app-misc/hello): the others are inherited.
    second = build(chroot, dest, {"gentoo": NEW}, ["app-misc/hello-1.0"], package_revisions=None, salt=2)
    assert second["built"] == ["app-misc/hello-1.0"] and second["packages"] == len(PKGS)
    record = json.loads((Path(second["path"]) / "build.json").read_text())
    bound = dict((p["cpv"], p["bound_by"]) for p in record["packages"])
    assert bound == {"app-misc/hello-1.0": "this build", "dev-libs/libfoo-2.3": "earlier build",
                     "sys-apps/bar-0.9": "earlier build"}
    assert record["previous"] == first["build"]
    publish(publish_params(second["path"], stack, {"gentoo": NEW}))
    # The pin moves but only hello is rebuilt: libfoo and bar were built from the old tree.
    third = build(chroot, dest, {"gentoo": NEWER}, ["app-misc/hello-1.0"], package_revisions=None, salt=3)
    before = os.readlink(stack / "current")
    with pytest.raises(PublishError) as info:
        publish(publish_params(third["path"], stack, {"gentoo": NEWER}))
    assert "dev-libs/libfoo-2.3-2: built from ::gentoo aaaaaaaaaaaa, not the pinned bbbbbbbbbbbb" in str(info.value)
    assert "app-misc/hello" not in str(info.value)
    assert os.readlink(stack / "current") == before


def test_an_instance_no_record_knows_stays_unbound(chroot, tmp_path):
    """The stage came with packages in its PKGDIR, built who knows where, without revisions."""
    pkgdir = chroot / "var/cache/binpkgs"
    header, entries = read_index(pkgdir)
    stray = add_instance(pkgdir, "sys-apps/bar-0.9", repo_revisions=None, salt=5, index_revisions=False)
    install(chroot, [stray])
    dest = tmp_path / "builds/stack1"
    result = build(chroot, dest, {"gentoo": NEW}, ["app-misc/hello-1.0", "dev-libs/libfoo-2.3"])
    assert result["unbound"] == ["sys-apps/bar-0.9"]
    with pytest.raises(PublishError, match=r"sys-apps/bar-0.9-2: no revision of ::gentoo recorded"):
        publish(publish_params(result["path"], tmp_path / "binhost/stack1", {"gentoo": NEW}))


def test_installed_packages_without_a_binary_package_are_reported(chroot, tmp_path):
    Path(chroot, "var/db/pkg/virtual/libc-1-r1").mkdir(parents=True)
    Path(chroot, "var/db/pkg/virtual/libc-1-r1/BUILD_TIME").write_text("1700000000\n")
    result = build(chroot, tmp_path / "builds/stack1", {"gentoo": NEW}, PKGS)
    assert result["unpackaged"] == ["virtual/libc-1-r1"] and result["packages"] == len(PKGS)


def test_check_mode_and_idempotence(chroot, tmp_path):
    dest = tmp_path / "builds/stack1"
    assert R.start(params(chroot, dest), check_mode=True)["changed"]
    assert not dest.exists()
    R.start(params(chroot, dest))
    pkgdir = chroot / "var/cache/binpkgs"
    install(chroot, [add_instance(pkgdir, cpv, repo_revisions={"gentoo": NEW}, salt=1) for cpv in PKGS])
    checked = R.record(params(chroot, dest, revisions={"gentoo": NEW}), check_mode=True)
    assert checked["changed"] and checked["packages"] == len(PKGS)
    assert sorted(os.listdir(dest)) == [".started.json"]
    first = R.record(params(chroot, dest, revisions={"gentoo": NEW}))
    assert first["changed"] and os.readlink(dest / "last") == first["build"]
    assert sorted(os.listdir(dest)) == [first["build"], "last"]
    # A build that changed nothing (everything was up to date) records nothing new.
    R.start(params(chroot, dest))
    again = R.record(params(chroot, dest, revisions={"gentoo": NEW}))
    assert not again["changed"] and again["build"] == first["build"]
    assert sorted(os.listdir(dest)) == [first["build"], "last"]


def test_keep_prunes_old_builds_but_never_the_last(chroot, tmp_path):
    dest = tmp_path / "builds/stack1"
    ids = [build(chroot, dest, {"gentoo": NEW}, ["app-misc/hello-1.0"], salt=i)["build"] for i in range(1, 5)]
    assert len(set(ids)) == 4 and ids == sorted(ids, key=id_key)
    assert sorted(n for n in os.listdir(dest) if n != "last") == sorted(ids[-3:], key=id_key)
    with pytest.raises(BuildRecordError, match=r"keep must be a whole number of builds, at least 1"):
        R.record(params(chroot, dest, keep=0))
    assert sorted(n for n in os.listdir(dest) if n != "last") == sorted(ids[-3:], key=id_key)


def test_a_pkgdir_link_is_followed_inside_the_chroot_never_on_the_host(chroot, tmp_path):
    """var/cache/binpkgs -> /<somewhere>: the chroot's /<somewhere>, not the host's."""
    host_dir = tmp_path / "host-secrets"
    make_pkgdir(host_dir, [{"cpv": "app-misc/hostfile-1", "repo_revisions": {"gentoo": NEW}}])
    (host_dir / "shadow").write_text("root:secret\n")
    before = sorted(str(p.relative_to(host_dir)) for p in host_dir.rglob("*"))
    real = chroot / "var/cache/binpkgs"
    os.rename(real, chroot / "var/cache/real-binpkgs")
    os.symlink(str(host_dir), real)  # absolute: on the host it names host_dir
    dest = tmp_path / "builds/stack1"
    with pytest.raises(BuildRecordError) as info:
        R.start(params(chroot, dest))
        R.record(params(chroot, dest))
    assert "has no Packages index in its PKGDIR /var/cache/binpkgs (inside the chroot: %s)" % host_dir \
        in str(info.value)
    assert sorted(str(p.relative_to(host_dir)) for p in host_dir.rglob("*")) == before
    assert not any(p.name == "shadow" or "hostfile" in p.name for p in dest.rglob("*"))

    # A relative link inside the chroot is the chroot's own business and works.
    os.unlink(real)
    os.symlink("real-binpkgs", real)
    result = build(chroot, dest, {"gentoo": NEW}, PKGS)
    assert result["packages"] == len(PKGS) and result["pkgdir"] == str(chroot / "var/cache/real-binpkgs")


def test_a_package_file_that_is_a_symlink_is_refused(chroot, tmp_path):
    dest = tmp_path / "builds/stack1"
    R.start(params(chroot, dest))
    pkgdir = chroot / "var/cache/binpkgs"
    entry = add_instance(pkgdir, "app-misc/hello-1.0", repo_revisions={"gentoo": NEW})
    install(chroot, [entry])
    target = pkgdir / entry["PATH"]
    os.rename(target, chroot / "moved.gpkg.tar")
    os.symlink("/moved.gpkg.tar", target)
    with pytest.raises(BuildRecordError, match=r"app-misc/hello-1.0-2 of chroot .*: /var/cache/binpkgs/app-misc/"
                                               r"hello/hello-1.0-2.gpkg.tar is not a regular file of the PKGDIR "
                                               r"\(it leads to /moved.gpkg.tar\)"):
        R.record(params(chroot, dest, revisions={"gentoo": NEW}))
    assert sorted(os.listdir(dest)) == [".started.json"]


def test_record_without_a_start_is_refused(chroot, tmp_path):
    dest = tmp_path / "builds/stack1"
    dest.mkdir(parents=True)
    with pytest.raises(BuildRecordError, match=r"no build start is recorded in .*run this module with "
                                               r"state=started right before the build"):
        R.record(params(chroot, dest))
    assert list(dest.iterdir()) == []


def test_provenance_reads_the_chroots_configuration_inside_the_chroot(chroot, tmp_path):
    etc = chroot / "etc/portage"
    (etc / "repos.conf").mkdir(parents=True)
    (etc / "make.conf").write_text('FEATURES="buildpkg"\n')
    (etc / "repos.conf/gentoo.conf").write_text("[gentoo]\nsync-type = git\n")
    host_conf = tmp_path / "host-repos.conf"
    host_conf.write_text("[hostonly]\nlocation = /secret\n")
    os.symlink(str(host_conf), etc / "repos.conf/myoverlay.conf")  # absolute: not the host's file
    result = build(chroot, tmp_path / "builds/stack1", {"gentoo": NEW, "myoverlay": NEWER}, PKGS)
    prov = result["record"]["provenance"]
    assert prov["make_conf"] == 'FEATURES="buildpkg"\n'
    assert prov["repos_conf"] == "[gentoo]\nsync-type = git\n" and "hostonly" not in prov["repos_conf"]
    assert datetime.datetime.strptime(prov["built_at"], "%Y-%m-%dT%H:%M:%SZ")
