"""What the molecule scenarios' create, verify and destroy playbooks build, check and stop.

Every scenario keeps everything below one work directory (``--work``, e.g.
``/var/tmp/molecule-mirror_server``) and writes what its converge needs into
``<work>/scenario.json`` (read by the playbooks with ``include_vars``). Servers bind free
127.0.0.1 ports; the background ones this script starts record their PID in ``<work>/run``
and are stopped by ``stop``, which signals only a PID whose process still is that server.

Subcommands (each prints one JSON object):

``upstream``     a throwaway ed25519 signing key, a signed snapshot of the test stage's ebuild
                 repository laid out like distfiles.gentoo.org/snapshots/, served by a
                 detached ``python -m http.server`` on a free loopback port
``stage``        the signed test stage (built once, then cached in .cache/teststage)
``pkgdir``       a PKGDIR of real-format gpkg packages and its Packages index
``builder``      real packages: ``emerge --buildpkgonly`` in a root unpacked from the stage
``client-root``  a client root unpacked from the stage, app-misc/hello removed from it
``client-install``  ``emerge --getbinpkgonly app-misc/hello`` in the client root, then runs it
``mount-namespace``  whether this runs in a private mount namespace (``unshare``)
``stop``         the servers below the work directory, by PID; refuses while anything is
                 mounted below it, then removes it (``--remove``)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

from mirrorprocs import ROLE_SERVERS, executable_of, free_port, port_answers, running_servers, terminate, wait_gone  # noqa: E402
from snapmirror import GENTOO_UID, day_date, make_signing_key, write_snapshot  # noqa: E402
from stage_repo import restricted_distfile, stage_repo_tree  # noqa: E402

STATE = "scenario.json"
UPSTREAM_PID = "upstream-http.pid"
# Where the scenarios point the roles' pid files (mirror_server_run_dir, binpkg_server_run_dir).
RUN_DIRS = ("mirror/run", "binhost/run")


def load_state(work: Path) -> dict:
    try:
        return json.loads((work / STATE).read_text())
    except (OSError, ValueError):
        return {}


def save_state(work: Path, **values) -> dict:
    state = {**load_state(work), **values}
    (work / STATE).write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
    return state


def mounts_below(path: Path) -> list[str]:
    table = subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    return [t for t in table if t == str(path) or t.startswith(str(path) + "/")]


def prepare_work(work: Path) -> None:
    """An empty work directory others can traverse (git daemon runs as nobody, nginx's workers
    as www-data); a previous run's servers are stopped first."""
    if work.exists():
        stop_servers(work)
        refuse_mounts(work)
        shutil.rmtree(work)
    work.mkdir(parents=True)
    work.chmod(0o755)
    (work / "run").mkdir()


def refuse_mounts(work: Path) -> None:
    left = mounts_below(work)
    if left:
        raise SystemExit(f"refusing to touch {work}: mounted below it: {', '.join(left)}")


