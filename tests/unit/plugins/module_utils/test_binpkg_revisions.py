"""What packages were built from (REPO_REVISIONS in gpkg and xpak files) and the pin gate, on real files.
"""
import json
import os
import subprocess
from pathlib import Path

import pytest
from pkgdir import REVISION, make_pkgdir, read_index
from publishing import OTHER, claim_in_index

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._binpkg_revisions import (
    check_revisions,
    package_revisions,
    resolve_revisions,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._packages_index import PublishError, validate_pkgdir


def test_package_revisions_reads_them_from_inside_a_gpkg(tmp_path):
    revisions = {"gentoo": REVISION, "myoverlay": "3" * 40}
    make_pkgdir(tmp_path, [{"cpv": "app-misc/hello-1.0", "repo_revisions": revisions},
                           {"cpv": "app-misc/none-1", "repo_revisions": None}], index_revisions=False)
    _header, entries = read_index(tmp_path)
    assert all("REPO_REVISIONS" not in e for e in entries)
    assert package_revisions(str(tmp_path / entries[0]["PATH"])) == revisions
    assert package_revisions(str(tmp_path / entries[1]["PATH"])) == {}
    assert resolve_revisions(str(tmp_path), entries) == {
        "app-misc/hello-1.0-1": revisions, "app-misc/none-1-1": {}}


def test_package_revisions_of_something_else(tmp_path):
    (tmp_path / "hello-1.0.tbz2").write_bytes(os.urandom(4096) + b"XPAKPACK" + b"\0" * 16 + b"XPAKSTOP")
    assert package_revisions(str(tmp_path / "hello-1.0.tbz2")) is None
    subprocess.run(["tar", "-cf", str(tmp_path / "plain.tar"), "-C", str(tmp_path), "hello-1.0.tbz2"], check=True)
    assert package_revisions(str(tmp_path / "plain.tar")) is None


def test_resolve_revisions_reads_the_package_and_refuses_an_index_that_disagrees(tmp_path):
    make_pkgdir(tmp_path, [{"cpv": "app-misc/hello-1.0", "repo_revisions": {"gentoo": OTHER}}])
    entries = claim_in_index(tmp_path, {"gentoo": REVISION})
    with pytest.raises(PublishError) as info:
        resolve_revisions(str(tmp_path), entries)
    assert str(info.value) == (
        "the Packages index and the package files disagree on what the packages were built from: "
        "app-misc/hello-1.0-1: the index says ::gentoo 111111111111, the package records ::gentoo 222222222222")


def test_an_index_claiming_revisions_the_package_does_not_record_is_refused(tmp_path):
    make_pkgdir(tmp_path, [{"cpv": "app-misc/hello-1.0", "repo_revisions": None}], index_revisions=False)
    entries = claim_in_index(tmp_path, {"gentoo": REVISION})
    with pytest.raises(PublishError, match=r"app-misc/hello-1.0-1: the index says ::gentoo 111111111111, "
                                           r"the package records none"):
        resolve_revisions(str(tmp_path), entries)


def test_an_index_and_a_package_that_both_record_nothing_agree(tmp_path):
    """What Portage writes without git in the build root: ``REPO_REVISIONS: {}`` in the index,
    nothing in the package."""
    make_pkgdir(tmp_path, [{"cpv": "app-misc/hello-1.0", "repo_revisions": None}], index_revisions=False)
    entries = claim_in_index(tmp_path, {})
    assert resolve_revisions(str(tmp_path), entries) == {"app-misc/hello-1.0-1": {}}


def xpak_package(path, metadata, payload=b"BZh91AY&SY not really bzip2"):
    """A ``.tbz2``/``.xpak`` binary package: compressed image, then Portage's xpak segment
    (XPAKPACK, index length, data length, index entries of name/offset/length, data,
    XPAKSTOP), then the segment's length and STOP."""
    index, data = b"", b""
    for name, value in sorted(metadata.items()):
        key = name.encode()
        index += len(key).to_bytes(4, "big") + key + len(data).to_bytes(4, "big") + len(value).to_bytes(4, "big")
        data += value
    segment = (b"XPAKPACK" + len(index).to_bytes(4, "big") + len(data).to_bytes(4, "big") + index + data
               + b"XPAKSTOP")
    Path(path).write_bytes(payload + segment + len(segment).to_bytes(4, "big") + b"STOP")


def test_package_revisions_reads_xpak_packages_too(tmp_path):
    revisions = {"gentoo": REVISION}
    xpak_package(tmp_path / "hello-1.0-1.xpak", {"CATEGORY": b"app-misc\n", "PF": b"hello-1.0\n",
                                                 "REPO_REVISIONS": json.dumps(revisions).encode()})
    xpak_package(tmp_path / "none-1.tbz2", {"CATEGORY": b"app-misc\n", "PF": b"none-1\n"})
    assert package_revisions(str(tmp_path / "hello-1.0-1.xpak")) == revisions
    assert package_revisions(str(tmp_path / "none-1.tbz2")) == {}
    (tmp_path / "broken.tbz2").write_bytes(b"\0" * 100 + (1000).to_bytes(4, "big") + b"STOP")
    assert package_revisions(str(tmp_path / "broken.tbz2")) is None


def _entries(tmp_path, specs, index_revisions=True):
    make_pkgdir(tmp_path, specs, index_revisions=index_revisions)
    _header, entries, _text = validate_pkgdir(str(tmp_path))
    return entries, resolve_revisions(str(tmp_path), entries)


def test_check_revisions_accepts_the_pinned_commit(tmp_path):
    entries, revisions = _entries(tmp_path, [
        {"cpv": "app-misc/hello-1.0"},
        {"cpv": "app-misc/ov-1", "repo": "myoverlay", "repo_revisions": {"gentoo": REVISION, "myoverlay": OTHER}},
    ], index_revisions=False)
    check_revisions(entries, revisions, {"gentoo": REVISION})
    check_revisions(entries, revisions, {"gentoo": REVISION, "myoverlay": OTHER})
    check_revisions(entries, revisions, {})
    check_revisions(entries, revisions, None)


def test_check_revisions_refuses_another_commit(tmp_path):
    entries, revisions = _entries(tmp_path, [{"cpv": "app-misc/hello-1.0"},
                                             {"cpv": "app-misc/old-1", "repo_revisions": {"gentoo": OTHER}}])
    with pytest.raises(PublishError) as info:
        check_revisions(entries, revisions, {"gentoo": REVISION})
    assert str(info.value) == ("packages built from another tree than the pinned one: app-misc/old-1-1: "
                               "built from ::gentoo 222222222222, not the pinned 111111111111")


def test_check_revisions_refuses_missing_revisions(tmp_path):
    entries, revisions = _entries(tmp_path, [{"cpv": "app-misc/hello-1.0", "repo_revisions": None}],
                                  index_revisions=False)
    with pytest.raises(PublishError, match=r"app-misc/hello-1.0-1: no revision of ::gentoo recorded"):
        check_revisions(entries, revisions, {"gentoo": REVISION})
    # a file that is no gpkg: nothing can be read
    with pytest.raises(PublishError, match=r"app-misc/hello-1.0-1: its revisions cannot be read"):
        check_revisions(entries, {"app-misc/hello-1.0-1": None}, {"gentoo": REVISION})
