"""The test stage fixture: a signed stage3-like tarball whose real Portage rebuilds @world.

The stage is built once per session (and cached across sessions under .cache/teststage by its
recipe hash; a cold build takes about a minute), extracted once per module as root, and used
through chroot inside ``unshare --mount --propagation private`` only, so no mount outlives
the child process.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from stage_repo import WORLD, dist_line, restricted_distfile, stage_repo_tree
from teststage import (DEFAULT_CACHE_DIR, PORTAGE_VERSION, StageError, build_stage,
                       extract_stage, in_chroot,
                       parse_digests, stage_recipe_hash)

needs_stage_tools = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("mmdebstrap") or not shutil.which("unshare"),
    reason="the test stage needs root, mmdebstrap and unshare (make apt)",
)

INSTALLED = sorted(WORLD + ["dev-libs/libfoo"])


def leftover_mounts(below: Path) -> list[str]:
    out = subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    prefix = str(below.resolve())
    return [m for m in out if m == prefix or m.startswith(prefix + "/")]


@pytest.fixture(scope="session")
def stage():
    if os.geteuid() != 0 or not shutil.which("mmdebstrap") or not shutil.which("unshare"):
        pytest.skip("the test stage needs root, mmdebstrap and unshare (make apt)")
    files = build_stage(DEFAULT_CACHE_DIR)
    print(f"\nteststage {files.tarball.name}: {files.tarball.stat().st_size / 1e6:.1f} MB, "
          f"timings {files.timings}")
    return files


@pytest.fixture(scope="module")
def stage_root(stage):
    """The stage extracted as root with owners preserved (like a Gentoo install)."""
    top = Path(tempfile.mkdtemp(prefix="stage-", dir="/var/tmp"))
    root = top / "root"
    root.mkdir()
    try:
        extract_stage(stage.tarball, root)
        yield root
        assert leftover_mounts(top) == []
    finally:
        if not leftover_mounts(top):  # never delete through a mount
            shutil.rmtree(top, ignore_errors=True)


# --------------------------------------------------------------------------- the tarball


def test_stage_files_are_laid_out_like_a_gentoo_release(stage):
    assert re.fullmatch(r"stage3-amd64-gbhtest-\d{8}T\d{6}Z\.tar\.xz", stage.tarball.name)
    assert stage.digests.name == stage.tarball.name + ".DIGESTS"
    assert stage.asc.name == stage.tarball.name + ".asc"
    assert stage.recipe_hash == stage_recipe_hash(False)
    with stage.tarball.open("rb") as f:
        assert f.read(6) == b"\xfd7zXZ\x00"


def test_digests_match(stage):
    text = stage.digests.read_text()
    assert text.startswith("-----BEGIN PGP SIGNED MESSAGE-----")
    digests = parse_digests(text)
    assert set(digests) == {"BLAKE2B", "SHA512"}
    data = stage.tarball.read_bytes()
    assert digests["BLAKE2B"] == {stage.tarball.name: hashlib.blake2b(data).hexdigest()}
    assert digests["SHA512"] == {stage.tarball.name: hashlib.sha512(data).hexdigest()}


def test_signatures_verify_with_the_saved_key(stage):
    home = Path(tempfile.mkdtemp(prefix="gpgv", dir="/tmp"))
    try:
        gpg = ["gpg", "--homedir", str(home), "--batch", "--no-tty"]
        subprocess.run(gpg + ["--import", str(stage.pubkey)], check=True, capture_output=True)
        for args in ([str(stage.asc), str(stage.tarball)], [str(stage.digests)]):
            proc = subprocess.run(gpg + ["--status-fd", "1", "--verify", *args],
                                  capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
            assert f"[GNUPG:] VALIDSIG {stage.fingerprint}" in proc.stdout
        # A changed DIGESTS body fails the clearsigned check.
        forged = home / "forged.DIGESTS"
        forged.write_text(stage.digests.read_text().replace("# SHA512 HASH\n", "# SHA512 HASH\n0"))
        assert subprocess.run(gpg + ["--verify", str(forged)], capture_output=True).returncode != 0
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
                       capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def test_second_build_comes_from_the_cache(stage):
    t = time.monotonic()
    again = build_stage(DEFAULT_CACHE_DIR)
    assert time.monotonic() - t < 5
    assert again.tarball == stage.tarball and again.fingerprint == stage.fingerprint
    assert "cached_lookup" in again.timings


# --------------------------------------------------------------------------- the root


def test_root_looks_like_gentoo_to_portage(stage_root):
    assert os.readlink(stage_root / "etc/portage/make.profile") == \
        "../../var/db/repos/gentoo/profiles/default/linux/amd64/23.0"
    assert "-sandbox -usersandbox" in (stage_root / "etc/portage/profile/make.defaults").read_text()
    assert (stage_root / "var/lib/portage/world").read_text().split() == sorted(WORLD)
    pkgs = sorted(f"{c.name}/{re.sub(r'-[0-9][^-]*$', '', p.name)}"
                  for c in (stage_root / "var/db/pkg").iterdir() for p in c.iterdir())
    assert pkgs == INSTALLED
    repo = stage_root / "var/db/repos/gentoo"
    assert repo.stat().st_uid == 250 and repo.stat().st_gid == 250
    assert (repo / "profiles/repo_name").read_text() == "gentoo\n"
    assert "portage:x:250:250:" in (stage_root / "etc/passwd").read_text()
    assert os.readlink(stage_root / "usr/bin/gtar") == "tar"
    assert (stage_root / "usr/share/hello/README").exists()  # USE=doc from the profile
    assert (stage_root / "usr/share/ccompiled/kind").read_text() == "script\n"  # no gcc
    name, _ = restricted_distfile()
    assert not (stage_root / "var/cache/distfiles" / name).exists()
    assert (stage_root / "usr/share/restricted/README").exists()


def test_portage_runs_in_a_clean_login_shell(stage_root):
    out = in_chroot(stage_root, "emerge --version && portageq envvar FEATURES && "
                                "emerge --color=n -pv @world").stdout
    assert f"Portage {PORTAGE_VERSION}" in out
    features = out.splitlines()[1].split()
    assert "sandbox" not in features and "usersandbox" not in features
    assert {"userpriv", "pid-sandbox", "network-sandbox", "ipc-sandbox"} <= set(features)
    # @world without --update reinstalls its entries (libfoo is only a dependency); the
    # fetch-restricted one is flagged F: the stage has no distfile of it.
    assert "Total: 4 packages (4 reinstalls)" in out
    assert "[ebuild   RF   ] app-misc/restricted-1.0::gentoo" in out
    assert 'app-misc/hello-1::gentoo  USE="doc"' in out
    out = in_chroot(stage_root, "emerge --color=n -pvuDN @world").stdout
    assert "Total: 0 packages" in out


def test_profile_settings_survive_a_make_conf_rewrite(stage_root):
    make_conf = stage_root / "etc/portage/make.conf"
    saved = make_conf.read_bytes()
    try:
        make_conf.write_text('FEATURES="buildpkg"\n')
        features = in_chroot(stage_root, "portageq envvar FEATURES").stdout.split()
        assert "buildpkg" in features
        assert "sandbox" not in features and "usersandbox" not in features
    finally:
        make_conf.write_bytes(saved)


def test_envprobe_recorded_a_clean_build_environment(stage_root):
    env = (stage_root / "usr/share/envprobe/env").read_text()
    assert "EBUILD_PHASE=install" in env and "CATEGORY=app-misc" in env
    assert "\nHOME=/var/tmp/portage/app-misc/envprobe-1/homedir\n" in env


def test_emerge_e_world_writes_gpkg_packages_and_an_index(stage_root):
    name, data = restricted_distfile()
    # Without its distfile the fetch-restricted package cannot be rebuilt...
    with pytest.raises(StageError) as failed:
        in_chroot(stage_root, "emerge --color=n --oneshot --fetchonly app-misc/restricted")
    assert f"Place {name} into your DISTDIR" in str(failed.value)  # its pkg_nofetch
    # ... with it (as the binhost mirror's distfiles would provide) @world rebuilds.
    distfile = stage_root / "var/cache/distfiles" / name
    distfile.write_bytes(data)
    os.chown(distfile, 250, 250)
    t = time.monotonic()
    in_chroot(stage_root, "FEATURES=buildpkg emerge --color=n --quiet-build=y -e @world")
    elapsed = time.monotonic() - t
    print(f"emerge -e @world with buildpkg: {elapsed:.1f} s")
    pkgdir = stage_root / "var/cache/binpkgs"
    built = sorted(p.relative_to(pkgdir).as_posix() for p in pkgdir.rglob("*.gpkg.tar"))
    assert [re.sub(r"/[^/]*$", "", b) for b in built] == INSTALLED, built
    index = (pkgdir / "Packages").read_text()
    for cpv in INSTALLED:
        assert f"CPV: {cpv}-" in index
    assert index.count("\nCPV: ") == len(INSTALLED)
    assert leftover_mounts(stage_root) == []


# --------------------------------------------------------------------------- the repository


def test_stage_repo_tree_versions_and_manifest():
    tree0, tree1 = stage_repo_tree(0), stage_repo_tree(1)
    assert "app-misc/hello/hello-1.ebuild" in tree0
    assert "app-misc/hello/hello-2.ebuild" not in tree0
    assert set(tree1) - set(tree0) == {"app-misc/hello/hello-2.ebuild"}
    name, data = restricted_distfile()
    assert restricted_distfile() == (name, data)  # reproducible
    assert tree0["app-misc/restricted/Manifest"][0].decode() == dist_line(name, data)
    layout = tree0["metadata/layout.conf"][0].decode()
    assert "masters =\n" in layout and "thin-manifests = true" in layout
    assert all(not p.startswith("metadata/timestamp") for p in tree0)


@needs_stage_tools
@pytest.mark.skipif(not os.environ.get("GBH_COMPILER_STAGE"),
                    reason="set GBH_COMPILER_STAGE=1: the stage with gcc costs ~2 min cold, 94 MB")
def test_stage_with_compiler_compiled_c():
    files = build_stage(DEFAULT_CACHE_DIR, with_compiler=True)
    assert files.with_compiler and files.recipe_hash == stage_recipe_hash(True)
    out = subprocess.run(["tar", "-xOJf", str(files.tarball), "./usr/share/ccompiled/kind",
                          "./usr/bin/ccompiled"], capture_output=True, check=True).stdout
    assert out.startswith(b"elf\n\x7fELF")


def test_stage_repo_tree_serves_as_a_snapshot_for_real_webrsync(tmp_path, signing_key,
                                                                 http_mirror):
    from snapmirror import tree_of_directory, write_snapshot
    from webrsync import run_emerge_webrsync

    snap = write_snapshot(tmp_path / "mirror", "20250106", stage_repo_tree(1), signing_key)
    mirror = http_mirror(tmp_path / "mirror")
    repo = run_emerge_webrsync(mirror.url, "20250106", signing_key, tmp_path / "repo",
                               tmp_path / "work")
    assert tree_of_directory(repo) == snap.tree
    assert "app-misc/hello/hello-2.ebuild" in snap.tree
