#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: chroot_portage_setup
short_description: Pin the repositories and write the Portage configuration of a chroot in one step
version_added: 0.1.0
description:
  - Configures one staging root (chroot) for a build in a single module call, from the host,
    without entering the chroot. The host's git clones and updates the repositories, so the
    chroot needs no git of its own.
  - Clones or updates every repository of O(repositories) at its pinned O(repositories[].version)
    and declares it in C(<root>/etc/portage/repos.conf/<name>.conf) (C(sync-type = git),
    C(sync-uri), C(location), C(priority), C(sync-depth = 1),
    C(sync-git-verify-commit-signature = no), and C(main-repo) in C([DEFAULT]) for the main
    repository), exactly like M(gentoo_binhost.infra.portage_repo_conf) does.
  - Adds the O(features_add) tokens to C(FEATURES) and sets the O(make_conf) variables in
    C(<root>/etc/portage/make.conf), exactly like M(gentoo_binhost.infra.portage_make_conf)
    does; sets the C(local) line of C(<root>/etc/portage/mirrors); copies the host's
    C(/etc/resolv.conf).
  - A repository location that is not a git checkout yet (the stage's own copy of the tree,
    say) is replaced by a fresh clone. The clone is made in a hidden directory beside the
    location and renamed into place only when it has the pinned version, so a failure leaves
    the old content.
  - In a checkout, a tag or a full commit id that is already checked out is recognised
    locally, B(without contacting the remote). A branch, or a version the checkout does not
    have, is looked up with C(git ls-remote); objects are fetched only when HEAD has to move,
    and HEAD moves with a forced checkout (a branch pin keeps a local branch of that name, tag and
    commit pins leave HEAD detached). Tags are taken as immutable, so a tag moved on the remote
    after it was checked out is not noticed.
  - Everything is checked and prepared (input, the files' new content, remote lookups,
    fetches into the object store, new clones aside) before anything visible changes. A bad
    input or a version the remote does not have fails with nothing changed.
  - Files are written atomically (temporary file in the same directory, then a rename).
  - Every path in the chroot is resolved the way the chroot itself resolves it; a symbolic
    link is followed inside the chroot (an absolute target starts again at O(root)), so
    C(etc/portage -> /etc/elsewhere) or C(var/db/repos -> /) lead to the chroot's own
    directories, never to the host's. A link whose target the chroot does not have is refused
    with a message naming the link and where it leads. A link at a repository location itself
    is replaced by the clone, and C(etc/resolv.conf) as a link is replaced by a file instead
    of being written through.
author:
  - gentoo_binhost.infra maintainers (@gentoo-binhost)
requirements:
  - git on the host
extends_documentation_fragment:
  - gentoo_binhost.infra.attributes
attributes:
  check_mode:
    support: full
    details:
      - Nothing is written, cloned or fetched. Branch pins and versions the checkout does not
        have are looked up read-only with C(git ls-remote), so C(changed) and the commit a
        repository would get are still exact (an abbreviated commit id that is not in the
        checkout is refused in check mode, since only a fetch could resolve it).
  diff_mode:
    support: full
    details:
      - Returns the before and after text of every configuration file that changes (a list,
        one entry per file). Repositories report their commits in RV(repositories) instead.
  idempotent:
    support: full
    details: When run twice in a row with the same arguments, the second run reports no change.
options:
  root:
    description:
      - The chroot, as a path on the host. Must be an existing directory; C(/) is refused.
    type: path
    required: true
  repositories:
    description:
      - The repositories of the chroot, cloned or updated in this order.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - Portage repository name (letters, digits, C(_), C(+), C(-), not starting with C(+)
            or C(-)); also the name of its C(repos.conf) file. Names must be unique.
        type: str
        required: true
      url:
        description:
          - Where git clones and fetches from; also the C(sync-uri). An absolute path is used
            as a C(file://) URL by git, so that O(repositories[].depth) works.
        type: str
        required: true
      version:
        description:
          - The branch, tag or commit id to check out. Tags and full commit ids are immutable
            pins answered locally; a branch is looked up on the remote at every run.
        type: str
        required: true
      location:
        description:
          - Absolute path of the repository inside the chroot, without C(.) or C(..) components
            and not C(/). Default C(/var/db/repos/<name>). Locations must not nest.
        type: str
      depth:
        description:
          - Make a shallow clone and shallow fetches of this many commits. The build_host role
            uses V(1) for the main repository.
        type: int
      main:
        description: Whether this is the main repository (C(main-repo) in C([DEFAULT])). At most one.
        type: bool
        default: false
      priority:
        description: C(priority) of the repository in repos.conf.
        type: int
  features_add:
    description:
      - Tokens added to C(FEATURES) in make.conf when missing; other tokens and their order stay.
    type: list
    elements: str
    default: []
  make_conf:
    description:
      - make.conf variables and their whole values (for example C(PKGDIR), C(MAKEOPTS)). Values
        are written literally (never expanded) in double quotes; numbers become strings.
    type: dict
    default: {}
  local_mirror:
    description:
      - The URL of the C(local) line of C(<root>/etc/portage/mirrors), from which Portage
        fetches fetch-restricted files (C(<url>/distfiles/<file>)). Trailing slashes are
        dropped. The last C(local) line is replaced (or one appended); other lines are kept.
      - An empty string removes every C(local) line. Not given, the file is left alone.
    type: str
  resolv_conf:
    description:
      - Copy the host's C(/etc/resolv.conf) to C(<root>/etc/resolv.conf) (mode 0644,
        root-owned) when the host has one. A symlink there is replaced by the file, never
        written through.
    type: bool
    default: true
