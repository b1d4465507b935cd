#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: portage_repo_conf
short_description: Manage one repository section of Portage's repos.conf
version_added: 0.1.0
description:
  - Manages the section C([<name>]) in C(<root>/etc/portage/repos.conf/<name>.conf). When
    C(<root>/etc/portage/repos.conf) is a single file (Portage allows that), the section is
    managed inside that file instead.
  - The file is edited line by line, so comments, key order and keys this module does not
    manage are kept; a key that gets a new value is changed in place, new keys are added at
    the end of the section.
  - The file is read the way Portage reads it (Python C(configparser) with basic
    interpolation and Portage's defaults C(EPREFIX), C(EROOT), C(ROOT), C(PORTAGE_CONFIGROOT);
    case-insensitive key names; values stripped of surrounding blanks; lines ended by C(\n),
    C(\r\n) or C(\r)), and every result is re-read that way before it is written. A C(%) in a
    value is written as C(%%), since a lone C(%) makes Portage ignore the whole repos.conf.
  - An empty value (C(sync-type =), as stages ship it) gets the new value in place. Portage
    reads only the C(-) spelling of a key (C(sync-uri), never C(sync_uri)). A key this module
    sets or removes replaces every spelling of it in the section, in any case and with C(_)
    for C(-), so no second, conflicting line is left behind; the line kept is written with C(-).
  - Portage needs C(sync-type) and C(sync-uri) together, and takes an empty value for none; a
    result with only one of them set is refused and nothing is written.
author:
  - gentoo_binhost.infra maintainers (@gentoo-binhost)
extends_documentation_fragment:
  - ansible.builtin.files
  - gentoo_binhost.infra.attributes
  - gentoo_binhost.infra.config_file
options:
  name:
    description:
      - Repository name, the section name. Letters, digits, C(_), C(+) and C(-), not starting
        with C(+) or C(-) (PMS repository names); also the file name C(<name>.conf).
    type: str
    required: true
  location:
    description: Path of the repository (C(location)).
    type: path
  sync_type:
    description: C(sync-type), for example V(git), V(rsync), V(webrsync). Needs O(sync_uri).
    type: str
  sync_uri:
    description: C(sync-uri), where the repository is synced from. Needs O(sync_type).
    type: str
  priority:
    description: C(priority) of the repository.
    type: int
  auto_sync:
    description: C(auto-sync), written as V(yes) or V(no).
    type: bool
  options:
    description:
      - Any other repos.conf keys of the section, for example C(sync-depth) or
        C(sync-git-verify-commit-signature). Key names are case-insensitive and C(_) is
        written as C(-). Booleans are written as V(yes)/V(no).
      - A key with a null value is removed from the section.
      - The keys of the dedicated options (C(location), C(sync-type), ...) and C(main-repo)
        are refused here.
    type: dict
  main_repo:
    description:
      - V(true) sets C(main-repo = <name>) in the C([DEFAULT]) section of the same file.
        V(false) removes C(main-repo) from there when it names this repository. Unset leaves it.
    type: bool
  state:
    description:
      - V(present) creates or updates the section. V(absent) removes the section (and a
        C(main-repo) naming it in the same file); a C(<name>.conf) file left without any key
        is removed. A single-file repos.conf is never removed.
notes:
  - Only the one file is read; a section of the same name in another file of
    C(repos.conf/) is merged by Portage and not seen here.
  - Options that are not given are left as they are in the file.
seealso:
  - name: repos.conf in the Gentoo wiki
    description: The keys Portage understands.
    link: https://wiki.gentoo.org/wiki//etc/portage/repos.conf
  - module: gentoo_binhost.infra.portage_make_conf
"""

EXAMPLES = r"""
- name: Sync the Gentoo tree from the local git mirror
  gentoo_binhost.infra.portage_repo_conf:
    name: gentoo
    location: /var/db/repos/gentoo
    sync_type: git
    sync_uri: https://mirror.example.org/git/gentoo.git
    auto_sync: true
    main_repo: true
    options:
      sync-depth: 1
      sync-git-verify-commit-signature: false

- name: Add an overlay to a staging chroot
  gentoo_binhost.infra.portage_repo_conf:
    root: /srv/build/amd64-stage
    name: stoney-cloud
    location: /var/db/repos/stoney-cloud
    sync_type: git
    sync_uri: https://git.example.org/stoney-cloud/overlay.git
    priority: 50

- name: Drop the overlay again
  gentoo_binhost.infra.portage_repo_conf:
    root: /srv/build/amd64-stage
    name: stoney-cloud
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
  sample: /etc/portage/repos.conf/gentoo.conf
section:
  description:
    - The keys of the section afterwards and their values as Portage reads them (empty
      when the section is absent). Keys inherited from C([DEFAULT]) are not included.
  returned: always
  type: dict
  sample: {"location": "/var/db/repos/gentoo", "sync-type": "git",
           "sync-uri": "https://mirror.example.org/git/gentoo.git", "auto-sync": "yes"}
diff:
  description: The file before and after.
  returned: in diff mode when something changed
  type: dict
  sample: {"before": "", "after": "[gentoo]\nlocation = /var/db/repos/gentoo\n"}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._module import (
    config_file_argument_spec,
    run_file_plan,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._repos_conf import plan_repo_conf


def main():
    module = AnsibleModule(
        argument_spec=config_file_argument_spec(
            location=dict(type="path"),
            sync_type=dict(type="str"),
            sync_uri=dict(type="str"),
            priority=dict(type="int"),
            auto_sync=dict(type="bool"),
            options=dict(type="dict"),
            main_repo=dict(type="bool"),
        ),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    run_file_plan(module, plan_repo_conf, "repos.conf")


if __name__ == "__main__":
    main()
