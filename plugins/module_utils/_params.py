# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A module's logic called with a plain dict, where no ``AnsibleModule`` runs.

The logic behind portage_snapshot and stage_unpack also runs from the mirror's timer CLI,
benchmarks and tests, which hand it a plain dict. The module's argument spec lives beside
that logic and is the one source of its defaults and constraints: the module passes it to
``AnsibleModule``, and :func:`complete_params` applies the same spec to a plain dict.
:func:`errors_as` gives every expected failure the logic's own error class, so a caller
catches one class whichever helper failed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from contextlib import contextmanager

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError


@contextmanager
def errors_as(error):
    """Let any InfraError out of the block as ``error`` (an InfraError subclass), message kept."""
    try:
        yield
    except error:
        raise
    except InfraError as exc:
        raise error(str(exc))


def complete_params(params, spec, mutually_exclusive=(), required_if=(), error=InfraError):
    """``params`` with every option of ``spec`` present, unset ones (or None) at their default.

    Refuses with ``error`` what ``AnsibleModule`` would refuse for the same spec: a missing
    required option, two mutually exclusive ones together, an option ``required_if`` asks for.
    An ``int`` option given as a string of digits (from a JSON file written by a template)
    becomes that number, as AnsibleModule would make it; other values are passed on as they
    are, and so are options the spec does not know.
    """
    done = dict(params)
    for name, option in spec.items():
        value = done.get(name)
        if value is None:
            done[name] = option.get("default")
        elif option.get("type") == "int" and isinstance(value, str) and value.strip().lstrip("-").isdigit():
            done[name] = int(value)
    missing = sorted(name for name, option in spec.items() if option.get("required") and done[name] in (None, ""))
    if missing:
        raise error("missing required arguments: %s" % ", ".join(missing))
    for names in mutually_exclusive:
        given = [name for name in names if params.get(name) is not None]
        if len(given) > 1:
            raise error("%s are mutually exclusive" % " and ".join(given))
    for name, value, needed in required_if:
        if done.get(name) == value:
            absent = [other for other in needed if done.get(other) in (None, "")]
            if absent:
                raise error("%s is %s but all of the following are missing: %s" % (name, value, ", ".join(absent)))
    return done
