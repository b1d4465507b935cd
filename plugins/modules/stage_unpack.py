#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: stage_unpack
short_description: Unpack a verified Gentoo stage tarball into a staging root
version_added: 0.1.0
description:
  - Checks a stage3/stage4 tarball like the Gentoo handbook asks (SHA512 from the C(.DIGESTS)
    file, the OpenPGP signature C(.asc)) and unpacks it into O(dest) with numeric owners,
    modes and extended attributes kept (C(tar xp --numeric-owner --xattrs-include='*.*')).
  - Every member is inspected before its bytes reach C(tar); members with absolute paths or
    C(..) components, hard links leaving the root and members below an archive symlink that
    leads out of the root are refused.
  - Extraction happens in a hidden directory beside O(dest) that is renamed into place only
    when complete, so a refused or failed stage leaves nothing behind.
  - A marker C(var/lib/gentoo-binhost/stage.json) inside the root records the stage and its
    SHA512; a re-run on that root reads only the small C(.DIGESTS) file and changes nothing.
author:
  - gentoo_binhost.infra maintainers (@gentoo-binhost)
requirements:
  - GNU tar and xz on the managed host; python-gnupg and gpg when O(verify=true)
attributes:
  check_mode:
    support: full
    description: Reads the DIGESTS and the marker; reports whether the stage would be unpacked.
  diff_mode:
    support: none
    description: Not supported.
  idempotent:
    support: full
    description: A root holding the same stage (by SHA512) is left as it is.
options:
  src:
    description: Path or URL (http, https, file) of the stage tarball (C(.tar.xz)).
    type: str
    required: true
  dest:
    description:
      - The staging root. It must not exist, be an empty directory, or hold the same stage
        (unpacked by this module). C(/) is refused.
    type: path
    required: true
  digests:
    description: Path or URL of the DIGESTS file. Defaults to O(src) plus C(.DIGESTS).
    type: str
  signature:
    description: Path or URL of the detached signature. Defaults to O(src) plus C(.asc).
    type: str
  verify:
    description:
      - Check the SHA512 from the DIGESTS file (its clearsigned text when signed) and the
        detached OpenPGP signature before unpacking.
    type: bool
    default: true
  key:
    description: File with the armored public key(s) allowed to sign stages (ephemeral keyring).
    type: path
    default: /usr/share/openpgp-keys/gentoo-release.asc
  fingerprint:
    description: Full fingerprint of the key that must have signed the stage and its DIGESTS.
    type: str
  remove_binrepos_conf:
    description:
      - Remove the stage's C(etc/portage/binrepos.conf) (file or directory). Gentoo's stages
        ship one that points at Gentoo's official binary host; a build host must not use it.
    type: bool
    default: false
  timeout:
    description: Seconds to wait for a server to answer (connect and each read).
    type: int
    default: 60
notes:
  - Run as root, since owners, device nodes and extended attributes need it.
"""

EXAMPLES = r"""
- name: Unpack the stage for the "desktop" stack
  gentoo_binhost.infra.stage_unpack:
    src: https://distfiles.gentoo.org/releases/amd64/autobuilds/20261117T170200Z/stage3-amd64-openrc-20261117T170200Z.tar.xz
    dest: /var/lib/gentoo-binhost/chroots/desktop
    fingerprint: 13EBBDBEDE7A12775DFDB1BABB572E0E2D182910
    remove_binrepos_conf: true
"""

RETURN = r"""
dest:
  description: The staging root.
  returned: always
  type: str
  sample: /var/lib/gentoo-binhost/chroots/desktop
stage:
  description: File name of the stage tarball.
  returned: always
  type: str
  sample: stage3-amd64-openrc-20261117T170200Z.tar.xz
sha512:
  description: SHA512 of the stage tarball (from DIGESTS, or computed when O(verify=false)).
  returned: always
  type: str
  sample: 8d0e…
signed_by:
  description: Fingerprint of the primary key that signed the tarball.
  returned: when the stage was unpacked with O(verify=true)
  type: str
  sample: 13EBBDBEDE7A12775DFDB1BABB572E0E2D182910
binrepos_conf_removed:
  description: Whether the stage's binrepos.conf was (or would be) removed.
  returned: always
  type: bool
  sample: true
marker:
  description: What the root's marker records about the stage it holds.
  returned: unless in check mode for a new root
  type: dict
  sample: {"stage": "stage3-amd64-openrc-20261117T170200Z.tar.xz", "sha512": "8d0e…"}
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._stage import unpack_stage


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type="str", required=True),
            dest=dict(type="path", required=True),
            digests=dict(type="str"),
            signature=dict(type="str"),
            verify=dict(type="bool", default=True),
            key=dict(type="path", default="/usr/share/openpgp-keys/gentoo-release.asc"),
            fingerprint=dict(type="str"),
            remove_binrepos_conf=dict(type="bool", default=False),
            timeout=dict(type="int", default=60),
        ),
        supports_check_mode=True,
    )
    try:
        result = unpack_stage(module.params, check_mode=module.check_mode)
    except InfraError as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # an unexpected failure: keep the traceback for the report
        module.fail_json(msg="unexpected error unpacking the stage: %s" % exc, exception=traceback.format_exc())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
