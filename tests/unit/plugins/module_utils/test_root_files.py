"""Writing a file plan (module_utils/_root_files.py) through the one atomic writer (_common.write_file_atomic)."""
import os
import stat

import pytest

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._root_files import (
    FilePlan,
    RootFile,
    write_plan,
)


def leftovers(directory):
    """Temporary files of the writer left in ``directory``."""
    return [name for name in os.listdir(str(directory)) if name.endswith(".tmp")]


def test_new_file_gets_its_directories_and_mode(tmp_path):
    conf = RootFile(str(tmp_path), "/etc/portage/binrepos.conf/a.conf", "binrepos.conf")
    plan = FilePlan.for_file(conf, None, "[a]\n", {})
    assert plan.make_dirs == [str(tmp_path / "etc"), str(tmp_path / "etc/portage"),
                              str(tmp_path / "etc/portage/binrepos.conf")]
    write_plan(plan)
    target = tmp_path / "etc/portage/binrepos.conf/a.conf"
    assert target.read_text() == "[a]\n" and stat.S_IMODE(target.stat().st_mode) == 0o644
    assert all(stat.S_IMODE(os.stat(d).st_mode) == 0o755 for d in plan.make_dirs)
    assert leftovers(target.parent) == []


def test_replacing_leaves_a_hard_link_to_the_old_file_alone(tmp_path):
    target, link = tmp_path / "make.conf", tmp_path / "make.conf.orig"
    target.write_text("A=1\n")
    os.link(str(target), str(link))
    write_plan(FilePlan(str(target), "A=1\n", "A=2\n", {}), mode=0o600, owner=(os.getuid(), os.getgid()))
    assert target.read_text() == "A=2\n" and link.read_text() == "A=1\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_failed_move_changes_nothing(tmp_path):
    target = tmp_path / "make.conf"
    target.write_text("A=1\n")

    def refuse(tmp, dest):
        assert os.path.basename(tmp).startswith(".make.conf.")  # a dot name: Portage skips it
        raise OSError("the move is refused")
    with pytest.raises(OSError, match="the move is refused"):
        write_plan(FilePlan(str(target), "A=1\n", "A=2\n", {}), move=refuse)
    assert target.read_text() == "A=1\n" and leftovers(tmp_path) == []


def test_removal_deletes_the_link_not_what_it_leads_to(tmp_path):
    (tmp_path / "etc/portage").mkdir(parents=True)
    (tmp_path / "kept.conf").write_text("A=1\n")
    (tmp_path / "etc/portage/make.conf").symlink_to("/kept.conf")
    conf = RootFile(str(tmp_path), "/etc/portage/make.conf", "make.conf")
    assert conf.host == str(tmp_path / "kept.conf")
    write_plan(FilePlan.for_file(conf, "A=1\n", None, {}))
    assert not os.path.lexists(str(tmp_path / "etc/portage/make.conf"))
    assert (tmp_path / "kept.conf").read_text() == "A=1\n"
