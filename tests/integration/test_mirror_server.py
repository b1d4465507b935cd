"""The mirror_server role end to end, through ``ansible-playbook playbooks/snapshot.yml``.

Real parts only: a signed snapshot mirror served over HTTP on 127.0.0.1, the role importing
from it with the portage_snapshot module, git daemon and a standalone nginx started by the role
(no systemd here, so from pid files) on free loopback ports, ``git clone`` and a real Portage
client (``emerge --sync`` with ``sync-type = git``) reading from them, and the role's CLI run by
hand. Everything lives in one temporary directory; the servers are stopped by their PIDs at the
end, and the last check is that no process of this test is left.

The fixture applies the role once per module; the tests then read or advance the mirror in
ways that do not depend on their order.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ansible_run import run_playbook
from httpmirror import HttpMirror
from mirrorprocs import SERVERS, executable_of, free_port, port_answers, running_servers, terminate, wait_gone
from testkit import explain, git, leftover_processes
from snapmirror import (
    GENTOO_UID,
    SigningKey,
    SnapshotFiles,
    day_date,
    make_signing_key,
    small_tree,
    tree_of_directory,
    write_snapshot,
)

PLAYBOOK = "playbooks/snapshot.yml"
BIN = Path(sys.executable).parent
REPO_NAME = "gentoo.git"


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def recap_line(proc: subprocess.CompletedProcess) -> str:
    return next((line for line in proc.stdout.splitlines() if line.startswith("localhost")), "no recap")


@dataclass
class Mirror:
    """The mirror the role set up, with its upstream, and the means to advance both."""

    root: Path
    upstream: HttpMirror
    key: SigningKey
    extra_vars: dict
    git_port: int
    http_port: int
    snapshots: dict[str, SnapshotFiles] = field(default_factory=dict)
    passes: list[tuple[str, subprocess.CompletedProcess, dict]] = field(default_factory=list)
    base_after_check: bool = True
    pids: set[tuple[int, str]] = field(default_factory=set)
    published_days: int = 0

    @property
    def base(self) -> Path:
        return self.root / "mirror"

    @property
    def repo(self) -> Path:
        return self.base / "git" / REPO_NAME

    @property
    def run_dir(self) -> Path:
        return self.base / "run"

    @property
    def clone_url(self) -> str:
        return f"git://127.0.0.1:{self.git_port}/{REPO_NAME}"

    def publish_next_day(self) -> SnapshotFiles:
        """Put the next day's signed snapshot on the upstream mirror (and make it the latest)."""
        day = self.published_days
        snapshot = write_snapshot(self.root / "upstream", day_date(day), small_tree(day), self.key, latest=True)
        self.snapshots[snapshot.date] = snapshot
        self.published_days += 1
        return snapshot

    def playbook(self, check: bool = False, **extra) -> tuple[subprocess.CompletedProcess, dict]:
        proc, recap = run_playbook(PLAYBOOK, {**self.extra_vars, **extra}, check=check)
        self.record_pids()
        return proc, recap.get("localhost", {})

    def record_pids(self) -> None:
        """Remember every server PID the role wrote, so teardown can stop them whatever happens."""
        for name, executable in SERVERS.items():
            pid = self.read_pid(name)
            if pid:
                self.pids.add((pid, executable))

    def read_pid(self, name: str) -> int | None:
        try:
            return int((self.run_dir / name).read_text().strip())
        except (OSError, ValueError):
            return None

    def tag_of(self, snapshot: SnapshotFiles) -> str:
        return f"{snapshot.date[:4]}-{snapshot.date[4:6]}-{snapshot.date[6:]}"

    def tip_snapshot(self) -> SnapshotFiles:
        """The snapshot whose tag is at the tip of the served branch."""
        tags = git("--git-dir", str(self.repo), "tag", "--points-at", "master").split()
        by_tag = {self.tag_of(s): s for s in self.snapshots.values()}
        matching = [by_tag[t] for t in tags if t in by_tag]
        assert len(matching) == 1, f"tags at the tip: {tags}"
        return matching[0]


