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
  - "With O(verify=true) one of these must hold, checked before anything is unpacked:
    B(DIGESTS and signature) (the default): the SHA512 listed in the DIGESTS file (its clearsigned
    text, signed by O(key), when it is signed) and the detached signature C(.asc) by O(key);
    B(pinned SHA512) (O(sha512) given): the tarball has that SHA512, no DIGESTS file is read,
    and the detached signature is checked too only when O(signature) is given;
    B(signature alone) (O(digests) set to an empty string, for a stage4 of one's own): the
    detached signature by O(key), for example the admin's own key."
  - The compression is told by the file's first bytes, not its name. xz, bzip2 (the
    handbook's C(.tbz2) stage4), gzip, zstd and uncompressed tar are read, each through its own
    program (C(xz -T0 -dc) where xz decompresses on several threads, C(bzip2 -dc), C(gzip -dc),
    C(zstd -dc)); anything else is refused before anything is written.
  - Every member is inspected before its bytes reach C(tar); members with absolute paths or
    C(..) components, hard links leaving the root and members below an archive symlink that
    leads out of the root are refused.
  - Extraction happens in a hidden directory beside O(dest) that is renamed into place only
    when complete, so a refused or failed stage leaves nothing behind.
  - A marker C(var/lib/gentoo-binhost/stage.json) inside the root records the stage and its
    SHA512; a re-run on that root reads only the small C(.DIGESTS) file (nothing at all with
    O(sha512)) and changes nothing. Without a SHA512 known beforehand (O(digests) empty, or
    O(verify=false) and no DIGESTS file), a re-run recognises the root by the stage's file name.
author:
  - gentoo_binhost.infra maintainers (@gentoo-binhost)
requirements:
  - GNU tar on the managed host, and the decompressor of the stage's format (xz, bzip2, gzip or zstd)
  - python-gnupg and gpg when a signature is checked
extends_documentation_fragment:
  - gentoo_binhost.infra.attributes
attributes:
  check_mode:
    support: full
    details: Reads the DIGESTS (unless O(sha512) is given) and the marker; reports whether the stage would be unpacked.
  diff_mode:
    support: none
    details: Not supported.
  idempotent:
    support: full
    details: A root holding the same stage (by SHA512) is left as it is.
options:
  src:
    description:
      - Path or URL (http, https, file) of the stage tarball, compressed with xz, bzip2, gzip or
        zstd, or not at all (C(.tar.xz), C(.tbz2), C(.tar.bz2), C(.tar.gz), C(.tar.zst), C(.tar)).
    type: str
    required: true
  dest:
    description:
      - The staging root. It must not exist, be an empty directory, or hold the same stage
        (unpacked by this module). C(/) and a symbolic link (to anything, or dangling) are
        refused before anything is read.
    type: path
    required: true
  sha512:
    description:
      - The SHA-512 (128 hex digits) the tarball must have, for example of a stage4 the admin
        made. No DIGESTS file is read; a re-run on a root holding this SHA512 reads nothing.
      - Checked whatever O(verify) says. With O(verify=true) the detached signature is checked
        as well only when O(signature) is given.
    type: str
  digests:
    description:
      - Path or URL of the DIGESTS file. Defaults to O(src) plus C(.DIGESTS).
      - Entries are matched on the file's basename (older catalyst releases name the absolute
        build path); sections C(# SHA512 HASH), C(# BLAKE2B HASH) and, from older releases,
        "# BLAKE2 (b2sum) HASH" are read, and the SHA512 and BLAKE2B listed are both checked.
      - An empty string says there is none, so with O(verify=true) the detached signature by
        O(key) alone vouches for the tarball.
    type: str
  signature:
    description: Path or URL of the detached signature. Defaults to O(src) plus C(.asc).
    type: str
  verify:
    description:
      - Check the tarball before unpacking, by the DIGESTS file and the detached signature, by
        O(sha512), or by the signature alone (see the description).
      - With O(verify=false) no signature is checked; O(sha512), or a SHA512 in a DIGESTS file
        that can be read, is still compared.
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
      - Removed once, when the stage is unpacked (or on the first re-run that asks for it); the
        marker records it, so a binrepos.conf configured in the root afterwards is kept.
    type: bool
    default: false
  timeout:
    description: Seconds to wait for a server to answer (connect and each read), a whole number from 1 to 86400.
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

- name: Unpack a stage4 made by the admin (tar -cjpf), pinned by its SHA-512, no DIGESTS or signature
  gentoo_binhost.infra.stage_unpack:
    src: /var/tmp/stage4-desktop-20261120.tbz2
    dest: /var/lib/gentoo-binhost/chroots/desktop
    sha512: "{{ desktop_stage4_sha512 }}"

- name: Unpack a stage4 signed with the admin's own key, without a DIGESTS file
  gentoo_binhost.infra.stage_unpack:
    src: https://files.example.org/stage4/stage4-desktop-20261120.tar.zst
    dest: /var/lib/gentoo-binhost/chroots/desktop
    digests: ""
    key: /etc/gentoo-binhost/stage4-signing-key.asc
    fingerprint: 0123456789ABCDEF0123456789ABCDEF01234567
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
  description: SHA512 of the stage tarball (from O(sha512) or the DIGESTS, else computed from the tarball).
  returned: always
  type: str
  sample: 8d0e…
signed_by:
  description: Fingerprint of the primary key that signed the tarball.
  returned: when the stage was unpacked and its detached signature checked
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._module import run_module
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._stage import (
    ARGUMENT_SPEC,
    MUTUALLY_EXCLUSIVE,
    unpack_stage,
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, mutually_exclusive=MUTUALLY_EXCLUSIVE, supports_check_mode=True)
    run_module(module, unpack_stage, "unpacking the stage")


if __name__ == "__main__":
    main()
