#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: binpkg_build_info
short_description: The last successful build of each chroot a build host has recorded
version_added: 0.1.0
description:
  - Reads the build records M(gentoo_binhost.infra.binpkg_collect) writes on a build host
    (C(<path>/<chroot>/last/build.json)) and returns, per chroot, the directory of its last
    successful build, the repository commits its packages are bound to and its provenance.
    A binary package server publishes these with M(gentoo_binhost.infra.binpkg_publish), at any
    time after the build and in another C(ansible-playbook) run.
author:
  - gentoo_binhost.infra maintainers (@gentoo-binhost)
extends_documentation_fragment:
  - gentoo_binhost.infra.attributes
  - gentoo_binhost.infra.attributes.info_module
options:
  path:
    description: The build records directory (the build_host role's C(build_host_builds_dir)).
    type: path
    default: /var/lib/gentoo-binhost/builds
  names:
    description: Chroots to report; default every chroot with records below O(path).
    type: list
    elements: str
seealso:
  - module: gentoo_binhost.infra.binpkg_collect
"""

EXAMPLES = r"""
- name: Read what the build host built last
  gentoo_binhost.infra.binpkg_build_info:
    names: [desktop]
  delegate_to: buildhost1
  register: built

- name: Publish it from the build host
  gentoo_binhost.infra.binpkg_publish:
    src: "buildhost1:{{ item.path }}"
    dest: /var/lib/gentoo-binhost/binpkgs/{{ item.name }}
    expect_revisions: "{{ item.revisions }}"
    provenance: "{{ item.provenance }}"
  loop: "{{ built.builds }}"
"""

RETURN = r"""
builds:
  description: The last successful build of each chroot that has one.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The chroot's name.
      type: str
    build:
      description: The build's id.
      type: str
    path:
      description: The build's directory, a PKGDIR of exactly its packages.
      type: str
    revisions:
      description: Repository name to the commit the build was made from.
      type: dict
    provenance:
      description: What the build record says about how the build was made.
      type: dict
    packages:
      description: Number of packages.
      type: int
    recorded_at:
      description: When the build was recorded (UTC).
      type: str
  sample: [{"name": "desktop", "build": "20261201T031502Z", "packages": 812,
            "path": "/var/lib/gentoo-binhost/builds/desktop/20261201T031502Z",
            "revisions": {"gentoo": "8043ff9fb0749d2b4b5c1a0e8a22c3cd8a4f1b6e"}}]
missing:
  description: Chroots of O(names) without a recorded build.
  returned: always
  type: list
  elements: str
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._build_record import last_builds
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._module import run_module


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/var/lib/gentoo-binhost/builds"),
            names=dict(type="list", elements="str"),
        ),
        supports_check_mode=True,
    )
    run_module(module, lambda params, check_mode: last_builds(params["path"], params["names"]), "reading the build records")


if __name__ == "__main__":
    main()
