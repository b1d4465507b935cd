"""portage_repo_conf and portage_make_conf through the real ansible CLI, read back by real Portage."""
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_run import ROOT, run_module, tree_snapshot as tree
from testkit import host_dir, root_link

REPO_MODULE = "gentoo_binhost.infra.portage_repo_conf"
MAKE_MODULE = "gentoo_binhost.infra.portage_make_conf"
BINREPO_MODULE = "gentoo_binhost.infra.portage_binrepos_conf"
BIN = Path(sys.executable).parent

MAKE_CONF = """\
# Set by the stage3 build
COMMON_FLAGS="-O2 -pipe"
CFLAGS="${COMMON_FLAGS}"
FEATURES="buildpkg
    -news"  # keep the binhost quiet
PORTAGE_USERNAME=root
PORTAGE_GRPNAME='root'
"""

REPOS_CONF = """\
# written by hand
[DEFAULT]
main-repo = gentoo

[gentoo]
location = {location}
sync-rsync-extra-opts = --exclude=/distfiles
auto-sync = yes
"""




@pytest.fixture
def root(tmp_path):
    """A configuration root Portage can read: make.globals linked in, a tiny gentoo repository."""
    base = tmp_path / "root"
    (base / "share/portage").mkdir(parents=True)
    (base / "share/portage/config").symlink_to(BIN.parent / "share/portage/config")
    repo = base / "var/db/repos/gentoo"
    (repo / "profiles").mkdir(parents=True)
    (repo / "metadata").mkdir()
    (repo / "profiles/repo_name").write_text("gentoo\n")
    (repo / "metadata/layout.conf").write_text("masters =\n")
    return base


