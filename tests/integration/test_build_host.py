"""The build_host role end to end, through ``ansible-playbook playbooks/build_chroot.yml``.

Real parts only: the mirror_server role (``playbooks/snapshot.yml``) imports a signed snapshot
of the test stage's tiny repository and serves it with git daemon and nginx on free loopback
ports, with the fetch-restricted package's distfile in its distfiles directory; the build_host
role then unpacks the real test stage (Debian userland + real Portage), pins it to the
snapshot's tag, and runs ``emerge -e @world`` in it with FEATURES=buildpkg. The playbook runs
in ``unshare --mount --propagation private`` so no mount can outlive it, and the host's mount
table is checked afterwards anyway. The mirror's servers are stopped by their PIDs.
"""
from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import buildenv
from buildenv import ServedMirror
from snapmirror import GENTOO_UID, make_signing_key
from stage_repo import WORLD, restricted_distfile, stage_repo_tree
from teststage import build_stage
from testkit import explain, git, mounts_below, remove_unless_mounted

SNAPSHOT_DATE = "20250106"
TAG = "2025-01-06"
CHROOT = "stack1"
# -e @world rebuilds what is installed: the world file's packages and their dependency.
BUILT = sorted(WORLD + ["dev-libs/libfoo"])


# Set in the controller's environment of every build run; the build must never see it.
CONTROLLER_ONLY = ("GBH_CONTROLLER_ONLY", "leaked-from-the-controller")


def run_build(extra_vars: dict, check: bool = False) -> tuple[subprocess.CompletedProcess, dict]:
    return buildenv.run_build(extra_vars, check=check, env=dict([CONTROLLER_ONLY]))


@dataclass
class BuildHost:
    root: Path
    mirror: ServedMirror
    build_vars: dict
    passes: dict = field(default_factory=dict)

    def __post_init__(self):
        self.chroot = self.root / "chroots" / CHROOT
        self.pkgdir = self.chroot / "var/cache/binpkgs"


@pytest.fixture(scope="module")
def build_host():
    stage = build_stage()
    root = Path(tempfile.mkdtemp(prefix="build-host-", dir="/tmp"))
    root.chmod(0o755)  # git daemon runs as nobody, nginx's workers as www-data
    try:
        with make_signing_key(uid=GENTOO_UID) as key, \
                ServedMirror(root, key, [(SNAPSHOT_DATE, stage_repo_tree(0))]) as mirror:
            assert f"Tag: {TAG}" in mirror.setup_stdout
            state = BuildHost(root=root, mirror=mirror, build_vars=mirror.build_vars([{
                "name": CHROOT,
                "stage": {"src": str(stage.tarball), "key": str(stage.pubkey), "fingerprint": stage.fingerprint},
                "snapshot": TAG,
            }]))
            for label, check, extra in (("check", True, {}), ("apply", False, {}),
                                        ("again", False, {"build_host_build": False}),
                                        ("check again", True, {"build_host_build": False}),
                                        ("check build", True, {})):
                state.passes[label] = run_build({**state.build_vars, **extra}, check=check)
                state.passes[label + " mounts"] = mounts_below(root)
            yield state
    finally:
        remove_unless_mounted(root)


def test_emerge_world_writes_binary_packages(build_host):
    proc, recap = build_host.passes["apply"]
    assert proc.returncode == 0 and recap["failed"] == 0, explain(proc)
    assert recap["changed"] > 0
    index = (build_host.pkgdir / "Packages").read_text()
    listed = set(re.findall(r"^CPV: (\S+)$", index, re.MULTILINE))
    for cp in BUILT:
        category, pn = cp.split("/")
        gpkgs = sorted((build_host.pkgdir / category / pn).glob(f"{pn}-*.gpkg.tar"))
        assert gpkgs, f"no .gpkg.tar for {cp} in {build_host.pkgdir}"
        assert any(cpv.startswith(cp + "-") for cpv in listed), f"{cp} not in Packages: {sorted(listed)}"


def test_controller_environment_is_not_visible_in_the_build(build_host):
    """app-misc/envprobe records its src_install environment; the controller's must not be in it."""
    proc, _recap = build_host.passes["apply"]
    assert proc.returncode == 0, explain(proc)
    probe = build_host.chroot / "usr/share/envprobe/env"
    recorded = probe.read_text()
    # It was written by this build (emerge -e @world reinstalled it), not left by the stage.
    gpkg = sorted((build_host.pkgdir / "app-misc/envprobe").glob("envprobe-*.gpkg.tar"))
    assert gpkg and probe.stat().st_mtime >= gpkg[0].stat().st_mtime - 600
    assert CONTROLLER_ONLY[0] not in recorded and CONTROLLER_ONLY[1] not in recorded
    assert "ANSIBLE_CONFIG" not in recorded
    assert "CATEGORY=app-misc" in recorded  # it is a real ebuild environment


