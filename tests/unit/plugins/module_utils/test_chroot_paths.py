"""Paths inside a chroot resolved as the chroot sees them (real symlinks in tmp dirs)."""
import os

import pytest

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._chroot_paths import (
    ChrootPathError,
    chroot_root,
    ensure_path,
    resolve_in_root,
)


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "chroot"
    (root / "var/cache").mkdir(parents=True)
    (root / "etc").mkdir()
    return root


def test_absolute_links_start_again_at_the_chroot_root(root, tmp_path):
    os.symlink("/etc", root / "var/cache/binpkgs")
    host, inside = resolve_in_root(str(root), "/var/cache/binpkgs/Packages")
    assert (host, inside) == (str(root / "etc/Packages"), "/etc/Packages")


def test_dotdot_stops_at_the_chroot_root(root):
    os.symlink("../../../../../../etc", root / "var/cache/up")
    assert resolve_in_root(str(root), "/var/cache/up/passwd") == (str(root / "etc/passwd"), "/etc/passwd")
    assert resolve_in_root(str(root), "/../../etc/passwd")[1] == "/etc/passwd"
    assert resolve_in_root(str(root), "/") == (str(root), "/")


def test_missing_components_are_kept(root):
    assert resolve_in_root(str(root), "/etc/portage/gnupg")[0] == str(root / "etc/portage/gnupg")


@pytest.mark.parametrize("path, message", [
    ("etc/portage", "must be an absolute path inside the chroot"),
    ("", "must be an absolute path inside the chroot"),
    ("/loop/x", "too many levels of symbolic links"),
])
def test_refused_paths(root, path, message):
    os.symlink("/loop", root / "loop")
    with pytest.raises(ChrootPathError, match=message):
        resolve_in_root(str(root), path)


def test_chroot_root_refuses_the_host_and_non_directories(tmp_path):
    (tmp_path / "file").write_text("x")
    os.symlink("/", tmp_path / "slash")
    for path, message in ((str(tmp_path / "slash"), "resolves to the host's /"), ("/", "resolves to the host's /"),
                          (str(tmp_path / "file"), "is not a directory"), ("relative", "must be an absolute path")):
        with pytest.raises(ChrootPathError, match=message):
            chroot_root(path)


def test_ensure_path_creates_directories_inside_the_chroot_only(root, tmp_path):
    host_dir = tmp_path / "host-etc"
    host_dir.mkdir()
    os.symlink(str(host_dir), root / "etc/portage")  # the host would follow it to host_dir
    params = {"root": str(root), "path": "/etc/portage/gnupg", "state": "directory", "mode": "0700"}
    checked = ensure_path(params, check_mode=True)
    assert checked["changed"] and not checked["exists"]
    assert checked["host_path"] == str(root / host_dir.relative_to("/") / "gnupg")
    assert not (root / host_dir.relative_to("/")).exists()
    done = ensure_path(params)
    assert done["changed"] and os.path.isdir(done["host_path"])
    assert os.stat(done["host_path"]).st_mode & 0o7777 == 0o700
    assert list(host_dir.iterdir()) == [], "the host directory is untouched"
    assert not ensure_path(params)["changed"] and not ensure_path(params, check_mode=True)["changed"]
    assert ensure_path({**params, "mode": "0750"}, check_mode=True)["changed"]


def test_ensure_path_refuses_a_file_and_a_bad_mode(root):
    (root / "etc/lock").write_text("x")
    with pytest.raises(ChrootPathError, match=r"/etc/lock of chroot .* exists and is not a directory"):
        ensure_path({"root": str(root), "path": "/etc/lock", "state": "directory"})
    with pytest.raises(ChrootPathError, match=r"mode 'rwx' is not an octal mode"):
        ensure_path({"root": str(root), "path": "/run/lock", "state": "directory", "mode": "rwx"})
    assert not (root / "run").exists()


def test_ensure_path_on_the_host_itself_is_ordinary_resolution(tmp_path):
    """Roles whose root may be the system they run on (binpkg_client_root: /)."""
    os.symlink(str(tmp_path), tmp_path / "self")
    result = ensure_path({"root": "/", "path": str(tmp_path / "self" / "x"), "state": "resolved"})
    assert (result["host_path"], result["inside"]) == (str(tmp_path / "x"), str(tmp_path / "x"))
    assert not result["changed"]
