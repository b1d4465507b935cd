"""The binpkg_publish module through the real ansible CLI (``ansible -m``), on a PKGDIR in
Portage's format (tests/fixtures/pkgdir.py); its logic is unit-tested in
tests/unit/plugins/module_utils/test_publish.py."""
import pytest
from ansible_run import run_module
from pkgdir import REVISION, make_pkgdir
from publishing import PKGS, tree


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "pkgdir"
    make_pkgdir(path, PKGS, gz=True)
    return path


def test_the_module_check_apply_apply_check(src, tmp_path):
    """Check, apply, apply again, check again through the real ansible CLI, then a bad rollback."""
    dest = tmp_path / "binhost" / "stack1"
    args = {"src": str(src), "dest": str(dest), "keep": 3, "expect_revisions": {"gentoo": REVISION},
            "base_url": "http://127.0.0.1:8080/stack1"}
    check = run_module("gentoo_binhost.infra.binpkg_publish", args, check=True)
    assert check["changed"] and not check["failed"] and not dest.exists(), check
    apply = run_module("gentoo_binhost.infra.binpkg_publish", args)
    assert apply["changed"] and apply["transfer"]["files"] == 6, apply
    again = run_module("gentoo_binhost.infra.binpkg_publish", args)
    assert not again["changed"] and again["generation"] == apply["generation"]
    recheck = run_module("gentoo_binhost.infra.binpkg_publish", args, check=True)
    assert not recheck["changed"]
    bad = run_module("gentoo_binhost.infra.binpkg_publish", {"dest": str(dest), "rollback_to": "20200101T000000Z"})
    assert bad["failed"] and "cannot roll back %s to 20200101T000000Z: no such generation" % dest in bad["msg"]


def test_the_module_refuses_keep_0(src, tmp_path):
    """keep: 0 is refused with what was wrong, not turned into the default."""
    dest = tmp_path / "binhost" / "stack1"
    assert not run_module("gentoo_binhost.infra.binpkg_publish", {"src": str(src), "dest": str(dest)})["failed"]
    before = tree(dest)
    result = run_module("gentoo_binhost.infra.binpkg_publish", {"src": str(src), "dest": str(dest), "keep": 0})
    assert result["failed"] and result["msg"] == (
        "keep must be a whole number of generations, at least 1 (the current one is always kept); got 0"), result
    assert tree(dest) == before
