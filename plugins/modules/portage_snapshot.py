#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: portage_snapshot
short_description: Import a verified Gentoo Portage snapshot into a git repository
version_added: 0.1.0
description:
  - Fetches one daily Portage snapshot (C(gentoo-YYYYMMDD.tar.xz)) with its C(.md5sum) and
    C(.gpgsig), verifies both like C(emerge-webrsync) does, and commits the tree as
    C(Update portage tree to YYYY-MM-DD) on O(branch), tagged with the day the snapshot
    describes (C(metadata/timestamp.x) minus one day, in UTC).
  - The tarball is streamed through C(xz) and a tar reader straight into git objects with
    C(git fast-import); nothing is extracted to disk, and only files that changed since the
    branch tip are written. New objects and refs become visible together at the end, so a
    refused or interrupted import leaves the repository's refs and objects as they were.
  - The md5 of the imported tarball is recorded in the commit, so when nothing is new
    upstream the module decides so from the tiny C(.md5sum) alone and downloads nothing else.
  - Commits and tags carry the snapshot's own time and a fixed identity, so the same
    snapshots imported on two machines give the same commit IDs.
  - Concurrent runs on one repository are serialised by a lock file in the git directory.
author:
  - gentoo_binhost.infra maintainers (@gentoo-binhost)
requirements:
  - git (with C(fast-import)), gpg and xz on the managed host
  - the python-gnupg library on the managed host
extends_documentation_fragment:
  - gentoo_binhost.infra.attributes
attributes:
  check_mode:
    support: full
    details:
      - Downloads and verifies the snapshot in a temporary directory and reports the tag and
        file statistics it would import; the repository is not created or written.
  diff_mode:
    support: full
    details:
      - Shows the branch before and the tag and paths (at most 200) after.
  idempotent:
    support: full
    details:
      - A snapshot already at the branch tip (same md5) is not downloaded again.
