#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: binpkg_publish
short_description: Publish a Portage PKGDIR as an atomic, verified generation of a binary package server
version_added: 0.1.0
description:
  - Copies a Portage package directory (C(PKGDIR) with its C(Packages) index) into a new
    generation below O(dest) with C(rsync --link-dest) against the current generation, so
    unchanged packages become hard links and only changed packages are transferred.
  - Before anything is served, the copy's C(Packages) index is validated against its files
    (each listed file exists inside the generation with the listed C(SIZE) and every listed
    checksum; C(PACKAGES) count; C(Packages.gz) equal to C(Packages)), and, with
    O(expect_revisions), every package must have been built from the pinned commits, as
    Portage records them in the package's C(REPO_REVISIONS).
  - Writes C(manifest.json) (provenance, package list, changes from the previous
    generation, bytes transferred), renames the generation into C(generations/<id>) and
    switches the C(current) symlink with one C(rename(2)). Clients following C(current)
    therefore see the old or the new generation, never a mix. Old generations beyond
    O(keep) are removed; the stack's C(index.html) status page is rewritten.
  - A publication whose index is byte for byte the one already published (with the same
    O(provenance)) changes nothing, but its packages are still checked against
    O(expect_revisions), so a moved pin is not silently accepted. A killed publication leaves a C(.partial-*) directory
    that the next run removes; C(current) is untouched.
  - With O(rollback_to), switches C(current) back to an existing generation instead.
author:
  - gentoo_binhost.infra maintainers (@gentoo-binhost)
requirements:
  - rsync on the binary package server (and on the source host for a remote O(src))
  - zstd when packages lack C(REPO_REVISIONS) in the index and O(expect_revisions) is set,
    since gpkg metadata is zstd-compressed by default
extends_documentation_fragment:
  - gentoo_binhost.infra.attributes
attributes:
  check_mode:
    support: full
    details: Reads the source index and predicts the changes; nothing is copied or switched.
  diff_mode:
    support: none
    details: Not supported; the RV(changes) return value lists the packages added, removed and rebuilt.
  idempotent:
    support: full
    details: A source whose index (and provenance) is already the current generation changes nothing.
options:
  src:
    description:
      - The package directory to publish, anything C(rsync) accepts as a source
        (V(/path), V(host:/path), V(rsync://host/module/path)). Required unless
        O(rollback_to) is given.
    type: str
  dest:
    description:
      - The stack's directory on the binary package server; C(current) and C(generations/)
        live below it. Created if missing.
    type: path
    required: true
  name:
    description: The stack's name, shown in C(index.html) and the manifest. Defaults to the base name of O(dest).
    type: str
  keep:
    description: How many generations to keep, the current one always included.
    type: int
    default: 5
  expect_revisions:
    description:
      - Repository name to the commit its packages must have been built from, for example
        C(gentoo=<commit of the pinned tag>). A package of one of these repositories
        whose recorded revision differs, or that records none, makes the publication fail.
    type: dict
  provenance:
    description:
      - Free-form provenance stored in C(manifest.json) and shown in C(index.html); the
        build_host role passes the snapshot tag and commit, the overlays, the stage file
        and its sha512, the Portage version, the effective make.conf and repos.conf, and
        when and where the packages were built.
    type: dict
  base_url:
    description:
      - URL under which O(dest) is served. When set, each generation's index gets Portage's
        C(URI) header pointing at C(<base_url>/generations/<id>), so a client that read an
        index fetches the files of that very generation even if C(current) moves on.
    type: str
  rollback_to:
    description: Id of an existing generation to make current again; it is validated first.
    type: str
notes:
  - Generations are named by their UTC publication time, C(YYYYMMDDTHHMMSSZ).
  - Serve O(dest) with any web server that follows symlinks; clients use
    C(<base_url>/current) as C(sync-uri) in binrepos.conf.
seealso:
  - module: gentoo_binhost.infra.stage_unpack
"""

EXAMPLES = r"""
- name: Publish the packages of chroot stack1
  gentoo_binhost.infra.binpkg_publish:
    src: /var/lib/gentoo-binhost/chroots/stack1/var/cache/binpkgs
    dest: /var/lib/gentoo-binhost/binpkgs/stack1
    base_url: http://binhost.example.org/stack1
    expect_revisions:
      gentoo: 9d0c1f4a6b1e8a0cbb6a4e0f4e2d8f5b2a3c4d5e
    provenance:
      snapshot: {tag: "2025-01-06", commit: 9d0c1f4a6b1e8a0cbb6a4e0f4e2d8f5b2a3c4d5e}

- name: Pull them from another machine over SSH instead
  gentoo_binhost.infra.binpkg_publish:
    src: builder.example.org:/var/lib/gentoo-binhost/chroots/stack1/var/cache/binpkgs
    dest: /var/lib/gentoo-binhost/binpkgs/stack1

- name: Serve the previous generation again
  gentoo_binhost.infra.binpkg_publish:
    dest: /var/lib/gentoo-binhost/binpkgs/stack1
    rollback_to: 20250106T031500Z
"""

RETURN = r"""
generation:
  description: The generation C(current) points at afterwards.
  returned: always
  type: str
  sample: 20250106T031500Z
previous:
  description: The generation C(current) pointed at before.
  returned: always
  type: str
dest:
  description: The stack directory.
  returned: always
  type: str
packages:
  description: Number of packages in the published index.
  returned: when a publication ran or was predicted
  type: int
changes:
  description: CPVs added, removed and rebuilt compared with the previous generation.
  returned: when a publication ran or was predicted
  type: dict
  sample: {added: [app-misc/hello-2], removed: [app-misc/hello-1], rebuilt: [dev-libs/libfoo-1.0]}
transfer:
  description:
    - Files and bytes rsync transferred (hard-linked files are not counted);
      C(total_files) and C(total_bytes) describe the whole source, directories included in C(total_files).
  returned: always
  type: dict
  sample: {files: 2, bytes: 31744, total_files: 12, total_bytes: 112640}
pruned:
  description: Generations removed because of O(keep).
  returned: when a publication ran
  type: list
  elements: str
url_path:
  description: Path of the new generation below O(base_url).
  returned: when a publication ran
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._module import run_module
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._publish import (
    ARGUMENT_SPEC,
    MUTUALLY_EXCLUSIVE,
    REQUIRED_ONE_OF,
    run_publication,
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, required_one_of=REQUIRED_ONE_OF,
                           mutually_exclusive=MUTUALLY_EXCLUSIVE, supports_check_mode=True)
    run_module(module, run_publication, "publishing packages")


if __name__ == "__main__":
    main()
