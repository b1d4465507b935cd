#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: portage_gpg_keyring
short_description: Keep a GnuPG home for Portage's binary package signing or verification
version_added: 0.1.0
description:
  - Imports the OpenPGP keys of O(keys) into the GnuPG home O(home), creating it with O(mode).
    With O(fingerprints) only the pinned keys are imported; with O(secret) their secret keys too,
    for Portage's signing keyring (C(BINPKG_GPG_SIGNING_GPG_HOME)).
  - Portage verifies a signed gpkg with C(gpg --verify) in C(BINPKG_GPG_VERIFY_GPG_HOME) and
    accepts it only when gpg reports the signer's key as fully or ultimately valid; a key that
    is only imported is "of undefined trust" and its packages are refused. With
    O(trust=lsign) (the default) the keys are therefore locally signed (C(--quick-lsign-key))
    by a local trust key of the keyring, ultimately trusted, as getuto does for Gentoo's
    release keys; the keys become fully valid but cannot introduce other keys. An existing
    ultimately trusted secret key of the home (getuto's, whose passphrase is in C(<home>/pass))
    is used; otherwise one without passphrase is created with O(trust_key_uid).
  - The key files are read in a scratch home first. An unreadable file, a file without keys,
    a pin that matches none of the keys or a missing secret key is refused with a message
    before anything in O(home) changes.
  - Whether a key already in the home would gain anything from the files (user IDs, subkeys,
    signatures, revocations) is measured by merging both in a scratch home, so a run reports
    C(changed) only when the keyring changes, in check mode too.
  - Reading a keyring starts no gpg-agent; a gpg-agent started for secret key operations is
    stopped before the module returns (a build inside a chroot must not find the host's
    agent). The host's C(gpg) does the work; for a chroot, resolve O(home) with
    M(gentoo_binhost.infra.chroot_path) first.
author:
  - gentoo_binhost.infra maintainers (@gentoo-binhost)
requirements:
  - GnuPG 2.2 or later (C(gpg), C(gpgconf), C(gpg-connect-agent)) on the managed host
extends_documentation_fragment:
  - gentoo_binhost.infra.attributes
attributes:
  check_mode:
    support: full
    details: Reads the key files and the home and reports what would change; nothing is written.
  diff_mode:
    support: full
    details: The key set of the home before and after (fingerprint, validity, secret, user IDs).
  idempotent:
    support: full
    details: A home that holds the keys, fully valid, with the right modes and export changes nothing.
options:
  home:
    description:
      - The GnuPG home as a path on the managed host (for a chroot, the host path that
        M(gentoo_binhost.infra.chroot_path) returns). Created with O(mode) when missing.
    type: path
    required: true
  keys:
    description:
      - Files with the OpenPGP keys to import, armored or binary, on the managed host. Each
        must hold at least one key.
    type: list
    elements: path
    required: true
  fingerprints:
    description:
      - Full fingerprints (40 or 64 hex digits, spaces and C(0x) allowed) of the keys to
        import; every one must be in O(keys), and other keys of the files are left out.
      - Empty imports every key of O(keys).
    type: list
    elements: str
    default: []
  secret:
    description:
      - V(true) imports the secret keys too (Portage's signing keyring); each imported key's
        secret key must be in O(keys). The files are imported as they are when they hold
        only the imported keys, so a passphrase stays as it is.
    type: bool
    default: false
  trust:
    description:
      - V(lsign) makes every imported key fully valid by a local signature of the local trust
        key (what Portage's verification needs).
      - V(none) only imports (a signing keyring, where Portage signs and does not verify).
      - Revoked and expired keys are imported, so the revocation reaches the keyring, but not
        signed; the module warns about them.
    type: str
    choices: [lsign, none]
    default: lsign
  trust_key_uid:
    description: User ID of the local trust key when one is created.
    type: str
    default: Portage Local Trust Key (gentoo_binhost.infra) <portage@localhost>
  mode:
    description:
      - Mode of O(home), as an octal string. The owner needs C(rwx) and nobody else may write.
      - V(0755) for a verification keyring, since Portage runs C(gpg --verify) as C(nobody);
        C(pubring.kbx) and C(trustdb.gpg) then gain the same read permissions (as getuto
        makes them). Secret keys stay readable by the owner only.
    type: str
    default: "0700"
  export:
    description:
      - Write the imported keys' public keys, armored, to this file (mode 0644), for clients
        or for the verification keyring of the same host. Rewritten only when it differs.
    type: path
"""

EXAMPLES = r"""
- name: Trust the binhost's signing key in Portage's verification keyring
  gentoo_binhost.infra.portage_gpg_keyring:
    home: /etc/portage/gnupg
    keys: [/usr/share/openpgp-keys/binhost.asc]
    fingerprints: [0123456789ABCDEF0123456789ABCDEF01234567]
    mode: "0755"

- name: Resolve the signing keyring inside a build chroot
  gentoo_binhost.infra.chroot_path:
    root: /var/lib/gentoo-binhost/chroots/desktop
    path: /etc/portage/gnupg-signing
  register: signing_home

- name: Import the unattended signing key there and export its public half
  gentoo_binhost.infra.portage_gpg_keyring:
    home: "{{ signing_home.host_path }}"
    keys: [/root/binhost-signing-secret.asc]
    fingerprints: [0123456789ABCDEF0123456789ABCDEF01234567]
    secret: true
    trust: none
    export: "{{ signing_home.host_path }}/signing-key.asc"
"""

RETURN = r"""
home:
  description: The GnuPG home.
  returned: always
  type: str
  sample: /etc/portage/gnupg
fingerprints:
  description: The keys the module keeps in the home (the pinned ones, else all of O(keys)).
  returned: always
  type: list
  elements: str
  sample: [0123456789ABCDEF0123456789ABCDEF01234567]
imported:
  description: Keys that were (or in check mode would be) imported or updated.
  returned: always
  type: list
  elements: str
  sample: [0123456789ABCDEF0123456789ABCDEF01234567]
lsigned:
  description: Keys that were (or would be) locally signed by the trust key.
  returned: always
  type: list
  elements: str
  sample: [0123456789ABCDEF0123456789ABCDEF01234567]
trust_key:
  description: Fingerprint of the local trust key; null with O(trust=none) or before it is created in check mode.
  returned: always
  type: str
  sample: 89ABCDEF0123456789ABCDEF0123456789ABCDEF
trust_key_created:
  description: Whether a local trust key was (or would be) created.
  returned: always
  type: bool
  sample: false
export:
  description: The O(export) file, null without it.
  returned: always
  type: str
  sample: /var/lib/gentoo-binhost/chroots/desktop/etc/portage/gnupg-signing/signing-key.asc
export_exists:
  description: Whether O(export) exists after the run (in check mode, whether it exists already).
  returned: always
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._gpg_keyring import (
    DEFAULT_TRUST_UID,
    ensure_keyring,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._module import run_module


def main():
    module = AnsibleModule(
        argument_spec=dict(
            home=dict(type="path", required=True),
            keys=dict(type="list", elements="path", required=True, no_log=False),
            fingerprints=dict(type="list", elements="str", default=[]),
            secret=dict(type="bool", default=False),
            trust=dict(type="str", choices=["lsign", "none"], default="lsign"),
            trust_key_uid=dict(type="str", default=DEFAULT_TRUST_UID, no_log=False),
            mode=dict(type="str", default="0700"),
            export=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    run_module(module, ensure_keyring, "keeping the GnuPG home %(home)s")


if __name__ == "__main__":
    main()