def task_results(proc: subprocess.CompletedProcess, name: str) -> list[str]:
    """The result words ("ok", "changed", "skipping", "failed", "fatal") of the tasks whose
    title contains ``name``, in order."""
    results, current = [], False
    for line in proc.stdout.splitlines():
        if line.startswith("TASK ["):
            current = name in line
        elif current and re.match(r"^(ok|changed|skipping|failed|fatal):", line):
            results.append(line.split(":", 1)[0])
            current = False
    return results


@pytest.fixture(scope="module")
def mirror():
    # Readable by others: git daemon runs as nobody and nginx's workers as www-data, as on a
    # real host (pytest's own tmp dirs are private to root).
    root = Path(tempfile.mkdtemp(prefix="mirror-server-", dir="/tmp"))
    root.chmod(0o755)
    key = make_signing_key(uid=GENTOO_UID)
    upstream = HttpMirror(root / "upstream")
    state = None
    try:
        (root / "upstream").mkdir()
        upstream.start()
        git_port, http_port = free_port(), free_port()
        state = Mirror(
            root=root,
            upstream=upstream,
            key=key,
            git_port=git_port,
            http_port=http_port,
            extra_vars={
                "mirror_server_base_dir": str(root / "mirror"),
                "mirror_server_cli_prefix": str(root / "cli"),
                # Provided by `make deps` (git, gnupg, xz-utils, nginx); the role's package
                # task runs in `make demo`.
                "mirror_server_install_packages": False,
                "mirror_server_snapshot_mirrors": [upstream.url],
                "mirror_server_snapshot_key_path": str(root / "mirror" / "keys" / "snapshot-signing.asc"),
                "mirror_server_snapshot_key_controller_file": str(key.pubkey_path),
                "mirror_server_snapshot_fingerprint": key.fingerprint,
                "mirror_server_snapshot_timeout": 20,
                "mirror_server_git_daemon_port": git_port,
                "mirror_server_distfiles_port": http_port,
            },
        )
        state.publish_next_day()
        state.publish_next_day()

        for name, check in (("check", True), ("apply", False), ("apply again", False), ("check again", True)):
            proc, recap = state.playbook(check=check)
            state.passes.append((name, proc, recap))
            if name == "check":
                state.base_after_check = state.base.exists() or (root / "cli").exists()
            if name == "apply" and proc.returncode != 0:
                pytest.fail("the role's first apply failed:\n" + explain(proc))
        yield state
    finally:
        try:
            if state is not None:
                state.playbook(mirror_server_service_state="stopped")
                terminate(state.pids)
        finally:
            upstream.stop()
            key.close()
            left = leftover_processes(root)
            shutil.rmtree(root, ignore_errors=True)
            assert not left, f"processes left behind: {left}"


def test_four_passes_check_apply_apply_check(mirror):
    (check, check_proc, check_recap), (apply, apply_proc, apply_recap), \
        (again, again_proc, again_recap), (check2, check2_proc, check2_recap) = mirror.passes

    assert check_proc.returncode == 0, explain(check_proc)
    assert check_recap["failed"] == 0 and check_recap["changed"] > 0, recap_line(check_proc)
    assert not mirror.base_after_check, "check mode created files"

    assert apply_proc.returncode == 0, explain(apply_proc)
    assert apply_recap["changed"] > 0, recap_line(apply_proc)
    assert "Tag: 2025-01-07" in apply_proc.stdout
    assert f"git clone --depth 1 {mirror.clone_url}" in apply_proc.stdout

    for proc, recap in ((again_proc, again_recap), (check2_proc, check2_recap)):
        assert proc.returncode == 0, explain(proc)
        assert recap["failed"] == 0 and recap["changed"] == 0, recap_line(proc) + "\n" + explain(proc)


def test_tag_holds_the_snapshot_tree_byte_for_byte(mirror):
    first = mirror.snapshots[day_date(1)]
    tag = mirror.tag_of(first)
    assert tag in git("--git-dir", str(mirror.repo), "tag", "--list").split()

    listing = git("--git-dir", str(mirror.repo), "ls-tree", "-r", "-z", tag).split("\0")
    committed = {}
    for entry in filter(None, listing):
        meta, path = entry.split("\t", 1)
        mode, _kind, sha = meta.split()
        committed[path] = (mode, sha)
    expected = {path: ("100755" if mode & 0o111 else "100644", git_blob_sha(data))
                for path, (data, mode) in first.tree.items()}
    assert committed == expected
    # git daemon serves only repositories that opt in.
    assert (mirror.repo / "git-daemon-export-ok").exists()


