"""chroot_mount for real: mounts happen, but only in a private mount namespace per test.

Every test gets its own namespace: a ``sleep`` started by ``unshare --mount --propagation
private`` holds it, and each command (the ansible CLI included) enters it with ``nsenter``.
Killing the holder discards the namespace with whatever is mounted in it; the teardown then
asserts that the host's mount table shows nothing under the test directory.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ansible_run import ROOT, run_module

MODULE = "gentoo_binhost.infra.chroot_mount"
COLLECTIONS = str(ROOT / ".collections")
DEV_PTS = "/dev/pts"


def host_targets():
    out = subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True, check=True)
    return out.stdout.split("\n")


class MountNamespace:
    """A private mount namespace held open by one process, entered with nsenter."""

    def __init__(self, shared_root=False):
        self.holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "--", "sleep", "3600"])
        own = os.readlink("/proc/self/ns/mnt")
        for _ in range(500):
            try:
                if os.readlink("/proc/%d/ns/mnt" % self.holder.pid) != own:
                    break
            except OSError:
                pass
            time.sleep(0.01)
        else:
            self.close()
            raise AssertionError("unshare did not create a mount namespace")
        self.wrapper = ["nsenter", "--mount=/proc/%d/ns/mnt" % self.holder.pid, "--"]
        if shared_root:
            # Like a systemd host: every mount shared, so a careless unmount would propagate.
            self.run(["mount", "--make-rshared", "/"])

    def run(self, argv, check=True, **kwargs):
        return subprocess.run(self.wrapper + argv, capture_output=True, text=True, check=check, **kwargs)

    def mountinfo(self):
        return Path("/proc/%d/mountinfo" % self.holder.pid).read_text().splitlines()

    def targets(self):
        return [unescape(line.split(" ")[4]) for line in self.mountinfo()]

    def outside(self, root):
        """Mountinfo lines of mounts that are not strictly below ``root``."""
        prefix = str(root).rstrip("/") + "/"
        return [line for line in self.mountinfo() if not unescape(line.split(" ")[4]).startswith(prefix)]

    def assert_rest_unchanged(self, root, before):
        """The mounts outside ``root`` are the ones read before, line for line.

        Other work on this machine (an mmdebstrap run, say) may remove a directory that was a
        mount point when the namespace was copied; the kernel then detaches that copy here too.
        Such vanished lines are excused when the host no longer has the mount either.
        """
        after = self.outside(root)
        assert [line for line in after if line not in before] == [], "mounts appeared outside the root"
        host = set(unescape(line.split(" ")[4]) for line in Path("/proc/self/mountinfo").read_text().splitlines())
        gone = [line for line in before if line not in after]
        assert [line for line in gone if unescape(line.split(" ")[4]) in host] == [], "mounts vanished: %s" % gone

    def below(self, root):
        prefix = str(root).rstrip("/") + "/"
        return [t for t in self.targets() if t.startswith(prefix)]

    def module(self, args, check=False, diff=False):
        return run_module(MODULE, args, check=check, diff=diff, wrapper=self.wrapper)

    def logic(self, code, *args):
        """Run python ``code`` (module_utils importable) inside the namespace; its JSON stdout."""
        prelude = "import sys, json; sys.path.insert(0, %r)\n" % COLLECTIONS
        proc = self.run([sys.executable, "-c", prelude + code] + [str(a) for a in args], check=False)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def close(self):
        self.holder.send_signal(signal.SIGKILL)
        self.holder.wait()


def unescape(field):
    from ansible_collections.gentoo_binhost.infra.plugins.module_utils._mountinfo import unescape as real

    return real(field)


@pytest.fixture(params=["private", "shared"])
def ns(request, tmp_path):
    namespace = MountNamespace(shared_root=request.param == "shared")
    try:
        yield namespace
    finally:
        namespace.close()
        leftover = [t for t in host_targets() if t == str(tmp_path) or t.startswith(str(tmp_path) + "/")]
        assert not leftover, "mounts left on the host: %s" % leftover


@pytest.fixture
def stage(tmp_path):
    root = tmp_path / "stage root"  # a space: mountinfo escapes it as \040
    for name in ("proc", "dev", "sys", "etc"):
        (root / name).mkdir(parents=True)
    return root


def test_four_passes_mounted_then_unmounted(ns, stage):
    args = {"path": str(stage)}
    before = ns.outside(stage)

    check = ns.module(args, check=True, diff=True)
    assert check["_rc"] == 0 and check["changed"] is True, check
    assert any("mount proc proc on %s/proc" % stage in a for a in check["actions"]), check["actions"]
    assert "+%s/dev rbind /dev (would be mounted)" % stage in check["_stdout"], check["_stdout"]
    assert ns.below(stage) == [], "check mode mounted something"

    apply = ns.module(args, diff=True)
    assert apply["_rc"] == 0 and apply["changed"] is True, apply
    targets = [m["target"] for m in apply["mounts"]]
    for sub in ("proc", "dev", "sys", "dev/pts", "sys/fs/cgroup"):
        assert "%s/%s" % (stage, sub) in targets, targets
    rbound = [m for m in apply["mounts"] if m["target"].startswith(("%s/dev" % stage, "%s/sys" % stage))]
    assert rbound and all(m["propagation"] in ("private", "slave") for m in rbound), rbound
    assert "%s/dev/pts devpts" % stage in apply["_stdout"], "diff shows the mounts after"

    again = ns.module(args)
    assert again["_rc"] == 0 and again["changed"] is False, again
    recheck = ns.module(args, check=True)
    assert recheck["_rc"] == 0 and recheck["changed"] is False, recheck
    ns.assert_rest_unchanged(stage, before)

    down = dict(args, state="unmounted")
    check = ns.module(down, check=True, diff=True)
    assert check["_rc"] == 0 and check["changed"] is True and check["mounts"], check
    assert "-%s/dev/pts devpts" % stage in check["_stdout"], check["_stdout"]
    assert "umount %s/dev/pts" % stage in check["actions"]
    assert ns.below(stage), "check mode unmounted something"
    apply = ns.module(down)
    assert apply["_rc"] == 0 and apply["changed"] is True and apply["mounts"] == [], apply
    assert ns.below(stage) == []
    again = ns.module(down)
    assert again["_rc"] == 0 and again["changed"] is False, again
    recheck = ns.module(down, check=True)
    assert recheck["_rc"] == 0 and recheck["changed"] is False, recheck

    assert DEV_PTS in ns.targets(), "the namespace lost /dev/pts"
    ns.assert_rest_unchanged(stage, before)


CYCLES = r"""
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._mounts import chroot_mount
root, count = sys.argv[1], int(sys.argv[2])
extra = [{"target": "var/tmp/portage", "type": "tmpfs", "options": ["size=64M", "mode=775"]}]
changes = []
for _ in range(count):
    up = chroot_mount({"path": root, "extra_mounts": extra})
    same = chroot_mount({"path": root, "extra_mounts": extra})
    down = chroot_mount({"path": root, "extra_mounts": extra, "state": "unmounted"})
    changes.append([up["changed"], same["changed"], len(up["mounts"]), down["changed"], len(down["mounts"])])
