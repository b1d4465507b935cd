# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one tar member policy that stages and snapshots share."""

from __future__ import annotations

import pytest

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._tarpolicy import MemberPolicy, link_leaves_root
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._tarstream import DIRECTORY, HARDLINK, REGULAR, SYMLINK


class Refused(InfraError):
    """The error class a caller hands the policy."""


def policy():
    return MemberPolicy("stage", "stage3.tar.xz", Refused)


@pytest.mark.parametrize("depth, target, leaves", [
    (0, b"usr/bin", False),
    (0, b"../etc", True),
    (1, b"../etc", False),
    (1, b"../../etc", True),
    (2, b"./a/../../b", False),
    (0, b"/usr/share/zoneinfo/UTC", True),
    (3, b"a/b/../../../../..", False),
    (3, b"a/b/../../../../../..", True),
])
def test_link_leaves_root(depth, target, leaves):
    assert link_leaves_root(depth, target) is leaves


def test_names_inside_the_root_are_split_into_components():
    assert policy().check(b"./usr//bin/./su", REGULAR, b"") == [b"usr", b"bin", b"su"]
    assert policy().check(b"./", DIRECTORY, b"") == []


@pytest.mark.parametrize("name, typeflag, linkname, message", [
    (b"/etc/evil", REGULAR, b"", "refusing stage stage3.tar.xz: member '/etc/evil' has an absolute path"),
    (b"./usr/../../evil", REGULAR, b"",
     "refusing stage stage3.tar.xz: member './usr/../../evil' has a '..' component in its path (would escape the root)"),
    (b"./hard", HARDLINK, b"../../etc/shadow",
     "refusing stage stage3.tar.xz: member './hard' has a '..' component in its hard link target "
     "(would escape the root)"),
    (b"./hard", HARDLINK, b"/etc/shadow",
     "refusing stage stage3.tar.xz: member './hard' has an absolute hard link target"),
    (b"./caf\xe9/\xff", REGULAR, b"/x", None),
])
def test_refusals_name_the_archive_the_member_and_the_reason(name, typeflag, linkname, message):
    if message is None:  # an undecodable but harmless name passes
        assert policy().check(name, typeflag, linkname) == [b"caf\xe9", b"\xff"]
        return
    with pytest.raises(Refused) as err:
        policy().check(name, typeflag, linkname)
    assert str(err.value) == message


def test_members_below_a_symlink_that_leaves_the_root_are_refused():
    judge = policy()
    judge.check(b"./etc/localtime", SYMLINK, b"/usr/share/zoneinfo/UTC")  # a link itself is fine
    judge.check(b"./bin", SYMLINK, b"usr/bin")
    assert judge.check(b"./bin/sh", REGULAR, b"") == [b"bin", b"sh"]  # stays inside
    judge.check(b"./escape", SYMLINK, b"../outside")
    with pytest.raises(Refused, match="member './escape/planted' lies below the symbolic link escape -> "
                                      "../outside, which leads out of the root"):
        judge.check(b"./escape/planted", REGULAR, b"")


def test_a_later_member_replacing_the_symlink_lifts_the_refusal():
    judge = policy()
    judge.check(b"./escape", SYMLINK, b"/")
    judge.check(b"./escape", DIRECTORY, b"")
    assert judge.check(b"./escape/file", REGULAR, b"") == [b"escape", b"file"]
