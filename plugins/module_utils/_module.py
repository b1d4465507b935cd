# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module boundary: where the collection's logic meets ``AnsibleModule``.

The logic in the other module_utils is plain Python that returns a result dict and raises
:class:`InfraError` with a message for the user. Every module's ``main()`` builds its argument
spec and hands over to :func:`run_module`, which is the only place that turns results into
``exit_json`` and errors into ``fail_json``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError


def run_module(module, logic, what):
    """Run ``logic(module.params, check_mode=module.check_mode)`` and exit the module with its result.

    ``what`` names the job for an unexpected error's message ("importing the snapshot"); it may
    refer to parameters as ``%(name)s``. An :class:`InfraError` fails with its own message; any
    other exception fails with ``what``, the exception and its traceback. A result's ``diff`` is
    returned only in diff mode and its ``warnings`` become module warnings.
    """
    try:
        result = logic(module.params, check_mode=module.check_mode)
    except InfraError as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # an unexpected failure: keep the traceback for the report
        module.fail_json(msg="unexpected error %s: %s" % (what % module.params, exc),
                         exception=traceback.format_exc())
    diff = result.pop("diff", None)
    for warning in result.pop("warnings", None) or ():
        module.warn(warning)
    if module._diff and diff:
        result["diff"] = diff
    module.exit_json(**result)