def test_shallow_clone_over_git_daemon(mirror, tmp_path):
    first = mirror.snapshots[day_date(1)]
    tagged = tmp_path / "tagged"
    git("clone", "--quiet", "--depth", "1", "--branch", mirror.tag_of(first), mirror.clone_url, str(tagged))
    assert git("rev-parse", "--is-shallow-repository", cwd=tagged).strip() == "true"
    assert tree_of_directory(tagged) == first.tree

    tip = tmp_path / "tip"
    git("clone", "--quiet", "--depth", "1", mirror.clone_url, str(tip))
    assert tree_of_directory(tip) == mirror.tip_snapshot().tree
    # The same path without ".git" works too (git daemon's default), anything else does not.
    git("ls-remote", mirror.clone_url.removesuffix(".git"))
    other = subprocess.run(["git", "ls-remote", mirror.clone_url.replace(REPO_NAME, "other.git")],
                           capture_output=True, text=True)
    assert other.returncode != 0


def portage_client(root: Path, clone_url: str) -> tuple[Path, dict]:
    """A private Portage configuration (EPREFIX and config root in ``root``) syncing ::gentoo
    from ``clone_url`` with git; returns the repository location and the environment."""
    eprefix = root / "eprefix"
    (eprefix / "share" / "portage").mkdir(parents=True)
    # A pip-installed Portage reads make.globals from ${EPREFIX}/share/portage/config.
    (eprefix / "share" / "portage" / "config").symlink_to(Path(sys.prefix) / "share" / "portage" / "config")
    conf = eprefix / "etc" / "portage"
    (conf / "repos.conf").mkdir(parents=True)
    location = root / "repos" / "gentoo"
    # The commits are the mirror's own (it verified the snapshot's signature), so the client
    # cannot check a Gentoo signature on them.
    (conf / "repos.conf" / "gentoo.conf").write_text(
        "[DEFAULT]\nmain-repo = gentoo\n\n"
        f"[gentoo]\nlocation = {location}\nsync-type = git\nsync-uri = {clone_url}\n"
        "auto-sync = yes\nsync-git-verify-commit-signature = no\n"
    )
    (conf / "make.conf").write_text('FEATURES="-news"\n')
    env = dict(os.environ)
    env.update({
        "PORTAGE_OVERRIDE_EPREFIX": str(eprefix),
        "PORTAGE_CONFIGROOT": str(eprefix),
        # No portage user needed on this host.
        "PORTAGE_USERNAME": "root",
        "PORTAGE_GRPNAME": "root",
        # Portage adds the repository to git's *system* safe.directory list: keep that here.
        "GIT_CONFIG_SYSTEM": str(root / "gitconfig-system"),
        "GIT_CONFIG_GLOBAL": str(root / "gitconfig-global"),
        "PATH": "%s:%s" % (BIN, env.get("PATH", "/usr/bin:/bin")),
    })
    return location, env


def emerge_sync(env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / "emerge"), "--sync"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "=== Sync completed for gentoo" in proc.stdout, proc.stdout + proc.stderr
    return proc


def test_emerge_sync_follows_the_mirror(mirror, tmp_path):
    location, env = portage_client(tmp_path, mirror.clone_url)

    first = emerge_sync(env)
    assert "git clone --depth 1" in first.stdout
    assert tree_of_directory(location) == mirror.tip_snapshot().tree

    upcoming = mirror.publish_next_day()
    proc, recap = mirror.playbook()
    assert proc.returncode == 0 and recap["changed"] > 0, explain(proc)
    assert f"Tag: {mirror.tag_of(upcoming)}" in proc.stdout
    assert mirror.tip_snapshot() == upcoming

    second = emerge_sync(env)
    assert "git fetch" in second.stdout
    assert tree_of_directory(location) == upcoming.tree
    assert git("rev-parse", "HEAD", cwd=location) == git("--git-dir", str(mirror.repo), "rev-parse", "master")