def test_fetch_restricted_distfile_came_from_the_mirror(build_host):
    name, data = restricted_distfile()
    assert (build_host.chroot / "var/cache/distfiles" / name).read_bytes() == data
    access = (build_host.root / "mirror/log/distfiles-access.log").read_text()
    assert f"GET /distfiles/{name}" in access


def test_chroot_is_pinned_and_configured(build_host):
    repo = build_host.chroot / "var/db/repos/gentoo"
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    tagged = subprocess.run(["git", "--git-dir", str(build_host.root / "mirror/git/gentoo.git"), "rev-parse",
                             f"{TAG}^{{commit}}"], capture_output=True, text=True, check=True)
    assert head.stdout == tagged.stdout
    conf = (build_host.chroot / "etc/portage/repos.conf/gentoo.conf").read_text()
    assert "main-repo = gentoo" in conf and "sync-type = git" in conf
    assert f"sync-uri = git://127.0.0.1:{build_host.mirror.git_port}/gentoo.git" in conf
    make_conf = (build_host.chroot / "etc/portage/make.conf").read_text()
    features = re.search(r'^FEATURES="([^"]*)"', make_conf, re.MULTILINE).group(1).split()
    assert {"buildpkg", "cgroup", "ipc-sandbox", "network-sandbox", "parallel-fetch"} <= set(features)
    assert 'PKGDIR="/var/cache/binpkgs"' in make_conf
    mirrors = (build_host.chroot / "etc/portage/mirrors").read_text()
    assert f"local http://127.0.0.1:{build_host.mirror.http_port}\n" in mirrors
    assert not (build_host.chroot / "etc/portage/binrepos.conf").exists()
    logs = sorted((build_host.root / "logs").glob(f"{CHROOT}-*.log"))
    assert len(logs) == 1 and ">>> Emerging" in logs[0].read_text()


def test_check_apply_apply_check(build_host):
    proc, recap = build_host.passes["check"]
    assert proc.returncode == 0 and recap["failed"] == 0, explain(proc)
    for label in ("again", "check again"):
        proc, recap = build_host.passes[label]
        assert proc.returncode == 0, explain(proc)
        assert recap["failed"] == 0 and recap["changed"] == 0, label + "\n" + explain(proc)


def test_check_mode_on_a_built_chroot_previews_the_build(build_host):
    proc, recap = build_host.passes["check build"]
    assert proc.returncode == 0 and recap["failed"] == 0, explain(proc)
    # Only the mounts are predicted; ansible.builtin.command (the emerge) is skipped in check mode.
    assert recap["changed"] == 1, explain(proc)
    assert "Build chroot stack1" in proc.stdout


def test_no_mount_left_behind(build_host):
    for label in ("check", "apply", "again", "check again", "check build"):
        assert build_host.passes[label + " mounts"] == [], label
        # Unmounted by the role itself, not only by the namespace's end.
        assert mounts_below(build_host.root, build_host.passes[label][1]["ns_mounts"]) == [], label


OVERLAY_EBUILD = """\
EAPI=8
DESCRIPTION="{desc}"
HOMEPAGE="https://example.org/{pn}"
S="${{WORKDIR}}"
LICENSE="MIT"
SLOT="0"
KEYWORDS="amd64"

src_compile() {{
	{compile}
}}

src_install() {{
	insinto /usr/share/{pn}
	echo "{pn} ${{PV}}" > version || die
	doins version
}}
"""


def make_overlay(path: Path) -> tuple[str, str]:
    """A git overlay ``testoverlay``: commit 1 has overlaid-1 and broken-1 (dies in compile),
    commit 2 adds overlaid-2. Returns both commits."""
    def write(rel: str, text: str) -> None:
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)

    path.mkdir(parents=True)
    git("init", "--quiet", "--initial-branch=main", cwd=path)
    write("profiles/repo_name", "testoverlay\n")
    write("profiles/categories", "app-misc\n")
    write("metadata/layout.conf", "masters = gentoo\nthin-manifests = true\nsign-manifests = false\n")
    write("app-misc/overlaid/overlaid-1.ebuild",
          OVERLAY_EBUILD.format(desc="From the overlay", pn="overlaid", compile=":"))
    write("app-misc/broken/broken-1.ebuild",
          OVERLAY_EBUILD.format(desc="Fails on purpose", pn="broken", compile='die "deliberate failure"'))
    git("add", "-A", cwd=path)
    git("commit", "--quiet", "-m", "one", cwd=path)
    first = git("rev-parse", "HEAD", cwd=path)
    write("app-misc/overlaid/overlaid-2.ebuild",
          OVERLAY_EBUILD.format(desc="From the overlay", pn="overlaid", compile=":"))
    git("add", "-A", cwd=path)
    git("commit", "--quiet", "-m", "two", cwd=path)
    return first, git("rev-parse", "HEAD", cwd=path)


