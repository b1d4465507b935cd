"""The collection as users get it: ``ansible-galaxy collection build``, ``install``, then
``playbooks/snapshot.yml`` run from the installed copy against a signed mirror on 127.0.0.1.

The checkout is used only as the build's source. Everything after that runs from a temporary
directory with its own ansible.cfg and ``ANSIBLE_COLLECTIONS_PATH`` naming only the install, so
neither the checkout's ``.collections`` symlink nor ``~/.ansible/collections`` can stand in.
The role's servers (git daemon, nginx) are stopped by the role and then, whatever happened, by
their PIDs; the last check is that no process of this test is left.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from mirrorprocs import SERVERS, executable_of, free_port, port_answers, terminate
from snapmirror import build_mirror, day_date, tree_of_directory
from testkit import explain, git, leftover_processes

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
FQCN = f"{GALAXY['namespace']}.{GALAXY['name']}"
# The collection is small text; the whole test stage cache (.cache, ~0.5 GB) slipping in is not.
MAX_TARBALL_BYTES = 5 * 1024 * 1024


def isolated_env(workdir: Path, collections: Path) -> dict:
    """The caller's environment without any ANSIBLE_* (the Makefile exports the checkout's
    ansible.cfg) plus a config that knows only ``collections``."""
    cfg = workdir / "ansible.cfg"
    cfg.write_text(
        "[defaults]\n"
        f"collections_path = {collections}\n"
        f"roles_path = {workdir / 'no-roles'}\n"
        "interpreter_python = auto_silent\n"
        "retry_files_enabled = false\n"
        "stdout_callback = default\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update({
        "ANSIBLE_CONFIG": str(cfg),
        "ANSIBLE_COLLECTIONS_PATH": str(collections),
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
        "ANSIBLE_LOCAL_TEMP": str(workdir / "ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "HOME": os.environ.get("HOME", "/root"),
        "PATH": "%s:%s" % (BIN, os.environ.get("PATH", "/usr/bin:/bin")),
    })
    env.pop("PYTHONPATH", None)
    return env


def run(cmd: list, *, cwd: Path, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def tarball(tmp_path_factory) -> Path:
    """``ansible-galaxy collection build`` of the checkout, as a release would be built."""
    out = tmp_path_factory.mktemp("galaxy-build")
    env = isolated_env(out, out / "no-collections")
    proc = run([BIN / "ansible-galaxy", "collection", "build", ROOT, "--output-path", out], cwd=out, env=env)
    assert proc.returncode == 0, explain(proc)
    built = list(out.glob(f"{GALAXY['namespace']}-{GALAXY['name']}-*.tar.gz"))
    assert len(built) == 1, built
    return built[0]


def project_files() -> set[str]:
    """What git considers the project: tracked files and new files it does not ignore."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            check=True, capture_output=True).stdout.decode().split("\0")
    return set(filter(None, listed))


def test_tarball_holds_the_collection_and_nothing_else(tarball):
    with tarfile.open(tarball) as tar:
        members = {m.name: m for m in tar.getmembers()}
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    files = {name for name, m in members.items() if m.isfile()} - {"MANIFEST.json", "FILES.json"}
    size = tarball.stat().st_size

    assert manifest["collection_info"]["namespace"] == GALAXY["namespace"]
    assert manifest["collection_info"]["version"] == GALAXY["version"]
    modules = {f"plugins/modules/{p.name}" for p in (ROOT / "plugins" / "modules").glob("*.py")}
    assert modules and modules <= files
    assert {"meta/runtime.yml", "roles/mirror_server/meta/argument_specs.yml",
            "roles/mirror_server/README.md", "roles/build_host/README.md", "playbooks/snapshot.yml"} <= files

    # Nothing git ignores (venv, caches, test output, built artifacts, __pycache__) and no
    # top-level dot entry (.collections loops back into the checkout; .ci, .git are not content).
    assert sorted(files - project_files()) == [], "files outside the project were packed"
    dot_entries = sorted({name.split("/")[0] for name in members if name.startswith(".")})
    assert dot_entries == [], "top-level dot entries were packed"
    # Developer tooling users do not need: benchmarks, molecule scenarios, the README generator.
    assert sorted({name.split("/")[0] for name in members} & {"bench", "molecule", "tools"}) == []
    assert size < MAX_TARBALL_BYTES, f"{tarball.name} is {size / 1e6:.1f} MB"