def test_distfiles_served_over_http(mirror):
    distfiles = mirror.base / "distfiles"
    payload = os.urandom(64 * 1024)
    name = "frobnicate-1.0.tar.xz"
    (distfiles / name).write_bytes(payload)
    (distfiles / name).chmod(0o644)
    root = f"http://127.0.0.1:{mirror.http_port}"
    base = f"{root}/distfiles"  # Gentoo's layout: Portage asks <mirror>/distfiles/<file>
    try:
        with urllib.request.urlopen(f"{base}/{name}", timeout=10) as response:
            assert response.status == 200
            assert response.read() == payload
        with urllib.request.urlopen(f"{base}/", timeout=10) as response:
            assert name in response.read().decode()
        with urllib.request.urlopen(f"{root}/", timeout=10) as response:  # redirected to the listing
            assert response.geturl() == f"{base}/" and name in response.read().decode()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(f"{base}/{name}", data=b"x", method="POST"), timeout=10)
        assert refused.value.code == 403
        # Its own logs, not the host nginx's.
        assert f"GET /distfiles/{name}" in (mirror.base / "log" / "distfiles-access.log").read_text()
    finally:
        (distfiles / name).unlink()


def test_cli_imports_the_next_day_by_hand(mirror):
    cli = mirror.root / "cli" / "bin" / "gentoo-snapshot-import"
    params = mirror.base / "conf" / "snapshot-import.json"
    assert json.loads(params.read_text())["fingerprint"] == mirror.key.fingerprint
    before = git("--git-dir", str(mirror.repo), "rev-parse", "master").strip()
    # This interpreter has python-gnupg; the timer runs the CLI with the host's python3.
    command = [sys.executable, str(cli), "--params", str(params)]

    upcoming = mirror.publish_next_day()
    imported = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert imported.returncode == 0, imported.stderr
    result = json.loads(imported.stdout)
    assert result["changed"] is True
    assert result["tag"] == mirror.tag_of(upcoming)
    assert result["previous_commit"] == before
    assert mirror.tip_snapshot() == upcoming

    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["changed"] is False

    tip = git("--git-dir", str(mirror.repo), "rev-parse", "master")
    missing = subprocess.run(command + ["--date", "1999-01-01"], capture_output=True, text=True, timeout=300)
    assert missing.returncode == 1
    assert "gentoo-19990101.tar.xz" in missing.stderr and "Traceback" not in missing.stderr
    assert missing.stdout == ""
    assert git("--git-dir", str(mirror.repo), "rev-parse", "master") == tip


