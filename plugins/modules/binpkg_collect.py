#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: binpkg_collect
short_description: Record the binary packages one chroot build produced, bound to the tree it was built from
version_added: 0.1.0
description:
  - Run with O(state=started) right before a build and with O(state=recorded) once it
    succeeded. The record is a directory below O(dest), outside the chroot, that holds exactly
    the build's packages (hard links into the chroot's PKGDIR, copies across file systems), a
    C(Packages) index listing only them, and C(build.json), the build record. C(dest/last)
    points at the last successful build; that is what M(gentoo_binhost.infra.binpkg_publish)
    publishes, so a PKGDIR that still holds the packages of earlier builds (Portage's
    binpkg-multi-instance keeps every rebuild) never leaks them into a publication.
  - A build's packages are the ones the chroot has installed when it is done, each matched to
    the PKGDIR instance with the same CPV and C(BUILD_TIME). After C(emerge -e @world) these are
    exactly the packages the build made; after a partial build the new instances plus those
    still installed from earlier builds.
  - Each package is bound to the repository commits it was built from. Portage records them
    in the package (C(REPO_REVISIONS)) only when git is in the chroot; Gentoo's stage3s have
    none. The record binds the others itself, by size and checksums of the file, to the
    O(revisions) checked out for this build (packages this build added to the PKGDIR) or to
    what the previous record bound them to. Packages no record knows stay unbound, and a
    publication that pins their repository refuses them.
  - Paths inside the chroot (the PKGDIR, C(/var/db/pkg), C(/etc/portage) files) are resolved
    as the chroot sees them, symbolic links followed inside O(root); a package file that is a
    symbolic link is refused.
author:
  - gentoo_binhost.infra maintainers (@gentoo-binhost)
extends_documentation_fragment:
  - gentoo_binhost.infra.attributes
attributes:
  check_mode:
    support: full
    details: Reports which packages would be recorded; writes nothing.
  diff_mode:
    support: none
    details: The return values list the packages recorded.
  idempotent:
    support: full
    details: A build whose packages and bindings equal the last record's adds no record.
options:
  root:
    description: The chroot's root directory.
    type: path
    required: true
  pkgdir:
    description: The chroot's C(PKGDIR) as the chroot names it.
    type: str
    default: /var/cache/binpkgs
  dest:
    description:
      - This chroot's record directory on the build host, outside the chroot. Created if missing.
    type: path
    required: true
  state:
    description:
      - V(started) remembers the instances the PKGDIR holds before the build (C(dest/.started.json)).
      - V(recorded) records the build that just succeeded and points C(dest/last) at it.
    type: str
    choices: [started, recorded]
    default: recorded
  name:
    description: Name of the chroot (and of the stack it is published as) for the record.
    type: str
  revisions:
    description:
      - Repository name to the commit that was checked out in the chroot for this build, for
        example C(gentoo) to the commit of the pinned tag.
    type: dict
    default: {}
  provenance:
    description:
      - What else to record about the build (stage, snapshot tag, emerge arguments, Portage
        version, build log...). C(make_conf), C(repos_conf) (the configuration of the
        repositories in O(revisions), read inside the chroot) and C(built_at) are added when
        not given.
    type: dict
    default: {}
  keep:
    description: How many builds to keep below O(dest); the last one is always kept.
    type: int
    default: 3
notes:
  - Run as root on the build host, after the chroot's build and before its mounts are
    removed when the PKGDIR is a mount.
seealso:
  - module: gentoo_binhost.infra.binpkg_publish
"""

EXAMPLES = r"""
- name: Remember what the PKGDIR holds before the build
  gentoo_binhost.infra.binpkg_collect:
    root: /var/lib/gentoo-binhost/chroots/desktop
    dest: /var/lib/gentoo-binhost/builds/desktop
    state: started

- name: Record the build
  gentoo_binhost.infra.binpkg_collect:
    root: /var/lib/gentoo-binhost/chroots/desktop
    dest: /var/lib/gentoo-binhost/builds/desktop
    name: desktop
    revisions:
      gentoo: 8043ff9fb0749d2b4b5c1a0e8a22c3cd8a4f1b6e
    provenance:
      snapshot: {tag: "2026-11-30"}
  register: build

- name: Publish it
  gentoo_binhost.infra.binpkg_publish:
    src: "{{ build.path }}"
    dest: /var/lib/gentoo-binhost/binpkgs/desktop
    expect_revisions: "{{ build.record.revisions }}"
"""

RETURN = r"""
dest:
  description: The chroot's record directory.
  returned: always
  type: str
  sample: /var/lib/gentoo-binhost/builds/desktop
pkgdir:
  description: Host path of the chroot's PKGDIR, resolved as the chroot sees it.
  returned: always
  type: str
  sample: /var/lib/gentoo-binhost/chroots/desktop/var/cache/binpkgs
instances:
  description: Package instances in the PKGDIR when the build started.
  returned: with O(state=started)
  type: int
  sample: 812
build:
  description: Id of the recorded build (the last one when nothing new was recorded).
  returned: with O(state=recorded)
  type: str
  sample: 20261201T031502Z
path:
  description: The build's directory, a complete PKGDIR of its packages.
  returned: with O(state=recorded), unless in check mode for a new build
  type: str
  sample: /var/lib/gentoo-binhost/builds/desktop/20261201T031502Z
packages:
  description: Number of packages in the build.
  returned: with O(state=recorded)
  type: int
  sample: 812
built:
  description: CPVs of the packages this build added to the PKGDIR.
  returned: with O(state=recorded)
  type: list
  elements: str
  sample: [app-misc/hello-2]
unbound:
  description: CPVs of recorded packages bound to no tree (neither by the package nor by a record).
  returned: with O(state=recorded)
  type: list
  elements: str
  sample: []
unpackaged:
  description: Installed packages for which the PKGDIR has no binary package of the same build.
  returned: with O(state=recorded)
  type: list
  elements: str
  sample: [virtual/libc-1-r1]
pruned:
  description: Builds removed because of O(keep).
  returned: when a build was recorded
  type: list
  elements: str
record:
  description: The build record (C(build.json)) of the build.
  returned: with O(state=recorded), unless in check mode for a new build
  type: dict
  sample: {"build": "20261201T031502Z", "revisions": {"gentoo": "8043ff9f…"}, "packages": []}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._build_record import ARGUMENT_SPEC, run_build_record
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._module import run_module


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run_module(module, run_build_record, "recording the build")


if __name__ == "__main__":
    main()
