# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A module's argument spec applied to a plain dict, as the timer CLI and the benches call the logic."""

from __future__ import annotations

import pytest

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._params import complete_params, errors_as
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._snapshot import (
    ARGUMENT_SPEC,
    MUTUALLY_EXCLUSIVE,
    REQUIRED_IF,
)

SPEC = dict(
    repo=dict(type="path", required=True),
    keep=dict(type="int", default=5),
    mirrors=dict(type="list", elements="str"),
    src=dict(type="str"),
    push=dict(type="bool", default=False),
    remote=dict(type="str"),
)


class Domain(InfraError):
    """A logic's own error class."""


def test_unset_and_none_options_take_the_default_and_zero_stays_zero():
    done = complete_params({"repo": "/r", "keep": None, "extra": 1}, SPEC)
    assert done == {"repo": "/r", "keep": 5, "mirrors": None, "src": None, "push": False, "remote": None, "extra": 1}
    assert complete_params({"repo": "/r", "keep": 0}, SPEC)["keep"] == 0
    assert complete_params({"repo": "/r", "keep": "7"}, SPEC)["keep"] == 7


@pytest.mark.parametrize("params, message", [
    ({}, "missing required arguments: repo"),
    ({"repo": "/r", "mirrors": ["https://m"], "src": "/s"}, "mirrors and src are mutually exclusive"),
    ({"repo": "/r", "push": True}, "push is True but all of the following are missing: remote"),
])
def test_what_ansible_module_would_refuse_is_refused(params, message):
    with pytest.raises(Domain) as err:
        complete_params(params, SPEC, [("mirrors", "src")], [("push", True, ("remote",))], Domain)
    assert str(err.value) == message


def test_errors_keep_their_message_and_take_the_domain_class():
    with pytest.raises(Domain, match="^from a helper$"):
        with errors_as(Domain):
            raise InfraError("from a helper")
    with pytest.raises(ValueError):
        with errors_as(Domain):
            raise ValueError("not an expected failure: left alone")


def test_the_snapshot_defaults_are_the_modules_argument_spec():
    done = complete_params({"repo": "/srv/gentoo.git"}, ARGUMENT_SPEC, MUTUALLY_EXCLUSIVE, REQUIRED_IF)
    assert done["timeout"] == 60 and done["branch"] == "master" and done["verify"] is True
    assert done["key"] == "/usr/share/openpgp-keys/gentoo-release.asc"
