"""chroot_portage_setup's logic with real git (bare repositories, git daemon) and real files."""
import os
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
from mirrorprocs import free_port, port_answers
from testkit import git, host_dir, root_link

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._chroot_setup import (
    ChrootSetupError,
    edit_mirrors,
    setup_chroot,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._repos_conf import plan_repo_conf


class Upstream:
    """A work repository pushing to a bare one, which is what the chroot clones from."""

    def __init__(self, base: Path):
        self.work, self.bare = base / "work", base / "upstream.git"
        git("init", "-q", "-b", "main", str(self.work))
        git("init", "-q", "--bare", "-b", "main", str(self.bare))
        git("remote", "add", "origin", str(self.bare), cwd=self.work)
        self.count = 0

    def commit(self, tag=None, annotated=False):
        self.count += 1
        (self.work / "profiles").mkdir(exist_ok=True)
        (self.work / "profiles/repo_name").write_text("gentoo\n")
        (self.work / ("file%d" % self.count)).write_text("%d\n" % self.count)
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "-m", "commit %d" % self.count, cwd=self.work)
        if tag:
            git("tag", *(["-a", "-m", tag] if annotated else []), tag, cwd=self.work)
        git("push", "-q", "--tags", "origin", "main", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)


@pytest.fixture
def upstream(tmp_path):
    return Upstream(tmp_path)


@pytest.fixture
def root(tmp_path):
    """A fake chroot: make.conf from a stage, the stage's own tree copy (not a git checkout)."""
    base = tmp_path / "root"
    (base / "etc/portage").mkdir(parents=True)
    (base / "etc/portage/make.conf").write_text('# from the stage\nCOMMON_FLAGS="-O2 -pipe"\nFEATURES="-news"\n')
    stage_tree = base / "var/db/repos/gentoo"
    (stage_tree / "profiles").mkdir(parents=True)
    (stage_tree / "profiles/repo_name").write_text("gentoo\n")
    (stage_tree / "from-the-stage").write_text("x\n")
    return base


@pytest.fixture
def resolv(tmp_path):
    path = tmp_path / "host-resolv.conf"
    path.write_text("nameserver 192.0.2.53\n")
    return path


def setup(params, resolv, check=False):
    return setup_chroot(params, check_mode=check, resolv_source=str(resolv))


def params_for(root, repos, **extra):
    params = {"root": str(root), "repositories": repos, "features_add": ["buildpkg", "cgroup"],
              "make_conf": {"PKGDIR": "/var/cache/binpkgs", "MAKEOPTS": "-j2"},
              "local_mirror": "http://127.0.0.1:8080/", "resolv_conf": True}
    params.update(extra)
    return params


