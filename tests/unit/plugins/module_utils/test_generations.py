"""The one layout of time-named directories and the link naming one of them, as the build
host's records (``<id>/``, ``last``) and a server's stack (``generations/<id>/``, ``current``)
use it."""
import datetime
import os

import pytest

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._generations import Generations, check_keep, id_key

NOW = datetime.datetime(2026, 11, 20, 3, 1, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture(params=["records", "stack"])
def layout(request, tmp_path):
    """Both ways the collection lays generations out: beside their link, or below it."""
    if request.param == "records":
        return Generations(str(tmp_path), str(tmp_path / "last"))
    return Generations(str(tmp_path / "generations"), str(tmp_path / "current"), "generations/")


def make(layout, ident):
    os.makedirs(layout.path(ident))
    return ident


def test_ids_grow_and_sort_by_their_suffix(layout):
    ids = []
    for dummy in range(12):
        ids.append(make(layout, layout.new_id(NOW)))
    assert ids[:3] == ["20261120T030100Z", "20261120T030100Z-1", "20261120T030100Z-2"]
    assert layout.list() == ids == sorted(ids, key=id_key)
    assert ids[-1] == "20261120T030100Z-11"
    # a partial holds its id too, and an earlier clock stays after the latest
    os.makedirs(layout.partial_path(layout.new_id(NOW)))
    assert layout.new_id(NOW - datetime.timedelta(days=1)) == "20261120T030100Z-13"


def test_switch_and_current(layout):
    first, second = make(layout, "20261120T030100Z"), make(layout, "20261120T030200Z")
    assert layout.current() is None
    layout.switch(first)
    assert os.readlink(layout.link) == layout.prefix + first and layout.current() == first
    layout.switch(second)
    assert layout.current() == second
    temporary = ".%s." % os.path.basename(layout.link)
    assert not [n for n in os.listdir(os.path.dirname(layout.link)) if n.startswith(temporary)]


@pytest.mark.parametrize("target", ["20261120T030900Z", "../20261120T030100Z", "elsewhere/20261120T030100Z", "/etc"])
def test_a_link_naming_no_complete_directory_names_none(layout, target):
    make(layout, "20261120T030100Z")
    os.makedirs(os.path.dirname(layout.link), exist_ok=True)
    os.symlink(layout.prefix + target if not target.startswith("/") else target, layout.link)
    assert layout.current() is None


def test_prune_keeps_the_newest_and_the_current_one(layout):
    ids = [make(layout, "20261120T03%02d00Z" % minute) for minute in range(1, 6)]
    layout.switch(ids[1])
    assert layout.prune(2) == [ids[0], ids[2]]
    assert layout.list() == [ids[1], ids[3], ids[4]] and layout.current() == ids[1]
    assert layout.partials() == []


@pytest.mark.parametrize("value", [0, -1, None, True, 2.5, "3"])
def test_check_keep_refuses_what_is_not_a_count_of_at_least_one(value):
    with pytest.raises(InfraError) as info:
        check_keep(value, "generations", "the current one")
    assert str(info.value) == ("keep must be a whole number of generations, at least 1 (the current one is always "
                               "kept); got %r" % (value,))


def test_check_keep_accepts_one_and_more():
    assert check_keep(1, "generations", "the current one") == 1
    assert check_keep(12, "generations", "the current one") == 12