notes:
  - New files get mode 0644 and new directories 0755. repos.conf files are set to 0644, the
    mirrors file and resolv.conf to 0644 and owner root (when run as root); make.conf keeps its
    mode and owner.
  - Local modifications of tracked files in a checkout are not looked for when HEAD is already
    at the pinned commit (that would read the whole tree at every run); a checkout that moves
    HEAD overwrites them.
  - A checkout whose C(origin) URL differs from O(repositories[].url) is not trusted for local
    answers; the version is looked up at the new URL and C(origin) is changed.
seealso:
  - module: gentoo_binhost.infra.portage_repo_conf
  - module: gentoo_binhost.infra.portage_make_conf
  - module: ansible.builtin.git
"""

EXAMPLES = r"""
- name: Pin the tree and an overlay and configure Portage in a build chroot
  gentoo_binhost.infra.chroot_portage_setup:
    root: /var/lib/gentoo-binhost/chroots/desktop
    repositories:
      - name: gentoo
        url: git://mirror.example.org/gentoo.git
        version: "2026-01-06"
        depth: 1
        main: true
      - name: stoney-cloud
        url: https://git.example.org/stoney-cloud/overlay.git
        version: main
        priority: 50
    features_add: [buildpkg, parallel-fetch]
    make_conf:
      PKGDIR: /var/cache/binpkgs
      MAKEOPTS: -j4
    local_mirror: http://mirror.example.org:8080
  register: setup

- name: Show the commit of the Portage tree
  ansible.builtin.debug:
    msg: "{{ setup.commits.gentoo }}"

- name: Take the local mirror out again
  gentoo_binhost.infra.chroot_portage_setup:
    root: /var/lib/gentoo-binhost/chroots/desktop
    local_mirror: ""
    resolv_conf: false
"""

RETURN = r"""
changed:
  description: Whether a repository or a file changed (or would, in check mode).
  returned: always
  type: bool
  sample: false
root:
  description: The chroot's real path.
  returned: always
  type: str
  sample: /var/lib/gentoo-binhost/chroots/desktop
repositories:
  description: One entry per repository, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The repository name.
      type: str
      sample: gentoo
    url:
      description: The URL as given.
      type: str
      sample: git://mirror.example.org/gentoo.git
    version:
      description: The version as given.
      type: str
      sample: "2026-01-06"
    location:
      description: The location inside the chroot.
      type: str
      sample: /var/db/repos/gentoo
    commit:
      description:
        - The commit checked out afterwards (in check mode, the one that would be; null for a
          commit id in check mode that would have to be fetched first and is abbreviated).
      type: str
      sample: 4b825dc642cb6eb9a060e54bf8d69288fbee4904
    before:
      description: The commit checked out before; null when the repository was cloned.
      type: str
      sample: 9d2c16e2ba77b8fd4c8fc6cf2d0a0a8d5b8a5b4e
    kind:
      description: What the version is, V(branch), V(tag) or V(commit).
      type: str
      sample: tag
    action:
      description:
        - V(unchanged), V(cloned), V(checked-out) (HEAD moved to a commit the checkout
          already had) or V(fetched) (HEAD moved after a fetch).
      type: str
      sample: unchanged
    changed:
      description: Whether HEAD moved, a clone happened or the C(origin) URL changed.
      type: bool
      sample: false
    remote_contacted:
      description: Whether the remote was asked (V(false) for an unchanged tag or commit pin).
      type: bool
      sample: false
commits:
  description: Repository name to the commit of RV(repositories[].commit).
  returned: always
  type: dict
  sample: {"gentoo": "4b825dc642cb6eb9a060e54bf8d69288fbee4904"}
changed_files:
  description: The files that changed (or would), content or mode/owner.
  returned: always
  type: list
  elements: str
  sample: ["/var/lib/gentoo-binhost/chroots/desktop/etc/portage/make.conf"]
diff:
  description: Before and after text of each changed file.
  returned: in diff mode when a file changed
  type: list
  elements: dict
  sample: [{"before": "FEATURES=\"a\"\n", "after": "FEATURES=\"a buildpkg\"\n",
            "before_header": "/c/etc/portage/make.conf", "after_header": "/c/etc/portage/make.conf"}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._chroot_setup import setup_chroot
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._module import run_module


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", required=True),
            repositories=dict(type="list", elements="dict", default=[], options=dict(
                name=dict(type="str", required=True),
                url=dict(type="str", required=True),
                version=dict(type="str", required=True),
                location=dict(type="str"),
                depth=dict(type="int"),
                main=dict(type="bool", default=False),
                priority=dict(type="int"),
            )),
            features_add=dict(type="list", elements="str", default=[]),
            make_conf=dict(type="dict", default={}),
            local_mirror=dict(type="str"),
            resolv_conf=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    run_module(module, setup_chroot, "setting up chroot %(root)s")


if __name__ == "__main__":
    main()