def upstream_server_pid(work: Path) -> int | None:
    """The PID in the upstream pid file when that process still is our http.server."""
    try:
        pid = int((work / "run" / UPSTREAM_PID).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    if b"http.server" in cmdline and str(work / "upstream").encode() in cmdline:
        return pid
    return None


def cmd_upstream(args) -> dict:
    work = args.work
    prepare_work(work)
    upstream = work / "upstream"
    date = day_date(0)
    # A short GNUPGHOME (gpg-agent's socket path is length-limited); the agent is stopped on exit
    # and only the public half of the key is kept.
    with make_signing_key(uid=GENTOO_UID) as key:
        write_snapshot(upstream, date, stage_repo_tree(0), key, latest=True)
        (work / "keys").mkdir()
        pubkey = work / "keys" / "upstream-signing-key.asc"
        shutil.copyfile(key.pubkey_path, pubkey)
        fingerprint = key.fingerprint
    port = free_port()
    log = open(work / "run" / "upstream-http.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory",
                             str(upstream), str(port)], stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    (work / "run" / UPSTREAM_PID).write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + 15
    while not port_answers(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the upstream HTTP server on 127.0.0.1:{port} did not start; see {log.name}")
        time.sleep(0.05)
    # What an admin does with a fetch-restricted file: put it into the mirror's distfiles.
    name, data = restricted_distfile()
    (work / "restricted").mkdir()
    (work / "restricted" / name).write_bytes(data)
    return save_state(
        work,
        upstream_url=f"http://127.0.0.1:{port}",
        upstream_pid=proc.pid,
        snapshot_key=str(pubkey),
        snapshot_fingerprint=fingerprint,
        snapshot_tag=f"{date[:4]}-{date[4:6]}-{date[6:]}",
        restricted_distfile=str(work / "restricted" / name),
        git_port=free_port(),
        http_port=free_port(),
    )


def cmd_stage(args) -> dict:
    from teststage import build_stage
    stage = build_stage()
    return save_state(args.work, stage_src=str(stage.tarball), stage_key=str(stage.pubkey),
                      stage_fingerprint=stage.fingerprint)


def cmd_pkgdir(args) -> dict:
    import pkgdir
    work = args.work
    prepare_work(work)
    packages = [{"cpv": "dev-libs/libfoo-1.0", "size": 8192},
                {"cpv": "app-misc/hello-1", "size": 4096},
                {"cpv": "app-misc/envprobe-1", "size": 2048, "build_id": 3}]
    entries = pkgdir.make_pkgdir(work / "pkgdir", packages)
    return save_state(work, pkgdir=str(work / "pkgdir"), binhost_port=free_port(),
                      revision=pkgdir.REVISION, packages=sorted(e["CPV"] for e in entries))


BUILD = "emerge --color=n --quiet-build=y --oneshot --buildpkgonly dev-libs/libfoo app-misc/hello"


def cmd_builder(args) -> dict:
    from teststage import build_stage, extract_stage, in_chroot
    work = args.work
    prepare_work(work)
    stage = build_stage()
    builder = extract_stage(stage.tarball, work / "builder")
    in_chroot(builder, BUILD)
    save_state(work, stage_src=str(stage.tarball), stage_key=str(stage.pubkey),
               stage_fingerprint=stage.fingerprint)
    return save_state(work, pkgdir=str(builder / "var/cache/binpkgs"), binhost_port=free_port())


def cmd_client_root(args) -> dict:
    from teststage import extract_stage, in_chroot
    state = load_state(args.work)
    client = extract_stage(Path(state["stage_src"]), args.work / "client")
    # Without hello, whatever installs it later can only have come from the binhost.
    in_chroot(client, "emerge --color=n --unmerge app-misc/hello && test ! -e /usr/bin/hello")
    return save_state(args.work, client_root=str(client))


def cmd_client_install(args) -> dict:
    from teststage import StageError, in_chroot
    client = Path(load_state(args.work)["client_root"])
    try:
        install = in_chroot(client, "emerge --color=n --nospinner --getbinpkgonly --oneshot app-misc/hello")
        run = in_chroot(client, "hello")
    except StageError as exc:
        raise SystemExit(f"the client could not install app-misc/hello from the binhost:\n{str(exc)[-4000:]}")
    return {"emerge": [line for line in install.stdout.splitlines() if line.startswith(">>> ")],
            "hello": run.stdout.strip(),
            "fetched": sorted(str(p.relative_to(client)) for p in (client / "var/cache/binhost").rglob("*.gpkg.tar"))}


def cmd_mount_namespace(args) -> dict:
    """Whether this process runs in a mount namespace of its own that does not propagate
    mounts back: an ancestor (the one that ran ``unshare --mount``) is in another namespace,
    and no mount here is ``shared:`` (``--propagation private``)."""
    ours = os.readlink("/proc/self/ns/mnt")
    outer = None
    pid = os.getppid()
    while pid > 1 and outer is None:
        try:
            if os.readlink(f"/proc/{pid}/ns/mnt") != ours:
                outer = pid
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    shared = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if any(field.startswith("shared:") for field in line.split(" - ")[0].split()[6:])]
    return {"namespace": ours, "outer_pid": outer, "shared_mounts": shared,
            "private": outer is not None and not shared}


def stop_servers(work: Path) -> list[str]:
    """SIGTERM our upstream http.server and the roles' daemons whose pid files are below
    ``work`` (each only while its PID still is that program); wait until they are gone."""
    stopped = []
    pid = upstream_server_pid(work)
    if pid:
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)
        stopped.append(f"http.server {pid}")
    for run_dir in RUN_DIRS:
        servers = running_servers(work / run_dir, ROLE_SERVERS)
        terminate([(pid, executable_of(pid)) for pid in servers.values()])
        stopped += [f"{pid_file.name} {pid}" for pid_file, pid in servers.items()]
    return stopped


def cmd_stop(args) -> dict:
    work = args.work
    stopped = stop_servers(work)
    left = [p for p in (upstream_server_pid(work),) if p]
    for run_dir in RUN_DIRS:
        left += list(running_servers(work / run_dir, ROLE_SERVERS).values())
    if left:
        raise SystemExit(f"still running below {work}: {left}")
    removed = False
    if args.remove and work.exists():
        refuse_mounts(work)
        shutil.rmtree(work)
        removed = True
    return {"stopped": stopped, "removed": removed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("command", choices=["upstream", "stage", "pkgdir", "builder", "client-root",
                                            "client-install", "mount-namespace", "stop"])
    parser.add_argument("--work", type=Path, required=True, help="the scenario's work directory")
    parser.add_argument("--remove", action="store_true", help="stop: remove the work directory too")
    args = parser.parse_args(argv)
    args.work = args.work.resolve()
    if not str(args.work).startswith("/var/tmp/molecule-"):
        # Everything here is removed by `stop --remove`: keep it to the scenarios' own directories.
        parser.error(f"--work must be below /var/tmp/molecule-*: {args.work}")
    result = globals()["cmd_" + args.command.replace("-", "_")](args)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