def tree(path):
    """Every path below ``path`` with type, mode and content (git internals included)."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            item = Path(dirpath, name)
            st = item.lstat()
            body = item.read_bytes() if stat.S_ISREG(st.st_mode) else (
                os.readlink(item) if stat.S_ISLNK(st.st_mode) else None)
            snap[str(item.relative_to(path))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), body)
    return snap


def head(path):
    return git("rev-parse", "HEAD", cwd=path)


def by_name(result):
    return {repo["name"]: repo for repo in result["repositories"]}


# --------------------------------------------------------------------------- the four passes

def test_four_passes_clone_configure_then_nothing(root, upstream, resolv):
    v1 = upstream.commit(tag="v1")
    tip = upstream.commit()
    params = params_for(root, [
        {"name": "gentoo", "url": str(upstream.bare), "version": "v1", "depth": 1, "main": True},
        {"name": "overlay", "url": str(upstream.bare), "version": "main", "priority": 50},
    ])
    before = tree(root)
    check = setup(params, resolv, check=True)
    assert check["changed"] is True and tree(root) == before
    assert check["commits"] == {"gentoo": v1, "overlay": tip}
    assert [repo["action"] for repo in check["repositories"]] == ["cloned", "cloned"]

    apply = setup(params, resolv)
    assert apply["changed"] is True and apply["commits"] == {"gentoo": v1, "overlay": tip}
    gentoo = root / "var/db/repos/gentoo"
    assert head(gentoo) == v1 and not (gentoo / "from-the-stage").exists()
    assert git("rev-parse", "--is-shallow-repository", cwd=gentoo) == "true"
    assert git("remote", "get-url", "origin", cwd=gentoo) == "file://%s" % upstream.bare
    assert stat.S_IMODE(gentoo.stat().st_mode) == 0o755
    assert head(root / "var/db/repos/overlay") == tip
    assert git("symbolic-ref", "--short", "HEAD", cwd=root / "var/db/repos/overlay") == "main"
    assert not [p for p in (root / "var/db/repos").iterdir() if p.name.startswith(".")]

    make_conf = (root / "etc/portage/make.conf").read_text()
    assert make_conf == ('# from the stage\nCOMMON_FLAGS="-O2 -pipe"\nFEATURES="-news buildpkg cgroup"\n'
                         'PKGDIR="/var/cache/binpkgs"\nMAKEOPTS="-j2"\n')
    assert (root / "etc/portage/mirrors").read_text() == "local http://127.0.0.1:8080\n"
    assert (root / "etc/resolv.conf").read_text() == resolv.read_text()
    conf = root / "etc/portage/repos.conf/gentoo.conf"
    assert conf.read_text() == (
        "[DEFAULT]\nmain-repo = gentoo\n\n[gentoo]\nlocation = /var/db/repos/gentoo\nsync-type = git\n"
        "sync-uri = %s\nsync-depth = 1\nsync-git-verify-commit-signature = no\n" % upstream.bare)
    assert "priority = 50\n" in (root / "etc/portage/repos.conf/overlay.conf").read_text()
    assert stat.S_IMODE(conf.stat().st_mode) == 0o644

    settled = tree(root)
    again = setup(params, resolv)
    assert again["changed"] is False and again["changed_files"] == [] and again["diff"] == []
    assert by_name(again)["gentoo"]["remote_contacted"] is False  # an unchanged tag pin
    assert by_name(again)["overlay"]["remote_contacted"] is True  # a branch is always asked
    recheck = setup(params, resolv, check=True)
    assert recheck["changed"] is False and recheck["commits"] == {"gentoo": v1, "overlay": tip}
    assert tree(root) == settled


def test_repos_conf_is_what_portage_repo_conf_writes_for_the_role(root, upstream, resolv, tmp_path):
    upstream.commit(tag="v1")
    setup(params_for(root, [{"name": "gentoo", "url": str(upstream.bare), "version": "v1", "main": True,
                             "priority": 7}]), resolv)
    other = tmp_path / "other"
    other.mkdir()
    # The role's task: portage_repo_conf with these arguments.
    expected = plan_repo_conf({"root": str(other), "name": "gentoo", "location": "/var/db/repos/gentoo",
                               "sync_type": "git", "sync_uri": str(upstream.bare), "main_repo": True,
                               "priority": 7, "options": {"sync-depth": 1,
                                                          "sync-git-verify-commit-signature": False}})
    assert (root / "etc/portage/repos.conf/gentoo.conf").read_text() == expected.after


def test_diff_lists_each_changed_file(root, upstream, resolv):
    upstream.commit(tag="v1")
    result = setup(params_for(root, [{"name": "gentoo", "url": str(upstream.bare), "version": "v1"}]),
                   resolv, check=True)
    headers = {entry["after_header"]: entry for entry in result["diff"]}
    make_conf = str(root / "etc/portage/make.conf")
    assert headers[make_conf]["before"].startswith("# from the stage")
    assert 'PKGDIR="/var/cache/binpkgs"' in headers[make_conf]["after"]
    assert headers[str(root / "etc/portage/repos.conf/gentoo.conf")]["before_header"].endswith("(absent)")


# --------------------------------------------------------------------------- versions

def test_tag_to_tag_on_a_depth_one_clone_and_back_without_the_remote(root, upstream, resolv):
    v1 = upstream.commit(tag="v1", annotated=True)
    v2 = upstream.commit(tag="v2")
    repo = {"name": "gentoo", "url": str(upstream.bare), "version": "v1", "depth": 1, "main": True}
    setup(params_for(root, [repo]), resolv)
    gentoo = root / "var/db/repos/gentoo"
    assert head(gentoo) == v1

    repo["version"] = "v2"
    check = setup(params_for(root, [repo]), resolv, check=True)
    assert check["changed"] is True and check["commits"]["gentoo"] == v2 and head(gentoo) == v1
    moved = by_name(setup(params_for(root, [repo]), resolv))["gentoo"]
    assert (moved["before"], moved["commit"], moved["action"]) == (v1, v2, "fetched")
    assert head(gentoo) == v2 and (gentoo / "file2").exists()
    assert git("rev-parse", "--is-shallow-repository", cwd=gentoo) == "true"

    # v1 is still in the checkout: going back needs no remote at all.
    repo["version"] = "v1"
    back = by_name(setup(params_for(root, [repo]), resolv))
    assert back["gentoo"]["action"] == "checked-out" and back["gentoo"]["remote_contacted"] is False
    assert head(gentoo) == v1


def test_check_mode_names_an_annotated_tags_commit_not_the_tag(root, upstream, resolv):
    v1 = upstream.commit(tag="v1", annotated=True)
    v2 = upstream.commit(tag="v2", annotated=True)
    repo = {"name": "gentoo", "url": str(upstream.bare), "version": "v1", "depth": 1, "main": True}
    assert setup(params_for(root, [repo]), resolv, check=True)["commits"] == {"gentoo": v1}  # a new clone
    setup(params_for(root, [repo]), resolv)
    check = by_name(setup(params_for(root, [dict(repo, version="v2")]), resolv, check=True))["gentoo"]
    assert (check["before"], check["commit"], check["action"]) == (v1, v2, "fetched")  # asked the remote
    assert head(root / "var/db/repos/gentoo") == v1


def test_branch_pin_follows_the_remote(root, upstream, resolv):
    first = upstream.commit()
    repo = {"name": "overlay", "url": str(upstream.bare), "version": "main", "depth": 1}
    params = params_for(root, [repo])
    setup(params, resolv)
    overlay = root / "var/db/repos/overlay"
    assert head(overlay) == first
    second = upstream.commit()

    check = by_name(setup(params, resolv, check=True))["overlay"]
    assert (check["changed"], check["commit"], head(overlay)) == (True, second, first)
    moved = by_name(setup(params, resolv))["overlay"]
    assert (moved["before"], moved["commit"], moved["changed"]) == (first, second, True)
    assert head(overlay) == second and git("symbolic-ref", "--short", "HEAD", cwd=overlay) == "main"
    assert setup(params, resolv)["changed"] is False


def test_commit_id_pin_clone_and_no_remote_afterwards(root, upstream, resolv):
    first = upstream.commit()
    upstream.commit()
    repo = {"name": "overlay", "url": str(upstream.bare), "version": first, "depth": 1}
    params = params_for(root, [repo])
    assert setup(params, resolv, check=True)["commits"]["overlay"] == first
    assert setup(params, resolv)["commits"]["overlay"] == first
    assert head(root / "var/db/repos/overlay") == first
    again = by_name(setup(params, resolv))["overlay"]
    assert again["changed"] is False and again["remote_contacted"] is False


def test_unknown_version_keeps_the_old_checkout_and_the_stage_copy(root, upstream, resolv):
    v1 = upstream.commit(tag="v1")
    good = {"name": "overlay", "url": str(upstream.bare), "version": "v1"}
    setup(params_for(root, [good]), resolv)
    before = tree(root)
    bad = [{"name": "gentoo", "url": str(upstream.bare), "version": "v9", "depth": 1, "main": True},
           dict(good, version="no-such-branch")]
    for repos in (bad[:1], bad[1:], [dict(good, version="v9")] + bad[:1]):
        with pytest.raises(ChrootSetupError, match="is neither a branch nor a tag at .*nothing was changed"):
            setup(params_for(root, repos), resolv)
        assert tree(root) == before  # stage copy of gentoo, overlay checkout, files: all as they were
    assert head(root / "var/db/repos/overlay") == v1


def test_url_change_is_asked_at_the_new_url(root, upstream, resolv, tmp_path):
    v1 = upstream.commit(tag="v1")
    setup(params_for(root, [{"name": "overlay", "url": str(upstream.bare), "version": "v1"}]), resolv)
    moved = tmp_path / "moved.git"
    git("clone", "-q", "--bare", str(upstream.bare), str(moved))
    result = by_name(setup(params_for(root, [{"name": "overlay", "url": str(moved), "version": "v1"}]), resolv))
    assert result["overlay"]["changed"] is True and result["overlay"]["remote_contacted"] is True
    assert result["overlay"]["commit"] == v1
    assert git("remote", "get-url", "origin", cwd=root / "var/db/repos/overlay") == "file://%s" % moved


# --------------------------------------------------------------------------- git daemon

@pytest.fixture
def git_daemon(upstream, tmp_path):
    """``git daemon`` serving the upstream on 127.0.0.1; ``stop()``/``start()`` by PID."""

    class Daemon:
        port = free_port()
        proc = None
        url = "git://127.0.0.1:%d/upstream.git" % port

        def start(self):
            self.proc = subprocess.Popen(
                ["git", "daemon", "--export-all", "--reuseaddr", "--listen=127.0.0.1", "--port=%d" % self.port,
                 "--base-path=%s" % tmp_path, str(tmp_path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while not port_answers(self.port):
                assert time.monotonic() < deadline and self.proc.poll() is None, "git daemon did not start"
                time.sleep(0.05)

        def stop(self):
            if self.proc and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(10)
            self.proc = None

    daemon = Daemon()
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


def test_over_git_daemon_tag_pin_needs_no_remote_branch_pin_does(root, upstream, resolv, git_daemon):
    v1 = upstream.commit(tag="v1")
    v2 = upstream.commit(tag="v2")
    gentoo = {"name": "gentoo", "url": git_daemon.url, "version": "v1", "depth": 1, "main": True}
    overlay = {"name": "overlay", "url": git_daemon.url, "version": "main", "depth": 1}
    assert setup(params_for(root, [gentoo, overlay]), resolv)["commits"] == {"gentoo": v1, "overlay": v2}

    git_daemon.stop()
    assert not port_answers(git_daemon.port)
    offline = setup(params_for(root, [gentoo]), resolv)
    assert offline["changed"] is False and offline["repositories"][0]["remote_contacted"] is False
    with pytest.raises(ChrootSetupError, match="cannot ask git://127.0.0.1"):
        setup(params_for(root, [gentoo, overlay]), resolv)  # a branch pin has to ask

    git_daemon.start()
    v3 = upstream.commit(tag="v3")
    result = by_name(setup(params_for(root, [dict(gentoo, version="v2"), overlay]), resolv))
    assert (result["gentoo"]["before"], result["gentoo"]["commit"]) == (v1, v2)  # tag A -> tag B, depth 1
    assert (result["overlay"]["before"], result["overlay"]["commit"]) == (v2, v3)  # the branch moved
    assert head(root / "var/db/repos/gentoo") == v2 and head(root / "var/db/repos/overlay") == v3
    assert setup(params_for(root, [dict(gentoo, version="v2"), overlay]), resolv)["changed"] is False


# --------------------------------------------------------------------------- files

def test_mirrors_keep_other_lines_and_empty_url_removes_local():
    text = "gentoo http://a/\nlocal http://old\n# local note\n"
    assert edit_mirrors(text, "http://new") == "gentoo http://a/\nlocal http://new\n# local note\n"
    assert edit_mirrors("gentoo http://a/", "http://new") == "gentoo http://a/\nlocal http://new\n"
    assert edit_mirrors(text, "") == "gentoo http://a/\n# local note\n"


def test_local_mirror_empty_and_resolv_conf_link_replaced(root, resolv, tmp_path):
    outside = tmp_path / "outside-resolv.conf"
    outside.write_text("nameserver 198.51.100.1\n")
    (root / "etc/resolv.conf").symlink_to(outside)
    (root / "etc/portage/mirrors").write_text("local http://old\ngentoo http://g/\n")
    params = {"root": str(root), "local_mirror": ""}
    result = setup(params, resolv)
    assert result["changed"] is True
    assert (root / "etc/portage/mirrors").read_text() == "gentoo http://g/\n"
    resolv_conf = root / "etc/resolv.conf"
    assert not resolv_conf.is_symlink() and resolv_conf.read_text() == resolv.read_text()
    assert outside.read_text() == "nameserver 198.51.100.1\n"
    assert stat.S_IMODE(resolv_conf.stat().st_mode) == 0o644
    assert setup(params, resolv)["changed"] is False
    resolv_conf.chmod(0o600)
    assert setup(params, resolv, check=True)["changed"] is True
    assert setup(params, resolv)["changed"] is True and stat.S_IMODE(resolv_conf.stat().st_mode) == 0o644
    assert setup(dict(params, resolv_conf=False), tmp_path / "none")["changed"] is False


# --------------------------------------------------------------------------- refused input

@pytest.mark.parametrize("repo, message", [
    ({"location": "/var/db/../../etc"}, "without '.' or '..'"),
    ({"location": "var/db/repos/x"}, "absolute path inside the chroot"),
    ({"location": "/"}, "not / itself"),
    ({"name": "-bad"}, "is not a Portage repository name"),
    ({"name": "DEFAULT"}, "is not a Portage repository name"),
    ({"version": "--upload-pack=touch /tmp/x"}, "is not a branch, tag or commit id"),
    ({"url": "--upload-pack=x"}, "must be a git URL"),
    ({"depth": 0}, "must be a positive integer"),
])
def test_bad_repository_is_refused_and_nothing_changes(root, upstream, resolv, repo, message):
    upstream.commit(tag="v1")
    before = tree(root)
    entry = dict({"name": "gentoo", "url": str(upstream.bare), "version": "v1"}, **repo)
    with pytest.raises(ChrootSetupError, match=message):
        setup(params_for(root, [entry]), resolv)
    assert tree(root) == before


def test_refused_roots_and_repository_sets(root, upstream, resolv, tmp_path):
    upstream.commit(tag="v1")
    one = {"name": "gentoo", "url": str(upstream.bare), "version": "v1", "main": True}
    with pytest.raises(ChrootSetupError, match="resolves to the host's / ; give the path of a chroot"):
        setup({"root": "/", "repositories": [one]}, resolv)
    (tmp_path / "file").write_text("")
    with pytest.raises(ChrootSetupError, match="is not a directory"):
        setup({"root": str(tmp_path / "file")}, resolv)
    before = tree(root)
    for repos, message in (
            ([one, dict(one, main=False)], "is given twice"),
            ([one, dict(one, name="b")], "only one repository can be main"),
            ([one, dict(one, name="b", main=False, location="/var/db/repos/gentoo/sub")], "share a location")):
        with pytest.raises(ChrootSetupError, match=message):
            setup(params_for(root, repos), resolv)
        assert tree(root) == before
    # A directory of the location that is a symlink out of the chroot.
    (root / "var/db/escape").symlink_to(tmp_path)
    with pytest.raises(ChrootSetupError, match="leads out of the chroot"):
        setup(params_for(root, [dict(one, location="/var/db/escape/gentoo")]), resolv)
    (root / "var/db/escape").unlink()
    (root / "etc/portage/make.conf").unlink()
    (root / "etc/portage/make.conf").symlink_to(tmp_path / "host-make.conf")
    with pytest.raises(ChrootSetupError, match="outside the chroot"):
        setup(params_for(root, [one]), resolv)
    assert not (tmp_path / "host-make.conf").exists()


def test_single_file_repos_conf_gets_both_sections(root, upstream, resolv):
    upstream.commit(tag="v1")
    (root / "etc/portage/repos.conf").write_text("# one file\n")
    repos = [{"name": "gentoo", "url": str(upstream.bare), "version": "v1", "main": True},
             {"name": "overlay", "url": str(upstream.bare), "version": "v1"}]
    setup(params_for(root, repos), resolv)
    text = (root / "etc/portage/repos.conf").read_text()
    assert "[gentoo]" in text and "[overlay]" in text and "main-repo = gentoo" in text
    assert setup(params_for(root, repos), resolv)["changed"] is False


# --------------------------------------------------------------------------- links inside the chroot

def test_absolute_etc_portage_link_is_followed_inside_the_chroot(root, upstream, resolv, tmp_path):
    upstream.commit(tag="v1")
    host = host_dir(tmp_path, "host-portage", {"make.conf": "FEATURES=host\n", "mirrors": "local http://host\n",
                                               "repos.conf/gentoo.conf": "[gentoo]\nlocation = /host\n"})
    host_before = tree(host)
    inside = root_link(root, "etc/portage", host)
    params = params_for(root, [{"name": "gentoo", "url": str(upstream.bare), "version": "v1", "main": True}])
    check = setup(params, resolv, check=True)
    assert check["changed"] is True and tree(host) == host_before
    result = setup(params, resolv)
    assert result["changed"] is True
    assert (inside / "make.conf").read_text().startswith('# from the stage\nCOMMON_FLAGS="-O2 -pipe"\n')
    assert 'PKGDIR="/var/cache/binpkgs"' in (inside / "make.conf").read_text()
    assert (inside / "mirrors").read_text() == "local http://127.0.0.1:8080\n"
    assert "location = /var/db/repos/gentoo\n" in (inside / "repos.conf/gentoo.conf").read_text()
    assert (root / "etc/portage").is_symlink()
    assert tree(host) == host_before
    assert setup(params, resolv)["changed"] is False


def test_absolute_repos_conf_link_is_followed_inside_the_chroot(root, upstream, resolv, tmp_path):
    upstream.commit(tag="v1")
    host = host_dir(tmp_path, "host-repos.conf", {"gentoo.conf": "[gentoo]\nlocation = /host\n"})
    host_before = tree(host)
    inside = root_link(root, "etc/portage/repos.conf", host)
    setup(params_for(root, [{"name": "gentoo", "url": str(upstream.bare), "version": "v1"}]), resolv)
    assert "sync-uri = %s\n" % upstream.bare in (inside / "gentoo.conf").read_text()
    assert tree(host) == host_before


def test_absolute_etc_link_is_followed_for_resolv_conf_too(root, resolv, tmp_path):
    host = host_dir(tmp_path, "host-etc", {"resolv.conf": "nameserver 198.51.100.1\n", "portage/make.conf": "X=1\n"})
    host_before = tree(host)
    inside = root_link(root, "etc", host)
    result = setup({"root": str(root), "local_mirror": "http://127.0.0.1:8080"}, resolv)
    assert result["changed"] is True
    assert (inside / "resolv.conf").read_text() == resolv.read_text()
    assert (inside / "portage/mirrors").read_text() == "local http://127.0.0.1:8080\n"
    assert tree(host) == host_before
    # A link at resolv.conf itself is replaced, wherever it leads.
    (inside / "resolv.conf").unlink()
    (inside / "resolv.conf").symlink_to(host / "resolv.conf")
    setup({"root": str(root)}, resolv)
    assert not (inside / "resolv.conf").is_symlink() and tree(host) == host_before


@pytest.mark.parametrize("target", ["HOST", "/"])
def test_absolute_link_above_a_location_is_followed_inside_the_chroot(root, upstream, resolv, tmp_path, target):
    v1 = upstream.commit(tag="v1")
    host = host_dir(tmp_path, "host-repos", {"gentoo/profiles/repo_name": "host-tree\n", "keep": "x\n"})
    host_before = tree(host)
    link_target = host if target == "HOST" else Path("/")
    slash_gentoo = os.path.lexists("/gentoo")
    inside = root_link(root, "var/db/repos", link_target) if target == "HOST" else root
    if target == "/":
        shutil.rmtree(root / "var/db/repos")
        (root / "var/db/repos").symlink_to("/")
    params = params_for(root, [{"name": "gentoo", "url": str(upstream.bare), "version": "v1", "main": True}])
    result = setup(params, resolv)
    assert result["commits"] == {"gentoo": v1}
    assert head(inside / "gentoo") == v1 and not (inside / "gentoo/from-the-stage").exists()
    assert tree(host) == host_before
    assert os.path.lexists("/gentoo") == slash_gentoo
    assert "location = /var/db/repos/gentoo\n" in (root / "etc/portage/repos.conf/gentoo.conf").read_text()
    assert setup(params, resolv)["changed"] is False


def test_link_at_the_location_is_replaced_not_followed(root, upstream, resolv, tmp_path):
    v1 = upstream.commit(tag="v1")
    host = host_dir(tmp_path, "host-tree", {"profiles/repo_name": "host\n"})
    host_before = tree(host)
    shutil.rmtree(root / "var/db/repos/gentoo")
    (root / "var/db/repos/gentoo").symlink_to(host)
    setup(params_for(root, [{"name": "gentoo", "url": str(upstream.bare), "version": "v1"}]), resolv)
    gentoo = root / "var/db/repos/gentoo"
    assert not gentoo.is_symlink() and head(gentoo) == v1 and tree(host) == host_before


def test_two_locations_one_place_through_a_link_are_refused(root, upstream, resolv):
    upstream.commit(tag="v1")
    (root / "srv").mkdir()
    (root / "srv/repos").symlink_to("/var/db/repos")
    before = tree(root)
    one = {"name": "gentoo", "url": str(upstream.bare), "version": "v1"}
    with pytest.raises(ChrootSetupError, match="share a location"):
        setup(params_for(root, [one, dict(one, name="other", location="/srv/repos/gentoo")]), resolv)
    assert tree(root) == before


@pytest.mark.parametrize("rel", ["etc/portage", "etc/portage/repos.conf", "var/db/repos"])
def test_link_to_what_the_chroot_does_not_have_is_refused(root, upstream, resolv, tmp_path, rel):
    upstream.commit(tag="v1")
    host = host_dir(tmp_path, "host-only", {"gentoo.conf": "[gentoo]\n", "make.conf": "X=1\n"})
    host_before = tree(host)
    if (root / rel).exists():
        shutil.rmtree(root / rel)
    (root / rel).symlink_to(host)
    before = tree(root)
    with pytest.raises(ChrootSetupError) as refused:
        setup(params_for(root, [{"name": "gentoo", "url": str(upstream.bare), "version": "v1"}]), resolv)
    message = str(refused.value)
    assert "/%s is a symlink to %s, and " % (rel, host) in message and "does not exist inside that root" in message
    assert "followed from the host it leads out of the chroot, to %s outside the chroot" % host in message
    assert tree(root) == before and tree(host) == host_before