options:
  repo:
    description:
      - Path of the git repository, bare or with a work tree. Created when absent
        (see O(bare)); removed again if that first import fails.
    type: path
    required: true
  bare:
    description:
      - Whether a repository created by this module is bare. Ignored for existing ones.
    type: bool
    default: true
  branch:
    description: Branch that receives the snapshot commits.
    type: str
    default: master
  mirrors:
    description:
      - Base URLs of Gentoo distfiles mirrors, tried in order. Files are read from
        C(<mirror>/snapshots/gentoo-<YYYYMMDD>.tar.xz) and its C(.md5sum) and C(.gpgsig);
        with O(date=latest), from C(gentoo-latest.tar.xz).
      - A mirror that fails is skipped for the next. Failing means a missing file, an HTTP
        error, a timeout, a C(.md5sum) that is not one (an HTML page, an empty or truncated file), a bad checksum
        or signature, a corrupt or truncated tarball, a refused tarball member, an unreadable
        C(metadata/timestamp.x), or a snapshot older than the branch tip that is not the day
        asked for (a mirror whose C(latest) lags behind). A later mirror that works is used
        and each skipped one is reported as a warning and in RV(skipped_mirrors); when none
        works, the error lists every mirror with its reason. Nothing in the repository changes
        because of a skipped mirror.
      - Failures that every mirror would give alike end the run at the first one, such as a
        key file that is missing or lacks O(fingerprint), a tag already taken by another tree, a work
        tree with local changes, git errors, and the day asked for by O(date) being older
        than the branch tip (see O(allow_older)).
      - When neither O(mirrors) nor O(src) is given, V(https://distfiles.gentoo.org) is used.
      - C(http://), C(https://) and C(file://) URLs are supported.
    type: list
    elements: str
  src:
    description:
      - Path or URL of one snapshot tarball; its C(.md5sum) and C(.gpgsig) are expected beside it.
      - Mutually exclusive with O(mirrors).
    type: str
  date:
    description:
      - Which snapshot, V(latest) or a day as C(YYYYMMDD) or C(YYYY-MM-DD). Used with O(mirrors).
    type: str
    default: latest
  verify:
    description:
      - Check the md5 digest and the OpenPGP detached signature before importing. Both must pass.
      - With V(false) the tarball is imported unchecked (the C(.md5sum) is still used, when
        present, to skip downloads of a snapshot already imported).
    type: bool
    default: true
  key:
    description:
      - File with the armored OpenPGP public key(s) allowed to sign snapshots. It is imported
        into a temporary keyring; the host's keyrings are not used.
    type: path
    default: /usr/share/openpgp-keys/gentoo-release.asc
  fingerprint:
    description:
      - Full fingerprint of the primary key (or signing subkey) that must have made the
        signature. Spaces and a C(0x) prefix are allowed.
    type: str
  allow_older:
    description:
      - Import a snapshot older than the branch tip (a deliberate rollback). Otherwise it is refused.
    type: bool
    default: false
  tag_format:
    description:
      - C(strftime) format of the tag name, applied to C(metadata/timestamp.x) minus 86400 seconds in UTC.
    type: str
    default: "%Y-%m-%d"
  remote:
    description: Git remote name or URL to push the branch and tag to. Required with O(push).
    type: str
  push:
    description:
      - Push the branch and the snapshot's tag to O(remote) when the remote does not have them yet.
    type: bool
    default: false
  timeout:
    description: Seconds to wait for a mirror to answer (connect and each read), a whole number from 1 to 86400.
    type: int
    default: 60
notes:
  - Git cannot store empty directories; a snapshot's empty directories are not kept.
    Gentoo snapshots contain none.
  - Members that are devices or FIFOs, that have absolute paths or C(..) components, links
    that point outside the tree, or C(.git) path components are refused.
seealso:
  - name: emerge-webrsync
    description: Portage's own snapshot sync, whose verification this module follows.
    link: https://wiki.gentoo.org/wiki/Emerge-webrsync
"""

EXAMPLES = r"""
- name: Import the newest snapshot into the mirror's bare repository
  gentoo_binhost.infra.portage_snapshot:
    repo: /srv/gentoo-mirror/git/gentoo.git
    mirrors:
      - https://distfiles.gentoo.org
      - https://gentoo.osuosl.org
    fingerprint: DCD05B71EAB94199527F44ACDB6B8C1F96D8BF6D
  register: snapshot

- name: Import one given day and push it to the served mirror
  gentoo_binhost.infra.portage_snapshot:
    repo: /var/lib/portage-git/gentoo
    date: "2026-11-20"
    remote: git@mirror.example.org:gentoo.git
    push: true

- name: Import a tarball already on disk (its .md5sum and .gpgsig beside it)
  gentoo_binhost.infra.portage_snapshot:
    repo: /srv/gentoo-mirror/git/gentoo.git
    src: /var/cache/snapshots/gentoo-20261120.tar.xz
    key: /etc/portage/keys/gentoo-release.asc
"""

RETURN = r"""
changed:
  description: Whether a commit was made (or would be, in check mode) or a push happened.
  returned: always
  type: bool
  sample: true
date:
  description: Day the imported (or current) snapshot describes, C(timestamp.x) minus one day, UTC.
  returned: always
  type: str
  sample: "2026-11-20"
tag:
  description: Name of the tag for that day.
  returned: always
  type: str
  sample: "2026-11-20"
commit:
  description: Commit at the branch tip afterwards (null in check mode for a new import).
  returned: always
  type: str
  sample: 3f1c0a3d4be1b9d1e0c7f4a4f8f8e6b5c2d1a0b9
previous_commit:
  description: Commit at the branch tip before, null for a new repository.
  returned: always
  type: str
  sample: 9c2d1a0b93f1c0a3d4be1b9d1e0c7f4a4f8f8e6b
timestamp:
  description: Unix time in the snapshot's C(metadata/timestamp.x).
  returned: always
  type: int
  sample: 1795310701
url:
  description: Location of the tarball used.
  returned: always
  type: str
  sample: https://distfiles.gentoo.org/snapshots/gentoo-20261120.tar.xz
md5:
  description: md5 digest of the tarball.
  returned: always
  type: str
  sample: 0f343b0931126a20f133d67c2b018a3b
signed_by:
  description: Fingerprint of the primary key that signed the tarball.
  returned: when the snapshot was downloaded and verified
  type: str
  sample: DCD05B71EAB94199527F44ACDB6B8C1F96D8BF6D
stats:
  description: Files added, modified and deleted relative to the previous tip.
  returned: always
  type: dict
  sample: {"added": 12, "modified": 1490, "deleted": 7}
pushed:
  description: Whether the branch and tag were pushed to O(remote).
  returned: always
  type: bool
  sample: false
skipped_mirrors:
  description:
    - The mirrors tried before the one used (in order), each with the reason it was skipped.
      Empty when the first one worked.
  returned: always
  type: list
  elements: dict
  contains:
    mirror:
      description: The mirror's base URL as given in O(mirrors) (or O(src)).
      type: str
    reason:
      description: Why its snapshot was not used.
      type: str
  sample:
    - mirror: https://mirror.example.org/gentoo
      reason: "gentoo-latest.tar.xz.md5sum is not an md5sum file (expected '<32 hex digits>  gentoo-latest.tar.xz')"
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._module import run_module
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._openpgp import GNUPG_IMPORT_ERROR, HAS_GNUPG
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._snapshot import (
    ARGUMENT_SPEC,
    MUTUALLY_EXCLUSIVE,
    REQUIRED_IF,
    import_snapshot,
)


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=MUTUALLY_EXCLUSIVE,
        required_if=REQUIRED_IF,
        supports_check_mode=True,
    )
    if module.params["verify"] and not HAS_GNUPG:
        module.fail_json(msg=missing_required_lib("python-gnupg"), exception=GNUPG_IMPORT_ERROR)
    run_module(module, import_snapshot, "importing the snapshot")


if __name__ == "__main__":
    main()
