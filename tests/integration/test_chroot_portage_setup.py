"""chroot_portage_setup through the real ansible CLI: four passes on a fake chroot, bad input."""
import pytest
from ansible_run import run_module, tree_snapshot as tree
from testkit import git

MODULE = "gentoo_binhost.infra.chroot_portage_setup"


@pytest.fixture
def upstream(tmp_path):
    work, bare = tmp_path / "work", tmp_path / "upstream.git"
    git("init", "-q", "-b", "main", str(work))
    (work / "profiles").mkdir()
    (work / "profiles/repo_name").write_text("gentoo\n")
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "tree", cwd=work)
    git("tag", "2025-01-06", cwd=work)
    git("clone", "-q", "--bare", str(work), str(bare))
    return bare, git("rev-parse", "HEAD", cwd=work)


@pytest.fixture
def root(tmp_path):
    base = tmp_path / "chroot"
    (base / "etc/portage").mkdir(parents=True)
    (base / "etc/portage/make.conf").write_text('COMMON_FLAGS="-O2 -pipe"\n')
    (base / "var/db/repos/gentoo/profiles").mkdir(parents=True)  # the stage's own copy
    (base / "var/db/repos/gentoo/profiles/repo_name").write_text("gentoo\n")
    return base


def role_args(root, bare):
    return {"root": str(root),
            "repositories": [
                {"name": "gentoo", "url": str(bare), "version": "2025-01-06", "depth": 1, "main": True},
                {"name": "overlay", "url": str(bare), "version": "main", "priority": 50}],
            "features_add": ["buildpkg", "cgroup", "ipc-sandbox", "network-sandbox", "parallel-fetch"],
            "make_conf": {"PKGDIR": "/var/cache/binpkgs", "MAKEOPTS": "-j2"},
            "local_mirror": "http://127.0.0.1:8080"}


def test_four_passes(root, upstream):
    bare, commit = upstream
    args = role_args(root, bare)
    before = tree(root)
    check = run_module(MODULE, args, check=True, diff=True)
    assert check["_rc"] == 0 and check["changed"] is True, check
    assert tree(root) == before, "check mode wrote below the chroot"
    assert check["commits"] == {"gentoo": commit, "overlay": commit}
    assert "make.conf" in check["_stdout"] and "+PKGDIR=\"/var/cache/binpkgs\"" in check["_stdout"]

    apply = run_module(MODULE, args)
    assert apply["_rc"] == 0 and apply["changed"] is True, apply
    assert [repo["action"] for repo in apply["repositories"]] == ["cloned", "cloned"]
    assert git("rev-parse", "HEAD", cwd=root / "var/db/repos/gentoo") == commit
    assert "main-repo = gentoo" in (root / "etc/portage/repos.conf/gentoo.conf").read_text()
    assert 'FEATURES="buildpkg cgroup ipc-sandbox network-sandbox parallel-fetch"' in \
        (root / "etc/portage/make.conf").read_text()

    again = run_module(MODULE, args)
    assert again["_rc"] == 0 and again["changed"] is False, again
    assert again["repositories"][0]["remote_contacted"] is False
    settled = tree(root)
    recheck = run_module(MODULE, args, check=True)
    assert recheck["_rc"] == 0 and recheck["changed"] is False, recheck
    assert recheck["commits"] == {"gentoo": commit, "overlay": commit}
    assert tree(root) == settled


@pytest.mark.parametrize("change, message", [
    ({"root": "/"}, "resolves to the host's / ; give the path of a chroot"),
    ({"repositories": [{"name": "gentoo", "url": "x", "version": "v1", "location": "/var/../../etc"}]},
     "without '.' or '..'"),
    ({"repositories": [{"name": "+bad", "url": "x", "version": "v1"}]}, "is not a Portage repository name"),
    ({"repositories": [{"name": "gentoo", "url": "UPSTREAM", "version": "2099-01-01", "depth": 1}]},
     "version 2099-01-01 is neither a branch nor a tag"),
])
def test_bad_input_fails_and_changes_nothing(root, upstream, change, message):
    bare, dummy = upstream
    args = dict(role_args(root, bare), **change)
    for repo in args["repositories"]:
        repo["url"] = str(bare) if repo["url"] == "UPSTREAM" else repo["url"]
    before = tree(root)
    result = run_module(MODULE, args)
    assert result["_rc"] != 0 and result["failed"] is True
    assert message in result["msg"], result["msg"]
    assert tree(root) == before


def test_absolute_links_in_the_chroot_are_followed_inside_it(root, upstream, tmp_path):
    """etc/portage and var/db/repos as absolute links, as a chroot sees them; the host's
    directories of the same names are never touched."""
    bare, commit = upstream
    host_portage = tmp_path / "host/etc-portage"
    host_repos = tmp_path / "host/repos"
    (host_portage / "repos.conf").mkdir(parents=True)
    (host_portage / "make.conf").write_text('FEATURES="host"\n')
    (host_portage / "repos.conf/gentoo.conf").write_text("[gentoo]\nlocation = /host\n")
    (host_repos / "gentoo/profiles").mkdir(parents=True)
    (host_repos / "gentoo/profiles/repo_name").write_text("host\n")
    host_before = tree(tmp_path / "host")
    for rel, target in (("etc/portage", host_portage), ("var/db/repos", host_repos)):
        inside = root / str(target).lstrip("/")
        inside.parent.mkdir(parents=True, exist_ok=True)
        (root / rel).rename(inside)
        (root / rel).symlink_to(target)
    args = role_args(root, bare)
    check = run_module(MODULE, args, check=True)
    assert check["_rc"] == 0 and check["changed"] is True, check
    apply = run_module(MODULE, args)
    assert apply["_rc"] == 0 and apply["changed"] is True, apply
    chroot_portage = root / str(host_portage).lstrip("/")
    chroot_repos = root / str(host_repos).lstrip("/")
    assert git("rev-parse", "HEAD", cwd=chroot_repos / "gentoo") == commit
    assert git("rev-parse", "HEAD", cwd=chroot_repos / "overlay") == commit
    assert "main-repo = gentoo" in (chroot_portage / "repos.conf/gentoo.conf").read_text()
    assert 'PKGDIR="/var/cache/binpkgs"' in (chroot_portage / "make.conf").read_text()
    assert (chroot_portage / "mirrors").read_text() == "local http://127.0.0.1:8080\n"
    assert tree(tmp_path / "host") == host_before
    again = run_module(MODULE, args)
    assert again["_rc"] == 0 and again["changed"] is False, again
    assert tree(tmp_path / "host") == host_before
