"""chroot_mount logic without mounting: mountinfo parsing, planning against a table, path safety.

Planning runs in check mode against a table given as text, so nothing here touches the mount
table; the real mounts are in tests/integration/test_chroot_mount.py (private namespaces).
"""
import os

import pytest

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._chroot_paths import is_below
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._mountinfo import (
    depths,
    is_shared,
    mounts_below,
    option_satisfied,
    parse_mountinfo,
    parse_mountinfo_line,
    propagation,
    top_mount_at,
    unescape,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._mounts import (
    Mounter,
    MountError,
    UnsafeTargetError,
    chroot_mount,
    ensure_mounted,
    normalize_spec,
    resolve_target,
    unmount_all,
)

# Copied from this Debian 12 VM (no systemd: everything private, /dev/pts stacked twice).
HOST = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334460k,nr_inodes=3083615,mode=755
25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24684084k
26 24 0:24 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534
29 26 0:26 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
"""

# Crafted: a systemd-like host (shared), a chroot with a space in its name, slaves, a bind of a
# subdirectory, several optional fields and an escaped tab, newline and backslash.
SYSTEMD = """\
1 0 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
2 1 0:5 / /dev rw,nosuid shared:2 - devtmpfs udev rw,size=4014592k,mode=755
3 2 0:25 / /dev/pts rw,nosuid,noexec shared:3 - devpts devpts rw,gid=5,mode=620,ptmxmode=000
4 1 0:4 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
100 1 0:4 / /srv/stage\\040one/proc rw,relatime shared:40 - proc proc rw
101 1 0:5 / /srv/stage\\040one/dev rw,nosuid master:2 - devtmpfs udev rw,size=4014592k,mode=755
102 101 0:25 / /srv/stage\\040one/dev/pts rw,nosuid,noexec shared:41 master:3 - devpts devpts rw,gid=5
103 1 8:1 /var/cache/distfiles /srv/stage\\040one/var/cache/distfiles rw,relatime shared:1 - ext4 /dev/sda1 rw
104 1 0:50 / /srv/we\\011ird\\012name\\134x rw shared:7 propagate_from:2 unbindable - tmpfs none rw
105 1 0:51 / /srv/stage\\040one2/proc rw,relatime - proc proc rw
"""


def test_parses_the_hosts_own_table():
    table = parse_mountinfo(HOST)
    assert [m.target for m in table][:3] == ["/proc", "/sys", "/dev"]
    dev = table[2]
    assert (dev.mount_id, dev.parent_id, dev.major_minor, dev.root) == (24, 27, "0:6", "/")
    assert (dev.fstype, dev.source, dev.options) == ("devtmpfs", "devtmpfs", "rw,relatime")
    assert dev.super_options == "rw,size=12334460k,nr_inodes=3083615,mode=755"
    assert dev.optional == () and propagation(dev) == "private"
    # Stacked /dev/pts: the lookup reaches the one mounted last, on top of the first.
    assert top_mount_at(table, "/dev/pts").mount_id == 29
    assert depths(table)[29] == depths(table)[26] + 1


def test_this_machines_table_parses_line_for_line():
    with open("/proc/self/mountinfo") as handle:
        lines = [line for line in handle.read().splitlines() if line]
    table = parse_mountinfo("\n".join(lines))
    assert len(table) == len(lines)
    assert any(m.target == "/" for m in table) and all(m.fstype for m in table)


def test_octal_escapes_and_optional_fields():
    table = parse_mountinfo(SYSTEMD)
    stage = [m for m in table if m.mount_id == 101][0]
    assert stage.target == "/srv/stage one/dev" and stage.optional == ("master:2",)
    assert propagation(stage) == "slave" and not is_shared(stage)
    pts = [m for m in table if m.mount_id == 102][0]
    assert pts.optional == ("shared:41", "master:3") and propagation(pts) == "shared,slave" and is_shared(pts)
    odd = [m for m in table if m.mount_id == 104][0]
    assert odd.target == "/srv/we\tird\nname\\x"
    assert odd.optional == ("shared:7", "propagate_from:2", "unbindable")
    assert propagation(odd) == "shared,unbindable" and odd.fstype == "tmpfs" and odd.source == "none"
    assert [m for m in table if m.mount_id == 103][0].root == "/var/cache/distfiles"


def test_unescape_keeps_non_utf8_bytes():
    # A latin-1 name written escaped (the kernel escapes only space, tab, newline, backslash,
    # but \\ooo may encode any byte): it must round-trip to the same bytes.
    assert os.fsencode(unescape("/srv/caf\\351")) == b"/srv/caf\xe9"
    assert unescape("/srv/a\\040b") == "/srv/a b" and unescape("/plain") == "/plain"
    assert os.fsencode(unescape("/x\\303\\251")) == "/x\u00e9".encode()


def test_malformed_line_is_a_clear_error():
    with pytest.raises(MountError, match="cannot parse mountinfo line"):
        parse_mountinfo_line("22 27 0:21 / /proc rw,relatime proc proc rw")


def test_below_is_strict_and_not_a_prefix_match():
    table = parse_mountinfo(SYSTEMD)
    root = "/srv/stage one"
    below = [m.target for m in mounts_below(table, root)]
    assert below == ["/srv/stage one/proc", "/srv/stage one/dev", "/srv/stage one/dev/pts",
                     "/srv/stage one/var/cache/distfiles"]
    on_root = parse_mountinfo_line("106 1 8:1 /srv/stage\\040one /srv/stage\\040one rw - ext4 /dev/sda1 rw")
    assert mounts_below([on_root], root) == [] and not is_below("/srv/stage one2/proc", root)


def test_options_compare_like_the_kernel_shows_them():
    tmpfs = parse_mountinfo_line("90 1 0:60 / /r/var/tmp/portage rw,nosuid,relatime - tmpfs tmpfs "
                                 "rw,size=2097152k,mode=775,uid=250,gid=250")
    for ok in ("size=2G", "size=2048M", "size=2097152k", "mode=0775", "uid=250", "nosuid", "rw", "exec",
               "defaults", "size=50%"):
        assert option_satisfied(ok, tmpfs), ok
    for bad in ("size=1G", "mode=755", "ro", "noexec", "nosuid=1", "gid=0"):
        assert not option_satisfied(bad, tmpfs), bad


def test_normalize_spec_defaults_and_errors():
    assert normalize_spec({"target": "proc", "type": "proc"}) == {
        "src": "proc", "target": "proc", "type": "proc", "options": [], "rslave": False}
    assert normalize_spec({"src": "/dev", "target": "dev", "type": "rbind"})["rslave"] is True
    assert normalize_spec({"target": "t", "type": "tmpfs", "options": "size=1G,mode=775"})["options"] == [
        "size=1G", "mode=775"]
    with pytest.raises(MountError, match="needs src"):
        normalize_spec({"target": "dev", "type": "rbind"})
    with pytest.raises(MountError, match="absolute host path"):
        normalize_spec({"src": "dev", "target": "dev", "type": "bind"})
    with pytest.raises(MountError, match="no target"):
        normalize_spec({"type": "proc"})


@pytest.fixture
def root(tmp_path):
    stage = tmp_path / "stage"
    for name in ("proc", "dev", "sys", "var/tmp"):
        (stage / name).mkdir(parents=True)
    return str(stage)


def test_refused_roots(tmp_path):
    a_file = tmp_path / "f"
    a_file.write_text("")
    os.symlink("/", tmp_path / "slash")
    for path, message in (("/", "resolves to the host's /"), (str(tmp_path / "slash"), "resolves to the host's /"),
                          (str(tmp_path / "nope"), "does not exist"), (str(a_file), "is not a directory"),
                          ("stage", "must be an absolute path")):
        with pytest.raises(MountError, match=message):
            chroot_mount({"path": path}, check_mode=True, reader=lambda: [])
    assert issubclass(MountError, InfraError)


def test_target_symlinks_that_escape_are_refused(root, tmp_path):
    os.symlink("/dev", os.path.join(root, "hostdev"))
    os.symlink("../../outside", os.path.join(root, "var", "up"))
    os.symlink("/nonexistent/dir", os.path.join(root, "dangling"))
    (tmp_path / "elsewhere").mkdir()
    os.symlink(str(tmp_path / "elsewhere"), os.path.join(root, "var", "abs"))
    for target in ("hostdev", "hostdev/pts", "var/up", "var/up/x", "dangling", "dangling/x", "var/abs",
                   "../stage2", "proc/../../x", "/../../etc"):
        with pytest.raises(UnsafeTargetError, match="outside the staging root"):
            resolve_target(root, target)
    for target in ("", "/", ".", "proc/.."):
        with pytest.raises(UnsafeTargetError, match="staging root .* itself"):
            resolve_target(root, target)
    assert not (tmp_path / "outside").exists()


def test_target_symlinks_inside_the_root_are_followed(root):
    os.symlink("var/tmp", os.path.join(root, "tmp"))
    os.symlink("../tmp", os.path.join(root, "var", "tmp2"))  # var/tmp2 -> <root>/tmp -> var/tmp
    assert resolve_target(root, "tmp/portage") == (
        os.path.join(root, "var/tmp/portage"), [os.path.join(root, "var/tmp/portage")])
    assert resolve_target(root, "/var/tmp2/a/b")[1] == [os.path.join(root, "var/tmp/a"),
                                                        os.path.join(root, "var/tmp/a/b")]
    assert resolve_target(root, "proc") == (os.path.join(root, "proc"), [])


def test_a_file_in_the_way_is_refused(root):
    with open(os.path.join(root, "var", "file"), "w"):
        pass
    with pytest.raises(MountError, match="is not a directory"):
        resolve_target(root, "var/file/sub")


def table_for(root, lines):
    """The host table above plus ``lines`` below ``root`` (``{root}`` is substituted, escaped)."""
    escaped = root.replace(" ", "\\040")
    return parse_mountinfo(HOST + "".join(line.format(root=escaped) + "\n" for line in lines))


def plan(root, table, specs=None, extra=None, state="mounted"):
    params = {"path": root, "mounts": specs, "extra_mounts": extra, "state": state}
    return chroot_mount(params, check_mode=True, reader=lambda: table)


def test_plan_on_an_empty_root_mounts_the_three(root):
    result = plan(root, table_for(root, []))
    assert result["changed"] is True and result["mounts"] == []
    assert result["actions"] == [
        "mount proc proc on %s/proc" % root,
        "mount rbind /dev on %s/dev" % root, "make-rslave %s/dev" % root,
        "mount rbind /sys on %s/sys" % root, "make-rslave %s/sys" % root,
    ]
    assert "(would be mounted)" in result["diff"]["after"] and result["diff"]["before"] == ""


MOUNTED = [
    "200 27 0:21 / {root}/proc rw,relatime - proc proc rw",
    "201 27 0:6 / {root}/dev rw,relatime - devtmpfs devtmpfs rw,mode=755",
    "202 201 0:24 / {root}/dev/pts rw,relatime - devpts devpts rw,mode=600",
    "203 202 0:26 / {root}/dev/pts rw,relatime - devpts devpts rw,mode=600",
    "204 27 0:22 / {root}/sys rw,relatime - sysfs sysfs rw",
    "205 204 0:28 / {root}/sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
]


def test_plan_when_all_is_mounted_changes_nothing(root):
    result = plan(root, table_for(root, MOUNTED))
    assert result["changed"] is False and result["actions"] == []
    assert [m["target"] for m in result["mounts"]][:2] == ["%s/proc" % root, "%s/dev" % root]


def test_plan_only_the_difference(root):
    lines = [line for line in MOUNTED if "/sys" not in line]
    lines[1] = lines[1].replace("rw,relatime -", "rw,relatime shared:9 -")  # dev still shared
    result = plan(root, table_for(root, lines), extra=[
        {"target": "var/tmp/portage", "type": "tmpfs", "options": ["size=1G"]}])
    assert result["actions"] == [
        "make-rslave %s/dev" % root,
        "mount rbind /sys on %s/sys" % root, "make-rslave %s/sys" % root,
        "create %s/var/tmp/portage" % root,
        "mount tmpfs tmpfs on %s/var/tmp/portage" % root,
    ]
    assert not os.path.exists(os.path.join(root, "var/tmp/portage")), "check mode created the target"


def test_plan_remounts_changed_options(root):
    lines = MOUNTED + ["206 27 0:60 / {root}/var/tmp rw,relatime - tmpfs tmpfs rw,size=1048576k,mode=775"]
    extra = [{"target": "var/tmp", "type": "tmpfs", "options": ["size=1G", "mode=775"]}]
    assert plan(root, table_for(root, lines), extra=extra)["changed"] is False
    extra[0]["options"] = ["size=2G"]
    assert plan(root, table_for(root, lines), extra=extra)["actions"] == [
        "remount %s/var/tmp with size=2G" % root]


def test_plan_refuses_a_different_mount_in_the_way(root):
    lines = [MOUNTED[0].replace("proc proc", "tmpfs tmpfs")]
    with pytest.raises(MountError, match="already has a tmpfs mount of tmpfs, not the requested proc"):
        plan(root, table_for(root, lines))


def test_plan_recognises_binds_by_device_and_directory(root):
    lines = ["210 27 254:0 /var/cache {root}/var/tmp rw,relatime - ext4 /dev/vda rw"]
    mounter = Mounter(check_mode=True)
    table = table_for(root, lines)
    same = normalize_spec({"src": "/var/cache", "target": "var/tmp", "type": "bind"})
    assert ensure_mounted(root, [same], mounter, reader=lambda: table) == [] and mounter.actions == []
    other = normalize_spec({"src": "/var/lib", "target": "var/tmp", "type": "bind"})
    with pytest.raises(MountError, match="already has a ext4 mount of /dev/vda"):
        ensure_mounted(root, [other], mounter, reader=lambda: table)


def test_plan_unmount_is_deepest_first_and_stays_below_the_root(root):
    lines = MOUNTED + ["207 27 0:70 / {root}2/proc rw - proc proc rw"]  # a sibling root: not ours
    result = plan(root, table_for(root, lines), state="unmounted")
    assert result["actions"] == [
        "umount %s/dev/pts" % root,  # 203, stacked on 202
        "umount %s/sys/fs/cgroup" % root,  # as deep as 202; the later mount goes first
        "umount %s/dev/pts" % root,  # 202
        "umount %s/sys" % root,
        "umount %s/dev" % root,
        "umount %s/proc" % root,
    ]
    assert result["diff"]["after"] == ""
    assert not any(a.endswith("2/proc") or a in ("umount /dev/pts", "umount /proc") for a in result["actions"])


def test_unmount_plan_is_empty_when_nothing_is_mounted(root):
    mounter = Mounter(check_mode=True)
    unmount_all(root, mounter, reader=lambda: table_for(root, []))
    assert mounter.actions == []


def test_unsafe_targets_are_refused_before_anything_is_planned(root):
    os.symlink("/dev", os.path.join(root, "hostdev"))
    with pytest.raises(UnsafeTargetError, match="resolves to /dev/x, outside the staging root"):
        plan(root, table_for(root, []), extra=[{"src": "/run", "target": "hostdev/x", "type": "rbind"}])