def test_stopped_stops_exactly_the_servers_it_started(mirror, tmp_path):
    pids = {name: mirror.read_pid(name) for name in SERVERS}
    assert all(executable_of(pid) == SERVERS[name] for name, pid in pids.items()), pids

    # Bystanders: another git daemon the role did not start, and a process whose PID a stale
    # pid file will name. Neither may be touched.
    (tmp_path / "other.git").mkdir()
    git("init", "--quiet", "--bare", str(tmp_path / "other.git"))
    other_port = free_port()
    bystander = subprocess.Popen(
        [git("--exec-path").strip() + "/git-daemon", "--listen=127.0.0.1", f"--port={other_port}",
         f"--base-path={tmp_path}", str(tmp_path / "other.git")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        proc, recap = mirror.playbook(mirror_server_service_state="stopped")
        assert proc.returncode == 0 and recap["changed"] > 0, explain(proc)
        for name, pid in pids.items():
            assert wait_gone(pid), f"{SERVERS[name]} {pid} still runs"
            assert not (mirror.run_dir / name).exists()
        assert not port_answers(mirror.git_port) and not port_answers(mirror.http_port)
        assert bystander.poll() is None and sleeper.poll() is None

        # A stale pid file naming an unrelated process: removed, the process left alone.
        (mirror.run_dir / "git-daemon.pid").write_text(f"{sleeper.pid}\n")
        proc, recap = mirror.playbook(mirror_server_service_state="stopped")
        assert proc.returncode == 0, explain(proc)
        assert sleeper.poll() is None and bystander.poll() is None
        assert not (mirror.run_dir / "git-daemon.pid").exists()

        proc, recap = mirror.playbook(mirror_server_service_state="stopped")
        assert proc.returncode == 0 and recap["changed"] == 0, explain(proc)
    finally:
        for child in (bystander, sleeper):
            child.terminate()
            child.wait(timeout=10)

    # And back: the next run starts them again, without importing anything new.
    proc, recap = mirror.playbook()
    assert proc.returncode == 0, explain(proc)
    assert port_answers(mirror.git_port) and port_answers(mirror.http_port)
    git("ls-remote", mirror.clone_url)


def test_broken_first_mirror_is_skipped_for_the_next(mirror, tmp_path):
    # Answers 200 with an HTML page for every file, as a mirror behind a captive portal does.
    with HttpMirror(tmp_path / "portal") as portal:
        (tmp_path / "portal").mkdir()
        for name in ("gentoo-latest.tar.xz", "gentoo-latest.tar.xz.md5sum", "gentoo-latest.tar.xz.gpgsig"):
            portal.faults[f"/snapshots/{name}"] = "html"
        upcoming = mirror.publish_next_day()
        proc, recap = mirror.playbook(mirror_server_snapshot_mirrors=[portal.url, mirror.upstream.url])
    assert proc.returncode == 0 and recap["changed"] > 0, explain(proc)
    assert f"Tag: {mirror.tag_of(upcoming)}" in proc.stdout
    assert mirror.tip_snapshot() == upcoming
    # Ansible prints warnings on stderr.
    assert f"skipped mirror {portal.url}: gentoo-latest.tar.xz.md5sum is not an md5sum file" in proc.stderr
    # A non-empty list named "skipped" in the result would have made Ansible skip the report.
    assert task_results(proc, "Report the imported snapshot") == ["ok"], explain(proc)


def test_old_key_variable_names_still_work_and_warn(mirror):
    old_names = {k: v for k, v in mirror.extra_vars.items()
                 if k not in ("mirror_server_snapshot_key_path", "mirror_server_snapshot_key_controller_file")}
    elsewhere = mirror.base / "keys" / "old-name.asc"
    old_names["mirror_server_snapshot_key"] = str(elsewhere)
    old_names["mirror_server_snapshot_key_src"] = mirror.extra_vars["mirror_server_snapshot_key_controller_file"]
    params = mirror.base / "conf" / "snapshot-import.json"
    try:
        proc, recap = run_playbook(PLAYBOOK, old_names)
        assert proc.returncode == 0, explain(proc)
        assert "DEPRECATED: mirror_server_snapshot_key is an old name of mirror_server_snapshot_key_path" in proc.stdout
        assert ("DEPRECATED: mirror_server_snapshot_key_src is an old name of "
                "mirror_server_snapshot_key_controller_file") in proc.stdout
        # Both were used: the controller's key file was deployed to the old-named path, and the
        # import (and the CLI's parameters) read it from there.
        assert elsewhere.read_bytes() == mirror.key.pubkey_path.read_bytes()
        assert json.loads(params.read_text())["key"] == str(elsewhere)

        # The new names win when both are set, and the old one is said to be ignored.
        proc, recap = mirror.playbook(mirror_server_snapshot_key=str(elsewhere))
        assert proc.returncode == 0, explain(proc)
        assert "but ignored here, since mirror_server_snapshot_key_path is set too" in proc.stdout
        assert json.loads(params.read_text())["key"] == mirror.extra_vars["mirror_server_snapshot_key_path"]

        proc, recap = mirror.playbook()
        assert proc.returncode == 0 and "DEPRECATED" not in proc.stdout, explain(proc)
    finally:
        mirror.playbook()
        elsewhere.unlink(missing_ok=True)


def test_auto_service_manager_starts_daemons_where_systemd_does_not_run(mirror):
    # A container of a systemd distribution: the fact says systemd, but PID 1 is something else
    # (this VM has no /run/systemd/system either). Check mode: nothing may be written to
    # /etc/systemd/system of this machine whatever the role decides.
    proc, recap = mirror.playbook(check=True, ansible_service_mgr="systemd")
    assert proc.returncode == 0 and recap["changed"] == 0, explain(proc)
    assert "systemd is not running (no /run/systemd/system" in proc.stdout
    assert task_results(proc, "Install the git daemon unit") == []
    assert task_results(proc, "Run the git daemon and the distfiles nginx") == ["ok"]


def test_installed_packages_need_no_package_manager(mirror):
    # Every package is installed on this machine (make deps): the package manager, its cache
    # and the network are not needed, so they are not used.
    proc, recap = mirror.playbook(check=True, mirror_server_install_packages=True)
    assert proc.returncode == 0 and recap["changed"] == 0, explain(proc)
    assert task_results(proc, "Find the packages that are installed (dpkg)") == ["ok"]
    assert task_results(proc, "(Debian family)") == ["skipping"], explain(proc)


def test_packages_that_cannot_be_installed_are_named(mirror):
    before = sorted(p.name for p in mirror.base.iterdir())
    proc, recap = mirror.playbook(mirror_server_install_packages=True,
                                  __mirror_server_packages=["git", "gentoo-binhost-no-such-package"])
    assert proc.returncode != 0
    assert ("mirror_server needs gentoo-binhost-no-such-package, not installed on localhost, and "
            "installing with the package manager failed") in proc.stdout, explain(proc)
    assert "set mirror_server_install_packages: false" in proc.stdout
    assert sorted(p.name for p in mirror.base.iterdir()) == before


def test_missing_program_is_named_before_anything_is_set_up(tmp_path):
    base = tmp_path / "mirror"
    proc, recap = run_playbook(PLAYBOOK, {
        "mirror_server_base_dir": str(base),
        "mirror_server_cli_prefix": str(tmp_path / "cli"),
        "mirror_server_install_packages": False,
        "mirror_server_snapshot_import": False,
        "__mirror_server_nginx_binary": str(tmp_path / "no-nginx-here"),
    })
    assert proc.returncode != 0
    assert f"{tmp_path / 'no-nginx-here'} cannot be run on localhost" in proc.stdout, explain(proc)
    assert "set mirror_server_install_packages: true" in proc.stdout
    assert not base.exists() and not (tmp_path / "cli").exists()


def test_base_dir_other_users_cannot_enter_fails_early(tmp_path):
    private = Path(tempfile.mkdtemp(prefix="private-", dir="/tmp"))  # 0700, as mktemp -d makes it
    base = private / "mirror"
    git_port, http_port = free_port(), free_port()
    try:
        proc, recap = run_playbook(PLAYBOOK, {
            "mirror_server_base_dir": str(base),
            "mirror_server_cli_prefix": str(private / "cli"),
            "mirror_server_install_packages": False,
            "mirror_server_snapshot_import": False,
            "mirror_server_git_daemon_port": git_port,
            "mirror_server_distfiles_port": http_port,
        })
        assert proc.returncode != 0, explain(proc)
        assert (f"The git daemon runs as nobody, which cannot enter {private}: every directory above "
                f"{base}/git/gentoo.git must be searchable by it (chmod o+x {private})") in proc.stdout, explain(proc)
        assert not base.exists() and not (private / "cli").exists()
        assert not port_answers(git_port) and not port_answers(http_port)

        # The distfiles nginx's user is checked as well, with its own directories.
        os.chmod(private, 0o711)
        (private / "www").mkdir(mode=0o700)
        proc, recap = run_playbook(PLAYBOOK, {
            "mirror_server_base_dir": str(base),
            "mirror_server_cli_prefix": str(private / "cli"),
            "mirror_server_distfiles_dir": str(private / "www" / "distfiles"),
            "mirror_server_install_packages": False,
            "mirror_server_snapshot_import": False,
            "mirror_server_git_daemon_port": git_port,
            "mirror_server_distfiles_port": http_port,
        })
        assert proc.returncode != 0, explain(proc)
        assert f"The distfiles nginx runs as www-data, which cannot enter {private / 'www'}" in proc.stdout, explain(proc)
        assert not base.exists()
    finally:
        terminate({(pid, SERVERS[path.name]) for path, pid in running_servers(base / "run").items()})
        shutil.rmtree(private, ignore_errors=True)