def test_overlay_pinned_several_chroots_and_failure_report(build_host):
    first, _second = make_overlay(build_host.root / "overlay")
    stage = build_host.build_vars["build_host_chroots"][0]["stage"]
    overlay = {"name": "testoverlay", "url": str(build_host.root / "overlay"), "version": first}
    chroots = [
        {"name": "ovl", "stage": stage, "snapshot": TAG, "overlays": [overlay],
         "make_conf": {"MAKEOPTS": "-j2"}, "emerge_args": ["--oneshot", "app-misc/overlaid"]},
        {"name": "failing", "stage": stage, "snapshot": "latest", "overlays": [overlay],
         "emerge_args": ["--oneshot", "app-misc/broken"]},
    ]
    proc, recap = run_build({**build_host.build_vars, "build_host_chroots": chroots})
    assert mounts_below(build_host.root) == []
    assert mounts_below(build_host.root, recap["ns_mounts"]) == [], "the always section unmounted"
    assert proc.returncode != 0 and recap["failed"] == 1, explain(proc)

    ovl = build_host.root / "chroots" / "ovl"
    assert sorted(p.name for p in (ovl / "var/cache/binpkgs/app-misc/overlaid").glob("*.gpkg.tar")) \
        == ["overlaid-1-1.gpkg.tar"], "the overlay is pinned to its first commit"
    head = subprocess.run(["git", "-C", str(ovl / "var/db/repos/testoverlay"), "rev-parse", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert head == first
    conf = (ovl / "etc/portage/repos.conf/testoverlay.conf").read_text()
    assert "location = /var/db/repos/testoverlay" in conf and "sync-type = git" in conf
    assert 'MAKEOPTS="-j2"' in (ovl / "etc/portage/make.conf").read_text()

    assert "Failing package: app-misc/broken-1::testoverlay failed (compile phase)" in proc.stdout, explain(proc)
    assert "deliberate failure" in proc.stdout
    failure = next(line for line in proc.stdout.splitlines() if line.startswith("fatal:"))
    assert "\\u001b[" not in failure, "colour escapes are dropped from the tail"
    logs = sorted((build_host.root / "logs").glob("failing-*.log"))
    assert len(logs) == 1 and str(logs[0]) in proc.stdout



def test_fetch_restricted_package_builds_only_thanks_to_the_local_mirror(build_host):
    """A fresh chroot without the ``local`` mirror cannot fetch app-misc/restricted's distfile
    (RESTRICT=fetch: no SRC_URI, no GENTOO_MIRRORS); the same chroot with it builds the package."""
    name, data = restricted_distfile()
    stage = build_host.build_vars["build_host_chroots"][0]["stage"]
    chroot = {"name": "nofetch", "stage": stage, "snapshot": TAG, "emerge_args": ["--oneshot", "app-misc/restricted"]}
    root = build_host.root / "chroots" / "nofetch"
    access_log = build_host.root / "mirror/log/distfiles-access.log"
    assert not (build_host.root / "chroots/nofetch").exists()
    before = access_log.read_text().count(f"GET /distfiles/{name}")

    proc, recap = run_build({**build_host.build_vars, "build_host_mirror_distfiles_url": "",
                             "build_host_chroots": [chroot]})
    assert proc.returncode != 0 and recap["failed"] == 1, explain(proc)
    assert "Failing package: app-misc/restricted-1.0" in proc.stdout, explain(proc)
    mirrors = root / "etc/portage/mirrors"
    assert not mirrors.exists() or "local" not in mirrors.read_text().split()
    assert not (root / "var/cache/distfiles" / name).exists()
    assert not list((root / "var/cache/binpkgs").glob("app-misc/restricted/*.gpkg.tar"))
    assert mounts_below(build_host.root, recap["ns_mounts"]) == []

    proc, recap = run_build({**build_host.build_vars, "build_host_chroots": [chroot]})
    assert proc.returncode == 0 and recap["failed"] == 0, explain(proc)
    assert (root / "var/cache/distfiles" / name).read_bytes() == data
    assert list((root / "var/cache/binpkgs").glob("app-misc/restricted/restricted-1.0-*.gpkg.tar"))
    assert access_log.read_text().count(f"GET /distfiles/{name}") == before + 1


@pytest.mark.parametrize("chroot, message", [
    ({"name": "../escape", "stage": {"src": "/nonexistent.tar.xz"}}, "needs a name"),
    ({"name": "twin", "stage": {"src": "/nonexistent.tar.xz"}}, "share a name"),
    ({"name": "up", "stage": {"src": "/nonexistent.tar.xz"},
      "overlays": [{"name": "o", "url": "/nonexistent", "version": "main", "location": "/var/db/../../../etc"}]},
     "without '.' or '..' (got /var/db/../../../etc)"),
    ({"name": "rel", "stage": {"src": "/nonexistent.tar.xz"},
      "overlays": [{"name": "o", "url": "/nonexistent", "version": "main", "location": "var/db/repos/o"}]},
     "Overlay o of chroot rel needs"),
    ({"name": "noversion", "stage": {"src": "/nonexistent.tar.xz"},
      "overlays": [{"name": "o", "url": "/nonexistent"}]}, "missing required arguments: version"),
])
def test_bad_chroot_entries_are_refused_before_anything_changes(build_host, tmp_path, chroot, message):
    chroots = [chroot, chroot] if message == "share a name" else [chroot]
    proc, recap = run_build({**build_host.build_vars, "build_host_base_dir": str(tmp_path / "chroots"),
                             "build_host_log_dir": str(tmp_path / "logs"),
                             "build_host_builds_dir": str(tmp_path / "builds"), "build_host_chroots": chroots})
    assert proc.returncode != 0 and recap["changed"] == 0, explain(proc)
    assert message in proc.stdout, explain(proc)
    assert list(tmp_path.iterdir()) == []


def hello_packages(pkgdir: Path) -> list[str]:
    return sorted(p.name for p in (pkgdir / "app-misc/hello").glob("hello-*.gpkg.tar"))


def test_pin_decides_what_is_built_and_moving_it_builds_the_newer_version(build_host):
    # Runs last: it advances the mirror to a second snapshot (hello-2 added).
    build_host.mirror.publish("20250107", stage_repo_tree(1))
    proc, _ = build_host.mirror.mirror_playbook()
    assert proc.returncode == 0 and "Tag: 2025-01-07" in proc.stdout, explain(proc)
    repo = build_host.chroot / "var/db/repos/gentoo"
    entry = {**build_host.build_vars["build_host_chroots"][0], "emerge_args": ["--oneshot", "app-misc/hello"]}

    def head() -> str:
        return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout

    def tagged(tag: str) -> str:
        return subprocess.run(["git", "--git-dir", str(build_host.root / "mirror/git/gentoo.git"), "rev-parse",
                               f"{tag}^{{commit}}"], capture_output=True, text=True, check=True).stdout

    # hello-2 is on the mirror now, but the chroot stays on the older tag: hello-1 is rebuilt.
    before = hello_packages(build_host.pkgdir)
    assert before and not any(p.startswith("hello-2") for p in before)
    proc, recap = run_build({**build_host.build_vars, "build_host_chroots": [entry]})
    assert proc.returncode == 0 and recap["failed"] == 0, explain(proc)
    after = hello_packages(build_host.pkgdir)
    assert len(after) == len(before) + 1 and not any(p.startswith("hello-2") for p in after), after
    assert head() == tagged(TAG)

    # Moving the pin moves the clone (nothing else) and builds hello-2.
    moved = {**entry, "snapshot": "2025-01-07"}
    proc, recap = run_build({**build_host.build_vars, "build_host_build": False, "build_host_chroots": [moved]})
    assert proc.returncode == 0 and recap["changed"] == 1, explain(proc)
    assert (repo / "app-misc/hello/hello-2.ebuild").exists()
    assert head() == tagged("2025-01-07")
    proc, recap = run_build({**build_host.build_vars, "build_host_chroots": [moved]})
    assert proc.returncode == 0 and recap["failed"] == 0, explain(proc)
    assert [p for p in hello_packages(build_host.pkgdir) if p.startswith("hello-2-")] == ["hello-2-1.gpkg.tar"]
    index = (build_host.pkgdir / "Packages").read_text()
    assert "CPV: app-misc/hello-2\n" in index

    # "latest" is that same tag now: nothing to do.
    latest = {**moved, "snapshot": "latest"}
    proc, recap = run_build({**build_host.build_vars, "build_host_build": False, "build_host_chroots": [latest]})
    assert proc.returncode == 0 and recap["changed"] == 0, explain(proc)
    assert mounts_below(build_host.root, recap["ns_mounts"]) == []