def portageq(root, *args):
    env = {"PATH": "%s:/usr/bin:/bin" % BIN, "PORTAGE_CONFIGROOT": str(root),
           "PORTAGE_OVERRIDE_EPREFIX": str(root), "LC_ALL": "C.UTF-8", "HOME": str(root)}
    proc = subprocess.run([str(BIN / "portageq")] + list(args), env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc


def bash_value(path, name):
    proc = subprocess.run(["bash", "-c", 'set -e; source "$1"; printf %%s "${%s-UNSET}"' % name, "bash", str(path)],
                          env={}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def four_passes(module, args, root):
    before = tree(root)
    check = run_module(module, args, check=True)
    assert check["_rc"] == 0 and check["changed"] is True, check
    assert tree(root) == before, "check mode wrote below %s" % root
    apply = run_module(module, args)
    assert apply["_rc"] == 0 and apply["changed"] is True, apply
    again = run_module(module, args)
    assert again["_rc"] == 0 and again["changed"] is False, again
    recheck = run_module(module, args, check=True)
    assert recheck["_rc"] == 0 and recheck["changed"] is False, recheck
    return check, apply, again


# --------------------------------------------------------------------------- repos.conf

def test_repo_conf_four_passes_and_portage_reads_it(root):
    args = {"root": str(root), "name": "gentoo", "location": str(root / "var/db/repos/gentoo"),
            "sync_type": "git", "sync_uri": "https://mirror.example.org/git/gentoo.git",
            "auto_sync": True, "main_repo": True, "options": {"sync-depth": 1}}
    target = root / "etc/portage/repos.conf/gentoo.conf"
    check, apply, again = four_passes(REPO_MODULE, args, root)
    assert check["section"] == apply["section"] == again["section"] == {
        "location": args["location"], "sync-type": "git", "sync-uri": args["sync_uri"],
        "auto-sync": "yes", "sync-depth": "1"}
    assert apply["path"] == str(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o755
    repos = portageq(root, "repos_config", "%s/" % root).stdout
    gentoo = repos.split("[gentoo]\n", 1)[1]
    assert "sync-type = git\n" in gentoo and "sync-uri = %s\n" % args["sync_uri"] in gentoo
    assert "main-repo = gentoo\n" in repos
    assert portageq(root, "get_repo_path", "%s/" % root, "gentoo").stdout.strip() == args["location"]


def test_repo_conf_keeps_what_it_does_not_manage_and_shows_diff(root):
    conf = root / "etc/portage/repos.conf"
    conf.mkdir(parents=True)
    text = REPOS_CONF.format(location=root / "var/db/repos/gentoo")
    (conf / "gentoo.conf").write_text(text)
    (conf / "gentoo.conf").chmod(0o640)
    args = {"root": str(root), "name": "gentoo", "sync_type": "git", "sync_uri": "https://m.example.org/g.git",
            "auto_sync": False}
    result = run_module(REPO_MODULE, args, diff=True)
    assert result["changed"] is True, result
    after = (conf / "gentoo.conf").read_text()
    assert after == text.replace("auto-sync = yes\n", "auto-sync = no\nsync-type = git\n"
                                 "sync-uri = https://m.example.org/g.git\n")
    assert stat.S_IMODE((conf / "gentoo.conf").stat().st_mode) == 0o640, "atomic write lost the mode"
    shown = result["_stdout"]
    assert "-auto-sync = yes" in shown and "+auto-sync = no" in shown and "+sync-type = git" in shown
    gentoo = portageq(root, "repos_config", "%s/" % root).stdout.split("[gentoo]\n", 1)[1]
    assert "auto-sync = no\n" in gentoo and "sync-uri = https://m.example.org/g.git\n" in gentoo


def test_repo_conf_mode_and_absent(root):
    args = {"root": str(root), "name": "local", "location": "/var/db/repos/local", "mode": "0600"}
    apply = run_module(REPO_MODULE, args)
    path = root / "etc/portage/repos.conf/local.conf"
    assert apply["changed"] and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert run_module(REPO_MODULE, dict(args, mode="0644"), check=True)["changed"] is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    gone = {"root": str(root), "name": "local", "state": "absent"}
    check = run_module(REPO_MODULE, gone, check=True)
    assert check["changed"] is True and path.exists()
    assert run_module(REPO_MODULE, gone)["changed"] is True and not path.exists()
    assert run_module(REPO_MODULE, gone)["changed"] is False


def test_repo_conf_single_file(root):
    conf = root / "etc/portage/repos.conf"
    conf.parent.mkdir(parents=True)
    text = REPOS_CONF.format(location=root / "var/db/repos/gentoo")
    conf.write_text(text)
    args = {"root": str(root), "name": "overlay", "location": "/var/db/repos/overlay", "priority": 50}
    result = run_module(REPO_MODULE, args)
    assert result["changed"] and result["path"] == str(conf)
    assert conf.read_text() == text + "\n[overlay]\nlocation = /var/db/repos/overlay\npriority = 50\n"


@pytest.mark.parametrize("args,message", [
    ({"name": "bad/name", "location": "/x"}, "repository name 'bad/name' is not valid"),
    ({"name": "gentoo", "sync_type": "git"}, "would have sync-type but no sync-uri"),
    ({"name": "gentoo", "sync_uri": "https://example.org/g.git"}, "would have sync-uri but no sync-type"),
    ({"name": "gentoo", "options": {"location": "/x"}}, "use location instead of options"),
    ({"name": "gentoo", "state": "gone"}, "value of state must be one of"),
])
def test_repo_conf_refuses_bad_input_and_writes_nothing(root, args, message):
    conf = root / "etc/portage/repos.conf"
    conf.mkdir(parents=True)
    (conf / "gentoo.conf").write_text(REPOS_CONF.format(location="/var/db/repos/gentoo"))
    before = tree(root)
    result = run_module(REPO_MODULE, dict(args, root=str(root)))
    assert result["failed"] is True and result["_rc"] != 0
    assert message in result["msg"], result["msg"]
    assert "exception" not in result
    assert tree(root) == before


def test_repo_conf_refuses_missing_root(tmp_path):
    before = tree(tmp_path)
    result = run_module(REPO_MODULE, {"root": str(tmp_path / "nope"), "name": "gentoo", "location": "/x"})
    assert result["failed"] and "does not exist or is not a directory" in result["msg"]
    assert tree(tmp_path) == before


# --------------------------------------------------------------------------- make.conf

def test_make_conf_four_passes_and_portage_reads_it(root):
    args = {"root": str(root), "name": "FEATURES", "add": ["parallel-fetch", "-sandbox"], "remove": ["-news"]}
    target = root / "etc/portage/make.conf"
    check, apply, again = four_passes(MAKE_MODULE, args, root)
    assert check["value"] == apply["value"] == again["value"] == "parallel-fetch -sandbox"
    assert bash_value(target, "FEATURES") == apply["value"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    features = portageq(root, "envvar", "FEATURES").stdout.split()
    assert "parallel-fetch" in features and "sandbox" not in features


def test_make_conf_edits_in_place_and_shows_diff(root):
    (root / "etc/portage").mkdir(parents=True)
    target = root / "etc/portage/make.conf"
    target.write_text(MAKE_CONF)
    args = {"root": str(root), "name": "FEATURES", "add": ["getbinpkg"], "remove": ["-news"]}
    result = run_module(MAKE_MODULE, args, diff=True)
    assert result["changed"] is True and result["value"] == "buildpkg getbinpkg", result
    assert target.read_text() == MAKE_CONF.replace('"buildpkg\n    -news"', '"buildpkg getbinpkg"')
    assert bash_value(target, "FEATURES").split() == ["buildpkg", "getbinpkg"]
    shown = result["_stdout"]
    assert "+FEATURES=\"buildpkg getbinpkg\"  # keep the binhost quiet" in shown and "-    -news\"" in shown
    assert {"buildpkg", "getbinpkg"} <= set(portageq(root, "envvar", "FEATURES").stdout.split())
    assert portageq(root, "envvar", "CFLAGS").stdout.strip() == "-O2 -pipe"


def test_make_conf_value_and_absent(root):
    (root / "etc/portage").mkdir(parents=True)
    target = root / "etc/portage/make.conf"
    target.write_text(MAKE_CONF)
    args = {"root": str(root), "name": "COMMON_FLAGS", "value": '-O2 -march="x86-64" $keep'}
    _check, apply, _again = four_passes(MAKE_MODULE, args, root)
    assert apply["value"] == args["value"] == bash_value(target, "COMMON_FLAGS")
    assert bash_value(target, "CFLAGS") == args["value"]
    assert portageq(root, "envvar", "CFLAGS").stdout.strip() == args["value"]
    gone = {"root": str(root), "name": "CFLAGS", "state": "absent"}
    assert run_module(MAKE_MODULE, gone)["changed"] is True
    assert "CFLAGS" not in target.read_text()
    assert run_module(MAKE_MODULE, gone)["changed"] is False


def test_make_conf_symlink_stays_a_symlink(root):
    (root / "etc/portage").mkdir(parents=True)
    (root / "srv").mkdir()
    (root / "srv/make.conf").write_text(MAKE_CONF)
    (root / "etc/portage/make.conf").symlink_to("../../srv/make.conf")
    result = run_module(MAKE_MODULE, {"root": str(root), "name": "FEATURES", "add": ["getbinpkg"]})
    assert result["changed"] is True, result
    assert (root / "etc/portage/make.conf").is_symlink()
    assert bash_value(root / "srv/make.conf", "FEATURES").split() == ["buildpkg", "-news", "getbinpkg"]
    assert not [p for p in (root / "srv").iterdir() if p.name != "make.conf"], "temp file left behind"


def test_make_conf_directory_with_path(root):
    confdir = root / "etc/portage/make.conf"
    confdir.mkdir(parents=True)
    (confdir / "00-base.conf").write_text('FEATURES="buildpkg"\n')
    args = {"root": str(root), "path": str(confdir / "50-binhost.conf"), "name": "FEATURES",
            "add": ["getbinpkg"]}
    result = run_module(MAKE_MODULE, args)
    assert result["changed"] and (confdir / "50-binhost.conf").read_text() == 'FEATURES="getbinpkg"\n'
    assert "getbinpkg" in portageq(root, "envvar", "FEATURES").stdout.split()


@pytest.mark.parametrize("args,message", [
    ({"name": "1FEATURES", "add": ["x"]}, "'1FEATURES' is not a shell variable name"),
    ({"name": "FEATURES", "value": "x", "add": ["y"]}, "mutually exclusive"),
    ({"name": "FEATURES", "add": ["two words"]}, "has blanks"),
])
def test_make_conf_refuses_bad_input_and_writes_nothing(root, args, message):
    (root / "etc/portage").mkdir(parents=True)
    (root / "etc/portage/make.conf").write_text(MAKE_CONF)
    before = tree(root)
    result = run_module(MAKE_MODULE, dict(args, root=str(root)))
    assert result["failed"] is True and message in result["msg"], result
    assert "exception" not in result
    assert tree(root) == before


def test_make_conf_refuses_directory_without_path_and_missing_root(root, tmp_path):
    (root / "etc/portage/make.conf").mkdir(parents=True)
    before = tree(tmp_path)
    result = run_module(MAKE_MODULE, {"root": str(root), "name": "FEATURES", "add": ["x"]})
    assert result["failed"] and "is a directory" in result["msg"] and "set path to one file" in result["msg"]
    result = run_module(MAKE_MODULE, {"root": str(tmp_path / "nope"), "name": "FEATURES", "add": ["x"]})
    assert result["failed"] and "does not exist or is not a directory" in result["msg"]
    assert tree(tmp_path) == before


# --------------------------------------------------------------------------- what stages ship

STAGE_GENTOO_CONF = """\
# from the stage
[DEFAULT]
main-repo = gentoo

[gentoo]
location = /var/db/repos/gentoo
sync-type =
sync-uri =
auto-sync = yes
"""


def test_repo_conf_fills_the_empty_values_a_stage_ships(root):
    conf = root / "etc/portage/repos.conf"
    conf.mkdir(parents=True)
    (conf / "gentoo.conf").write_text(STAGE_GENTOO_CONF.replace("/var/db/repos/gentoo",
                                                                str(root / "var/db/repos/gentoo")))
    args = {"root": str(root), "name": "gentoo", "sync_type": "git", "sync_uri": "git://x/g.git"}
    _check, apply, _again = four_passes(REPO_MODULE, args, root)
    assert apply["section"]["sync-type"] == "git" and apply["section"]["sync-uri"] == "git://x/g.git"
    text = (conf / "gentoo.conf").read_text()
    assert "sync-type = git\nsync-uri = git://x/g.git\nauto-sync = yes\n" in text
    gentoo = portageq(root, "repos_config", "%s/" % root).stdout.split("[gentoo]\n", 1)[1]
    assert "sync-type = git\n" in gentoo and "sync-uri = git://x/g.git\n" in gentoo


def test_make_conf_empty_unquoted_value_is_what_portage_reads(root):
    (root / "etc/portage").mkdir(parents=True)
    target = root / "etc/portage/make.conf"
    target.write_text('FEATURES=\nCFLAGS="-O2"')
    # Nothing to remove, but Portage reads FEATURES= as FEATURES=CFLAGS and then fails on the rest.
    args = {"root": str(root), "name": "FEATURES", "remove": ["getbinpkg"]}
    _check, apply, _again = four_passes(MAKE_MODULE, args, root)
    assert apply["value"] == "" and target.read_text() == 'FEATURES=""\nCFLAGS="-O2"'
    assert portageq(root, "envvar", "CFLAGS").stdout.strip() == "-O2"
    assert bash_value(target, "FEATURES") == ""


# --------------------------------------------------------------------------- links inside the root

HOST_FILES = {"make.conf": 'FEATURES="host"\n', "repos.conf/gentoo.conf": "[gentoo]\nlocation = /host\n",
              "binrepos.conf/company.conf": "[company]\nsync-uri = https://host.example.org\n"}


@pytest.mark.parametrize("module,args,written,text", [
    (REPO_MODULE, {"name": "gentoo", "location": "/var/db/repos/gentoo", "sync_type": "git",
                   "sync_uri": "git://x/g.git"},
     "repos.conf/gentoo.conf", "[gentoo]\nlocation = /var/db/repos/gentoo\nsync-type = git\nsync-uri = git://x/g.git\n"),
    (MAKE_MODULE, {"name": "FEATURES", "add": ["getbinpkg"]}, "make.conf", 'FEATURES="getbinpkg"\n'),
    (BINREPO_MODULE, {"name": "company", "sync_uri": "https://b.example.org", "verify_signature": True},
     "binrepos.conf/company.conf", "[company]\nsync-uri = https://b.example.org\nverify-signature = true\n"),
])
def test_absolute_etc_portage_link_is_followed_inside_the_root(root, tmp_path, module, args, written, text):
    host = host_dir(tmp_path, "host-portage", HOST_FILES)
    host_before = tree(host)
    inside = root_link(root, "etc/portage", host)
    args = dict(args, root=str(root))
    _check, apply, _again = four_passes(module, args, root)
    assert apply["path"] == str(root / "etc/portage" / written)
    assert (inside / written).read_text() == text
    assert tree(host) == host_before
    gone = dict({k: v for k, v in args.items() if k in ("root", "name")}, state="absent")
    assert run_module(module, gone)["changed"] is True
    if module == MAKE_MODULE:  # the variable goes, the file stays
        assert (inside / written).read_text() == ""
    else:
        assert not (inside / written).exists()
    assert tree(host) == host_before


@pytest.mark.parametrize("module,args,conf,written", [
    (REPO_MODULE, {"name": "gentoo", "location": "/var/db/repos/gentoo"}, "repos.conf", "gentoo.conf"),
    (BINREPO_MODULE, {"name": "company", "sync_uri": "https://b.example.org"}, "binrepos.conf", "company.conf"),
])
def test_absolute_conf_directory_link_is_followed_inside_the_root(root, tmp_path, module, args, conf, written):
    host = host_dir(tmp_path, "host-" + conf, {written: "[%s]\nlocation = /host\n" % args["name"]})
    host_before = tree(host)
    inside = root_link(root, "etc/portage/" + conf, host)
    result = run_module(module, dict(args, root=str(root)))
    assert result["changed"] is True, result
    assert "[%s]\n" % args["name"] in (inside / written).read_text()
    assert tree(host) == host_before


def test_make_conf_link_to_a_host_file_is_followed_inside_the_root(root, tmp_path):
    host = host_dir(tmp_path, "host-etc", {"make.conf": 'FEATURES="host"\n'})
    host_before = tree(host)
    (root / "etc/portage").mkdir(parents=True)
    (root / str(host).lstrip("/")).mkdir(parents=True)
    (root / str(host).lstrip("/") / "make.conf").write_text('FEATURES="chroot"\n')
    (root / "etc/portage/make.conf").symlink_to(host / "make.conf")
    result = run_module(MAKE_MODULE, {"root": str(root), "name": "FEATURES", "add": ["getbinpkg"]})
    assert result["changed"] is True and result["value"] == "chroot getbinpkg", result
    assert (root / "etc/portage/make.conf").is_symlink()
    assert (root / str(host).lstrip("/") / "make.conf").read_text() == 'FEATURES="chroot getbinpkg"\n'
    assert tree(host) == host_before


@pytest.mark.parametrize("module,args,rel", [
    (REPO_MODULE, {"name": "gentoo", "location": "/x"}, "etc/portage"),
    (REPO_MODULE, {"name": "gentoo", "location": "/x"}, "etc/portage/repos.conf"),
    (MAKE_MODULE, {"name": "FEATURES", "add": ["x"]}, "etc/portage"),
    (BINREPO_MODULE, {"name": "company", "sync_uri": "https://b.example.org"}, "etc/portage"),
])
def test_link_to_what_the_root_does_not_have_is_refused(root, tmp_path, module, args, rel):
    host = host_dir(tmp_path, "host-only", HOST_FILES)
    host_before = tree(host)
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).symlink_to(host)
    before = tree(root)
    result = run_module(module, dict(args, root=str(root)))
    assert result["failed"] is True and "exception" not in result, result
    assert "/%s is a symlink to %s, and " % (rel, host) in result["msg"], result["msg"]
    assert "leads out of the chroot, to %s outside the chroot" % host in result["msg"]
    assert tree(root) == before and tree(host) == host_before


def test_default_root_is_the_host_resolved_plainly(tmp_path):
    # root / is the host itself: its links are the host's own and are followed as usual.
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    args = {"name": "FEATURES", "add": ["getbinpkg"], "path": str(tmp_path / "link/make.conf")}
    _check, apply, _again = four_passes(MAKE_MODULE, args, tmp_path)
    assert apply["path"] == args["path"] and (real / "make.conf").read_text() == 'FEATURES="getbinpkg"\n'
    if not Path("/etc/portage").exists():
        check = run_module(REPO_MODULE, {"name": "gentoo", "location": "/var/db/repos/gentoo"}, check=True)
        assert check["changed"] is True and check["path"] == "/etc/portage/repos.conf/gentoo.conf", check
        assert not Path("/etc/portage").exists()


def test_make_conf_path_outside_a_chroot_root_is_refused(root, tmp_path):
    before = tree(tmp_path)
    result = run_module(MAKE_MODULE, {"root": str(root), "path": str(tmp_path / "elsewhere.conf"),
                                      "name": "FEATURES", "add": ["x"]})
    assert result["failed"] is True and "is not below root %s" % root in result["msg"], result
    assert tree(tmp_path) == before


@pytest.mark.parametrize("module,words", [
    (REPO_MODULE, ("sync_type", "main_repo", "options", "EXAMPLES", "RETURN")),
    (MAKE_MODULE, ("add", "remove", "value", "EXAMPLES", "RETURN")),
])
def test_documentation_renders(module, words):
    out = subprocess.run([str(BIN / "ansible-doc"), module], cwd=ROOT, capture_output=True, text=True,
                         env={"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert "WARNING" not in out.stderr, out.stderr
    for word in words:
        assert word in out.stdout