print(json.dumps(changes))
"""


def test_fifty_cycles_leave_the_rest_of_the_table_alone(ns, stage):
    before = ns.outside(stage)
    changes = ns.logic(CYCLES, stage, 50)
    assert len(changes) == 50
    mounted = changes[0][2]
    assert mounted >= 6  # proc, dev, dev/pts, dev/shm, sys, sys/fs/cgroup, ..., the tmpfs
    assert all(c == [True, False, mounted, True, 0] for c in changes), changes
    ns.assert_rest_unchanged(stage, before)
    assert DEV_PTS in ns.targets()
    assert ns.below(stage) == []


@pytest.mark.parametrize("where", ["tmpfs", "proc"])
def test_busy_unmount_is_a_clear_error(ns, stage, where):
    args = {"path": str(stage), "extra_mounts": [{"target": "var/tmp/portage", "type": "tmpfs"}]}
    assert ns.module(args)["changed"] is True
    busy_dir = stage / ("var/tmp/portage" if where == "tmpfs" else "proc")
    # nsenter's --wd opens the directory before entering the namespace (the directory under the
    # mount); env --chdir changes into it inside. Both exec, so the PID is the one holding it.
    sleeper = subprocess.Popen(ns.wrapper + ["env", "--chdir=%s" % busy_dir, "sleep", "600"])
    try:
        for _ in range(500):
            try:
                if os.readlink("/proc/%d/exe" % sleeper.pid).endswith("/sleep"):
                    break
            except OSError:
                pass
            time.sleep(0.01)
        result = ns.module(dict(args, state="unmounted"))
        assert result["_rc"] != 0 and result["failed"] is True, result
        assert "cannot unmount %s: target is busy" % busy_dir in result["msg"], result["msg"]
        assert "fuser -vm %s" % busy_dir in result["msg"]
        assert "exception" not in result
        assert str(busy_dir) in ns.below(stage), "the busy mount must stay mounted"
        if where == "proc":
            # Only when asked: --lazy detaches it although the process still holds it.
            lazy = ns.module(dict(args, state="unmounted", lazy=True))
            assert lazy["_rc"] == 0 and lazy["changed"] is True and lazy["mounts"] == [], lazy
            assert "umount --lazy %s" % busy_dir in lazy["actions"]
    finally:
        sleeper.kill()
        sleeper.wait()
    # Consistent: once the process is gone a new run finishes the job.
    result = ns.module(dict(args, state="unmounted"))
    assert result["_rc"] == 0 and result["changed"] is (where == "tmpfs") and result["mounts"] == [], result
    assert DEV_PTS in ns.targets()


def test_refusals_change_nothing(ns, stage, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("not a directory\n")
    hostile = tmp_path / "hostile"
    (hostile / "proc").mkdir(parents=True)
    (hostile / "sys").mkdir()
    os.symlink("/dev", hostile / "dev")
    cases = [
        ({"path": "/"}, "resolves to the host's / ; give the path of a chroot"),
        ({"path": str(a_file)}, "is not a directory"),
        ({"path": str(tmp_path / "missing")}, "does not exist"),
        ({"path": str(hostile)}, "resolves to /dev, outside the staging root"),
        ({"path": str(stage), "extra_mounts": [{"target": "../escape", "type": "tmpfs"}]}, "outside the staging root"),
        ({"path": str(stage), "mounts": [{"target": "/", "type": "tmpfs"}]}, "the staging root %s itself" % stage),
    ]
    table = ns.outside(tmp_path)
    for args, message in cases:
        # A bad path is refused whatever the state; bad targets matter only when mounting.
        bad_path = args["path"] not in (str(stage), str(hostile))
        for state in ("mounted", "unmounted") if bad_path else ("mounted",):
            for check in (True, False):
                result = ns.module(dict(args, state=state), check=check)
                assert result["_rc"] != 0 and result["failed"] is True, (args, result)
                assert message in result["msg"], (args, result["msg"])
                assert "exception" not in result
                assert ns.below(tmp_path) == [], "a refused run mounted something"
                ns.assert_rest_unchanged(tmp_path, table)
    assert not (hostile / "dev" / "proc").exists() and sorted(os.listdir(hostile)) == ["dev", "proc", "sys"]
    assert not (tmp_path / "escape").exists()


def test_extra_mounts_bind_and_options(ns, stage, tmp_path):
    distfiles = tmp_path / "distfiles cache"
    distfiles.mkdir()
    (distfiles / "foo-1.tar.gz").write_text("x")
    (stage / "var").mkdir()
    os.symlink("var/tmp", stage / "tmp")  # a link that stays inside the root is fine
    args = {"path": str(stage), "extra_mounts": [
        {"src": "/run", "target": "run", "type": "rbind"},
        {"target": "tmp/portage", "type": "tmpfs", "options": "size=32M,mode=775"},
        {"src": str(distfiles), "target": "var/cache/distfiles", "type": "bind"},
    ]}
    first = ns.module(args)
    assert first["_rc"] == 0 and first["changed"] is True, first
    by_target = dict((m["target"], m) for m in first["mounts"])
    tmpfs = by_target["%s/var/tmp/portage" % stage]
    assert tmpfs["type"] == "tmpfs" and "size=32768k" in tmpfs["super_options"], tmpfs
    assert ns.run(["cat", str(stage / "var/cache/distfiles/foo-1.tar.gz")]).stdout == "x"
    assert ns.module(args)["changed"] is False
    bigger = {"path": str(stage), "mounts": [dict(args["extra_mounts"][1], options=["size=64M", "mode=775"])]}
    resized = ns.module(bigger)
    assert resized["changed"] is True and resized["actions"] == [
        "remount %s/var/tmp/portage with size=64M,mode=775" % stage], resized
    assert ns.module(bigger)["changed"] is False
    other = ns.module({"path": str(stage), "mounts": [{"target": "var/tmp/portage", "type": "proc"}]})
    assert other["failed"] and "already has a tmpfs mount" in other["msg"]
    down = ns.module({"path": str(stage), "state": "unmounted"})
    assert down["changed"] is True and ns.below(stage) == []
    assert DEV_PTS in ns.targets()


def test_documentation_renders():
    out = subprocess.run([str(Path(sys.executable).parent / "ansible-doc"), MODULE], cwd=ROOT,
                         capture_output=True, text=True, env={"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
                                                              "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    for word in ("extra_mounts", "rslave", "lazy", "fuser", "EXAMPLES", "RETURN", "propagation"):
        assert word in out.stdout
