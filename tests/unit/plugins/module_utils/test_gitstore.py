"""GitStore as a checkout and a remote's client, with real git: ls-remote, clone, fetch, checkout,
another user's checkout. Its snapshot-import side is tested through test_snapshot.py."""
import os

import pytest
from testkit import git

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._gitstore import GitError, GitStore


@pytest.fixture
def upstream(tmp_path):
    """A bare repository with branch main (two commits), a lightweight tag v1 on the first,
    an annotated tag v2 on the second and a tag named like the branch on the first."""
    work, bare = tmp_path / "work", tmp_path / "upstream.git"
    git("init", "-q", "-b", "main", work)
    commits = []
    for number in (1, 2):
        (work / "file").write_text("%d\n" % number)
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", "commit %d" % number, cwd=work)
        commits.append(git("rev-parse", "HEAD", cwd=work))
    git("tag", "v1", commits[0], cwd=work)
    git("tag", "-a", "-m", "v2", "v2", commits[1], cwd=work)
    git("tag", "main", commits[0], cwd=work)
    git("clone", "-q", "--bare", work, bare)
    return "file://%s" % bare, commits


def test_remote_version_without_a_repository(upstream):
    url, (first, second) = upstream
    asker = GitStore()
    assert (asker.path, asker.exists) == (None, False)
    assert asker.remote_version(url, "v1") == ("tag", first)
    assert asker.remote_version(url, "v2") == ("tag", second)  # the commit, not the tag object
    assert asker.remote_version(url, "main") == ("branch", second)  # a branch wins, as in git clone
    assert asker.remote_version(url, "nope") == (None, None)


def test_a_remote_that_cannot_be_asked_says_what_git_said(tmp_path):
    with pytest.raises(GitError) as failed:
        GitStore().remote_version("file://%s" % (tmp_path / "missing.git"), "main")
    assert str(failed.value).startswith("git ls-remote file://%s refs/heads/main refs/tags/main refs/tags/main^{} "
                                        "failed (exit "
                                        % (tmp_path / "missing.git"))
    assert failed.value.stderr and failed.value.stderr in str(failed.value)


def test_clone_fetch_and_checkout(upstream, tmp_path):
    url, (first, second) = upstream
    checkout = GitStore(tmp_path / "checkout")
    assert not checkout.exists
    checkout.clone(url, branch="v1", depth=1)
    assert checkout.exists and not checkout.bare and checkout.shallow
    assert checkout.rev_parse("HEAD") == first and checkout.remote_url() == url
    assert checkout.rev_parse("refs/remotes/origin/main") is None

    checkout.fetch(url, ["+refs/heads/main:refs/remotes/origin/main"], depth=1)
    assert checkout.rev_parse("refs/remotes/origin/main") == second
    (tmp_path / "checkout/file").write_text("local change\n")
    checkout.checkout(second, branch="main")
    assert git("symbolic-ref", "HEAD", cwd=tmp_path / "checkout") == "refs/heads/main"
    assert (tmp_path / "checkout/file").read_text() == "2\n"  # forced: the local change is gone
    checkout.checkout(first)
    assert checkout.rev_parse("HEAD") == first
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=tmp_path / "checkout") == "HEAD"  # detached

    assert checkout.fetch(url, ["refs/heads/no-such-branch"], check=False) != 0
    checkout.set_remote_url("file:///elsewhere.git")
    assert checkout.remote_url() == "file:///elsewhere.git"
    git("remote", "remove", "origin", cwd=tmp_path / "checkout")
    assert checkout.remote_url() is None
    checkout.set_remote_url(url)  # added again
    assert checkout.remote_url() == url


def test_clone_refuses_a_directory_with_content(upstream, tmp_path):
    url, dummy = upstream
    (tmp_path / "full").mkdir()
    (tmp_path / "full/keep").write_text("x\n")
    with pytest.raises(InfraError, match="full exists, is not empty and is not a git repository"):
        GitStore(tmp_path / "full").clone(url)
    assert os.listdir(tmp_path / "full") == ["keep"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand the checkout to another user")
def test_another_users_checkout_needs_trust_owner(upstream, tmp_path):
    url, (first, dummy) = upstream
    path = tmp_path / "portage-owned"
    GitStore(path).clone(url, branch="v1")
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [dirpath] + [os.path.join(dirpath, entry) for entry in dirnames + filenames]:
            os.lchown(name, 250, 250)
    assert not GitStore(path).exists  # git: "detected dubious ownership"
    trusted = GitStore(path, trust_owner=True)
    assert trusted.exists and trusted.rev_parse("HEAD") == first
    trusted.checkout(first, branch="pinned")
    assert trusted.rev_parse("refs/heads/pinned") == first
