#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: portage_make_conf
short_description: Set, extend or remove one variable in Portage's make.conf
version_added: 0.1.0
description:
  - Manages one variable (for example C(FEATURES)) in C(<root>/etc/portage/make.conf). Every
    other line, comments and blank lines included, is kept byte for byte; of the variable's own
    assignments only the one that has to change is rewritten.
  - Assignments are found with bash's rules, as Portage and a C(source) in a shell see them
    C(NAME="a b"), C(NAME='a b'), C(NAME=a), C(export NAME=...), values spanning lines
    inside quotes or with backslash-newline. Values with C($) references that are not touched
    stay verbatim.
  - Several assignments of the variable follow bash semantics, the last one wins.
    O(value) replaces the value of the last assignment. O(add) appends missing tokens to the
    last assignment (even when it is C(NAME="${NAME} x"), which keeps the earlier ones).
    O(remove) drops the tokens from the last assignment and from every earlier one that it
    pulls in through C(${NAME}) or C($NAME). A token counts as present when it is in the
    resulting value after those references are followed.
  - Values are written in double quotes; C(" \\ $) and backticks in values this module writes
    are escaped, so O(value) and the tokens are literal text, never expanded.
  - A plain double-quoted value keeps its line layout on O(add)/O(remove); other quoting is
    rewritten as one double-quoted line.
  - Variable names are case-sensitive, as for bash and Portage (C(features) is not
    C(FEATURES)). An assignment of the variable with nothing after C(=) (C(NAME=)) is
    rewritten as C(NAME=""); bash reads it as empty, but Portage's make.conf reader takes the
    next word as its value.
author:
  - gentoo_binhost.infra maintainers (@gentoo-binhost)
attributes:
  check_mode:
    details:
      - Reports whether the file would change and the resulting value; nothing is written.
extends_documentation_fragment:
  - ansible.builtin.files
  - gentoo_binhost.infra.attributes
  - gentoo_binhost.infra.config_file
options:
  path:
    description:
      - The file to edit, as a host path. Defaults to C(<root>/etc/portage/make.conf).
      - With a chroot O(root) it must be below O(root), and it is resolved inside the root like
        the default; a path outside the root is refused.
      - When C(make.conf) is a directory (Portage reads every file in it), O(path) must name
        one file inside it; a directory is refused.
    type: path
  name:
    description: Variable name, matching C(^[A-Za-z_][A-Za-z0-9_]*$).
    type: str
    required: true
  value:
    description:
      - The whole value, literal text. Mutually exclusive with O(add) and O(remove).
    type: str
  add:
    description:
      - Tokens appended, in this order, when missing from the value. Other tokens and their
        order stay. A token may be a negative such as C(-sandbox); it is just a token.
    type: list
    elements: str
  remove:
    description: Tokens removed wherever they occur in the value.
    type: list
    elements: str
  state:
    description:
      - V(present) sets the value or edits its tokens (an absent variable is created at the
        end of the file). V(absent) removes every assignment of the variable.
notes:
  - Files that make.conf C(source)s are not read or changed.
  - Emptying a variable with O(remove) leaves C(NAME=""), it does not remove the line.
seealso:
  - name: make.conf(5)
    description: Portage's make.conf manual page.
    link: https://wiki.gentoo.org/wiki//etc/portage/make.conf
  - module: gentoo_binhost.infra.portage_repo_conf
"""

EXAMPLES = r"""
- name: Build binary packages in the staging chroot
  gentoo_binhost.infra.portage_make_conf:
    root: /srv/build/amd64-stage
    name: FEATURES
    add: [buildpkg, parallel-fetch]
    remove: [-buildpkg]

- name: Pin the compiler flags
  gentoo_binhost.infra.portage_make_conf:
    name: COMMON_FLAGS
    value: -O2 -pipe -march=x86-64-v2

- name: Manage a variable in one file of a make.conf directory
  gentoo_binhost.infra.portage_make_conf:
    path: /etc/portage/make.conf/50-binhost.conf
    name: PORTAGE_BINHOST
    value: https://binhost.example.org/amd64

- name: Drop a variable
  gentoo_binhost.infra.portage_make_conf:
    name: PORTAGE_BINHOST
    state: absent
"""

RETURN = r"""
changed:
  description: Whether the file changed (or would, in check mode).
  returned: always
  type: bool
  sample: true
path:
  description: The file edited.
  returned: always
  type: str
  sample: /etc/portage/make.conf
value:
  description:
    - The value of the variable's last assignment afterwards, quotes removed and C($)
      references left as text; null when the variable is not assigned.
  returned: always
  type: str
  sample: buildpkg parallel-fetch
diff:
  description: The file before and after.
  returned: in diff mode when something changed
  type: dict
  sample: {"before": "FEATURES=\"a\"\n", "after": "FEATURES=\"a buildpkg\"\n"}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._make_conf import plan_make_conf
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._module import (
    config_file_argument_spec,
    run_file_plan,
)


def main():
    module = AnsibleModule(
        argument_spec=config_file_argument_spec(
            path=dict(type="path"),
            value=dict(type="str"),
            add=dict(type="list", elements="str"),
            remove=dict(type="list", elements="str"),
        ),
        mutually_exclusive=[("value", "add"), ("value", "remove")],
        add_file_common_args=True,
        supports_check_mode=True,
    )
    run_file_plan(module, plan_make_conf, "make.conf")


if __name__ == "__main__":
    main()
