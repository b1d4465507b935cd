# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module boundary: where the collection's logic meets ``AnsibleModule``.

The logic in the other module_utils is plain Python that returns a result dict and raises
:class:`InfraError` with a message for the user. Every module's ``main()`` builds its argument
spec and hands over to :func:`run_module`, which is the only place that turns results into
``exit_json`` and errors into ``fail_json``. The config file modules hand over a planner to
:func:`run_file_plan` instead, which writes the planned file with the module's file attributes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import traceback

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._root_files import write_plan


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


def config_file_argument_spec(**options):
    """The argument spec of a config file module: ``root``, ``name`` and ``state`` (the
    options of the ``gentoo_binhost.infra.config_file`` doc fragment, with ``name``) and the
    module's own ``options``."""
    spec = dict(
        root=dict(type="path", default="/"),
        name=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )
    spec.update(options)
    return spec


def run_file_plan(module, planner, what):
    """A config file module's whole run through :func:`run_module`: plan with
    ``planner(module.params)``, write the plan (:func:`apply_file_plan`), exit with the plan's
    result and its diff; ``what`` names the file in unexpected errors ("repos.conf")."""
    def edit(params, check_mode):
        plan = planner(params)
        result = dict(plan.result, changed=apply_file_plan(module, plan))
        if plan.changed:
            result["diff"] = plan.diff()
        return result
    run_module(module, edit, "editing %s for %%(name)s" % what)


def apply_file_plan(module, plan):
    """Write (or remove) ``plan`` through ``module``; returns ``changed`` including the file
    attributes of ``add_file_common_args`` (mode, owner, SELinux context...)."""
    changed = plan.changed
    # A symlinked make.conf (kept in a git checkout, say) stays a symlink: the plan's target is
    # the file it leads to, found inside the root.
    target = plan.target
    if module.check_mode:
        if plan.after is not None and not changed and os.path.exists(target):
            file_args = module.load_file_common_arguments(module.params, path=target)
            changed = module.set_fs_attributes_if_different(file_args, changed)
        return changed
    if plan.after is None:
        write_plan(plan)
        return changed
    if changed:
        new_file = not os.path.exists(target)

        def move(tmp, dest):
            module.atomic_move(tmp, dest, unsafe_writes=module.params.get("unsafe_writes", False))
        # atomic_move gives a replaced file the old one's mode and owner; a new one gets 0644.
        write_plan(plan, mode=0o644 if new_file else None, move=move)
        if new_file:
            os.chmod(target, 0o644)
    file_args = module.load_file_common_arguments(module.params, path=target)
    return module.set_fs_attributes_if_different(file_args, changed)
