#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: portage_binrepos_conf
short_description: Manage one binary package repository of Portage's binrepos.conf
version_added: 0.1.0
description:
  - Manages the section C([<name>]) in C(<root>/etc/portage/binrepos.conf/<name>.conf), the
    binary package repositories C(emerge --getbinpkg) and C(emerge --getbinpkgonly) fetch from.
    When C(<root>/etc/portage/binrepos.conf) is a single file (Portage reads a file as well as
    a directory), the section is managed inside that file instead.
  - The file is edited line by line, so comments, key order and keys this module does not
    manage are kept; a key that gets a new value is changed in place, new keys are added at
    the end of the section.
  - The file is read the way Portage reads it (Python C(configparser) with basic interpolation
    and Portage's defaults C(EPREFIX), C(EROOT), C(ROOT), C(PORTAGE_CONFIGROOT), C(frozen);
    case-insensitive key names; values stripped of surrounding blanks; lines ended by C(\n),
    C(\r\n) or C(\r)), and every result is re-read that way before it is written.
    A C(%) in a value is written as C(%%). Boolean keys (C(verify-signature), C(frozen)) are
    written as V(true)/V(false); an existing V(yes)/V(no) of the same meaning is left alone.
  - An empty value (C(sync-uri =)) gets the new value in place. Portage reads only the C(-)
    spelling of a key (C(sync-uri), never C(sync_uri)). A key this module sets or removes
    replaces every spelling of it in the section, in any case and with C(_) for C(-), so no
    second, conflicting line is left behind; the line kept is written with C(-).
  - Portage ignores a binary repository without C(sync-uri), so O(sync_uri) is required with
    O(state=present), and nothing is written on any error.
author:
  - gentoo_binhost.infra maintainers (@gentoo-binhost)
extends_documentation_fragment:
  - ansible.builtin.files
  - gentoo_binhost.infra.attributes
  - gentoo_binhost.infra.config_file
options:
  name:
    description:
      - Name of the binary repository, the section name. Letters, digits, C(_), C(+) and C(-),
        not starting with C(+) or C(-), not C(DEFAULT). Also the file name C(<name>.conf) and,
        unless O(location) is set, the download directory C(/var/cache/binhost/<name>).
    type: str
    required: true
  sync_uri:
    description:
      - C(sync-uri), the base URL of the binary package server (where its C(Packages) index
        is). Required with O(state=present).
    type: str
  priority:
    description:
      - C(priority) of the repository. Higher priority repositories are preferred for a
        package available from several.
    type: int
  location:
    description:
      - C(location), the local directory fetched packages are kept in. Portage's default is
        C(/var/cache/binhost/<name>) (without C(PORTAGE_BINHOST)).
    type: path
  verify_signature:
    description:
      - C(verify-signature), written as V(true) or V(false). With V(true) Portage fetches only
        signed gpkg packages and checks their OpenPGP signatures against the keyring in
        C(BINPKG_GPG_VERIFY_GPG_HOME) (default C(/etc/portage/gnupg)); the signing key must be
        trusted there (fully or ultimately valid).
      - Unset leaves the key as it is; Portage's own C(binrepos.conf) defaults it to V(true)
        in C([DEFAULT]), so an unsigned server needs V(false).
    type: bool
  options:
    description:
      - Any other binrepos.conf keys of the section, for example C(frozen),
        C(getbinpkg-exclude) or C(getbinpkg-include). Key names are case-insensitive and C(_)
        is written as C(-). Booleans are written as V(true)/V(false).
      - A key with a null value is removed from the section.
      - The keys of the dedicated options (C(sync-uri), C(priority), C(location),
        C(verify-signature)) are refused here.
    type: dict
  state:
    description:
      - V(present) creates or updates the section. V(absent) removes the section; a
        C(<name>.conf) file left without any key is removed. A single-file binrepos.conf is
        never removed.
notes:
  - Only the one file is read; a section of the same name in another file of
    C(binrepos.conf/) is merged by Portage and not seen here.
  - Options that are not given are left as they are in the file.
  - C(PORTAGE_BINHOST) in make.conf adds implicit binary repositories; this module does not
    touch it.
seealso:
  - name: Binary package guide in the Gentoo wiki
    description: binrepos.conf, getbinpkg and signed binary packages.
    link: https://wiki.gentoo.org/wiki/Binary_package_guide
  - module: gentoo_binhost.infra.portage_repo_conf
  - module: gentoo_binhost.infra.portage_make_conf
"""

EXAMPLES = r"""
- name: Fetch binary packages from the company's binhost, signed
  gentoo_binhost.infra.portage_binrepos_conf:
    name: company
    sync_uri: https://binhost.example.org/desktop
    priority: 10
    verify_signature: true

- name: Configure a chroot to use an unsigned test binhost, but never for the kernel
  gentoo_binhost.infra.portage_binrepos_conf:
    root: /srv/build/amd64-stage
    name: test
    sync_uri: http://127.0.0.1:8081
    verify_signature: false
    options:
      getbinpkg-exclude: sys-kernel/gentoo-kernel

- name: Stop using the test binhost
  gentoo_binhost.infra.portage_binrepos_conf:
    root: /srv/build/amd64-stage
    name: test
    state: absent
"""

RETURN = r"""
changed:
  description: Whether the file changed (or would, in check mode).
  returned: always
  type: bool
  sample: true
path:
  description: The file that holds the section.
  returned: always
  type: str
  sample: /etc/portage/binrepos.conf/company.conf
section:
  description:
    - The keys of the section afterwards and their values as Portage reads them (empty when
      the section is absent). Keys inherited from C([DEFAULT]) are not included.
  returned: always
  type: dict
  sample: {"sync-uri": "https://binhost.example.org/desktop", "priority": "10", "verify-signature": "true"}
diff:
  description: The file before and after.
  returned: in diff mode when something changed
  type: dict
  sample: {"before": "", "after": "[company]\nsync-uri = https://binhost.example.org/desktop\n"}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._binrepos import plan_binrepo_conf
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._module import (
    config_file_argument_spec,
    run_file_plan,
)


def main():
    module = AnsibleModule(
        argument_spec=config_file_argument_spec(
            sync_uri=dict(type="str"),
            priority=dict(type="int"),
            location=dict(type="path"),
            verify_signature=dict(type="bool"),
            options=dict(type="dict"),
        ),
        required_if=[("state", "present", ("sync_uri",))],
        add_file_common_args=True,
        supports_check_mode=True,
    )
    run_file_plan(module, plan_binrepo_conf, "binrepos.conf")


if __name__ == "__main__":
    main()