@pytest.mark.slow
def test_snapshot_playbook_runs_from_the_installed_collection(tarball, tmp_path, signing_key, http_mirror):
    collections = tmp_path / "collections"
    env = isolated_env(tmp_path, collections)
    proc = run([BIN / "ansible-galaxy", "collection", "install", tarball, "-p", collections], cwd=tmp_path, env=env)
    assert proc.returncode == 0, explain(proc)
    installed = collections / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    assert (installed / "MANIFEST.json").is_file() and not (installed / ".collections").exists()

    # Ansible itself sees the install, and only it.
    listed = run([BIN / "ansible-galaxy", "collection", "list", FQCN, "--format", "json"], cwd=tmp_path, env=env)
    assert listed.returncode == 0, explain(listed)
    assert {path: list(found) for path, found in json.loads(listed.stdout).items()} == \
        {str(collections / "ansible_collections"): [FQCN]}
    doc = run([BIN / "ansible-doc", "--json", f"{FQCN}.portage_snapshot"], cwd=tmp_path, env=env)
    assert doc.returncode == 0, explain(doc)
    module_file = json.loads(doc.stdout)[f"{FQCN}.portage_snapshot"]["doc"]["filename"]
    assert module_file == str(installed / "plugins" / "modules" / "portage_snapshot.py")

    days = [day_date(0), day_date(1)]
    snapshots = build_mirror(tmp_path / "upstream", signing_key, days)
    upstream = http_mirror(tmp_path / "upstream")
    base = tmp_path / "mirror"
    git_port, http_port = free_port(), free_port()
    mirror_vars = {
        "mirror_server_base_dir": str(base),
        "mirror_server_cli_prefix": str(tmp_path / "cli"),
        "mirror_server_install_packages": False,  # git, gnupg, xz, nginx: `make deps`
        "mirror_server_service_manager": "direct",  # pid files below base, no systemd units
        # pytest's tmp_path is private to root: servers that dropped to nobody/www-data
        # could not read it.
        "mirror_server_git_daemon_user": "",
        "mirror_server_distfiles_user": "root",
        "mirror_server_git_daemon_port": git_port,
        "mirror_server_distfiles_port": http_port,
        "mirror_server_snapshot_mirrors": [upstream.url],
        "mirror_server_snapshot_key_path": str(base / "keys" / "snapshot-signing.asc"),
        "mirror_server_snapshot_key_controller_file": str(signing_key.pubkey_path),
        "mirror_server_snapshot_fingerprint": signing_key.fingerprint,
        "mirror_server_snapshot_timeout": 20,
    }
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {
        "hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}},
        "children": {"mirror": {"hosts": {"localhost": None}, "vars": mirror_vars}},
    }}))
    playbook = [BIN / "ansible-playbook", "-i", inventory, installed / "playbooks" / "snapshot.yml"]

    pids = set()

    def remember_servers():
        for name, executable in SERVERS.items():
            try:
                pids.add((int((base / "run" / name).read_text().strip()), executable))
            except (OSError, ValueError):
                pass

    try:
        proc = run(playbook, cwd=tmp_path, env=env)
        remember_servers()
        assert proc.returncode == 0, explain(proc)
        # The role's task files came from the install, never from the checkout.
        included = [line.split("included: ", 1)[1].split(" for ")[0]
                    for line in proc.stdout.splitlines() if line.startswith("included: ")]
        assert included and all(path.startswith(str(installed) + "/roles/mirror_server/") for path in included), \
            included
        assert str(ROOT) not in proc.stdout + proc.stderr

        tag = f"{days[-1][:4]}-{days[-1][4:6]}-{days[-1][6:]}"
        repo = base / "git" / "gentoo.git"
        assert f"Tag: {tag}" in proc.stdout
        assert tag in git("--git-dir", repo, "tag", "--list").split()
        clone = tmp_path / "clone"
        git("clone", "--quiet", "--depth", "1", "--branch", tag, f"git://127.0.0.1:{git_port}/gentoo.git", clone)
        assert tree_of_directory(clone) == snapshots[days[-1]].tree

        again = run(playbook, cwd=tmp_path, env=env)
        assert again.returncode == 0, explain(again)
        assert "changed=0" in again.stdout and "failed=0" in again.stdout, explain(again)
    finally:
        remember_servers()
        try:
            stopped = run(playbook + ["-e", "mirror_server_service_state=stopped"], cwd=tmp_path, env=env)
        finally:
            terminate(pids)
            left = leftover_processes(tmp_path)
    assert stopped.returncode == 0, explain(stopped)
    assert all(executable_of(pid) is None for pid, _server in pids), pids
    assert not port_answers(git_port) and not port_answers(http_port)
    assert not left, f"processes left behind: {left}"
