#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: chroot_path
short_description: Resolve a path inside a chroot as the chroot sees it, or create a directory there
version_added: 0.1.0
description:
  - A path inside a chroot, followed from the host, follows the chroot's symbolic links to the
    host's own files (an absolute link C(etc/portage -> /etc) is the host's C(/etc)). This
    module resolves O(path) the way a process chrooted into O(root) does, every link followed
    inside O(root), and returns the host path to use, so that host-side tasks
    (M(ansible.builtin.copy), C(gpg --homedir), ...) never read or write outside the chroot.
  - With O(state=directory) it also creates the missing directories there, the last one with O(mode).
author:
  - gentoo_binhost.infra maintainers (@gentoo-binhost)
extends_documentation_fragment:
  - gentoo_binhost.infra.attributes
attributes:
  check_mode:
    support: full
    details: Resolves and reports whether directories would be created; creates nothing.
  diff_mode:
    support: none
    details: Not supported.
  idempotent:
    support: full
    details: An existing directory with the requested mode is left as it is.
options:
  root:
    description:
      - The chroot's root directory. V(/) is the host itself, where this is ordinary path
        resolution (for roles whose root may be a chroot or the system they run on).
    type: path
    required: true
  path:
    description: The path as the chroot names it (absolute, for example V(/etc/portage/gnupg)).
    type: str
    required: true
  state:
    description:
      - V(resolved) only resolves.
      - V(directory) creates the missing directories (mode 0755, the last one O(mode)).
    type: str
    choices: [resolved, directory]
    default: resolved
  mode:
    description: Mode of the directory O(path) with O(state=directory), as an octal string.
    type: str
"""

EXAMPLES = r"""
- name: Find the chroot's Portage keyring on the host
  gentoo_binhost.infra.chroot_path:
    root: /var/lib/gentoo-binhost/chroots/desktop
    path: /etc/portage/gnupg
    state: directory
    mode: "0700"
  register: keyring

- name: Use it from the host
  ansible.builtin.command:
    argv: [gpg, --homedir, "{{ keyring.host_path }}", --list-keys]
  changed_when: false
"""

RETURN = r"""
host_path:
  description: Where O(path) is on the host, resolved inside the chroot.
  returned: always
  type: str
  sample: /var/lib/gentoo-binhost/chroots/desktop/etc/portage/gnupg
inside:
  description: The path inside the chroot after its links were followed.
  returned: always
  type: str
  sample: /etc/portage/gnupg
exists:
  description: Whether something exists at RV(host_path) (after the module ran).
  returned: always
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._chroot_paths import ensure_path
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._module import run_module


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", required=True),
            path=dict(type="str", required=True),
            state=dict(type="str", choices=["resolved", "directory"], default="resolved"),
            mode=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    run_module(module, ensure_path, "resolving a chroot path")


if __name__ == "__main__":
    main()
