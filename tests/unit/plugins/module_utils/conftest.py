"""Fixtures of the publication tests (test_packages_index, test_publish, test_status_page)."""
import pytest
from pkgdir import make_pkgdir
from publishing import PKGS


@pytest.fixture
def src(tmp_path):
    """A PKGDIR of the four PKGS, with Packages.gz."""
    path = tmp_path / "pkgdir"
    make_pkgdir(path, PKGS, gz=True)
    return path


@pytest.fixture
def dest(tmp_path):
    """Where the stack goes (not created)."""
    return tmp_path / "binhost" / "stack1"
