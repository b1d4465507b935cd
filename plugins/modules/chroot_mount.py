#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: chroot_mount
short_description: Mount or unmount the pseudo file systems of a chroot staging root
version_added: 0.1.0
description:
  - Sets up the mounts a Gentoo staging root needs before C(chroot) (by default the Gentoo
    handbook's three, C(proc) as type C(proc) and the host's C(/dev) and C(/sys) bound
    recursively and made C(rslave)), or tears down everything mounted below the root.
  - The mount table is read from C(/proc/self/mountinfo), including stacked mounts, bind
    roots and propagation flags; only what differs is changed. A mount already present at a
    target is recognised by its file system type, or for binds by the device and directory
    it exposes.
  - Targets are resolved inside O(path) before anything is mounted. A target whose resolved
    path leaves the root (a stage containing C(dev -> /dev), or C(..)) is refused; missing
    target directories are created inside the root without following symlinks.
  - O(state=unmounted) unmounts every mount strictly below O(path), deepest first, each with
    its own C(umount) of that target (C(umount --lazy) only with O(lazy)). The mounts are made
    slaves first, so no unmount propagates to the host (a shared C(rbind) of C(/dev) would
    otherwise take the host's C(/dev/pts) with it). Nothing outside O(path) is unmounted, and
    O(path) itself is left alone even when it is a mount point.
  - A mount that is busy stops the run with an error naming it and suggesting
    C(fuser -vm <target>); what was unmounted before stays unmounted and a new run continues.
author:
  - gentoo_binhost.infra maintainers (@gentoo-binhost)
requirements:
  - C(mount) and C(umount) from util-linux on the managed host (Linux)
extends_documentation_fragment:
  - gentoo_binhost.infra.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reports in RV(actions) what would be created, mounted, remounted, made rslave or
        unmounted; nothing is changed.
  diff_mode:
    support: full
    details:
      - Shows the mounts below O(path) before and after, one line each
        (target, type, source, options, propagation).
  idempotent:
    support: full
options:
  path:
    description:
      - The staging root (the directory that will be the chroot's C(/)). Must be the absolute
        path of an existing directory other than C(/); symlinks in it are resolved first.
    type: path
    required: true
  state:
    description:
      - V(mounted) mounts what O(mounts) and O(extra_mounts) ask for. Mounts below O(path)
        that are not in the lists are left alone.
      - V(unmounted) unmounts everything below O(path), whatever mounted it.
    type: str
    choices: [mounted, unmounted]
    default: mounted
  mounts:
    description:
      - The mounts to set up, in order. When omitted, C(proc) of type C(proc) at C(proc),
        and C(/dev) and C(/sys) of type C(rbind) at C(dev) and C(sys) (made rslave).
      - Giving this list replaces those defaults; use O(extra_mounts) to add to them.
    type: list
    elements: dict
    suboptions: &mount_suboptions
      src:
        description:
          - What to mount. For V(bind) and V(rbind) an absolute host path; for other types
            the device or name shown as the source (defaults to the type, as in
            C(mount -t proc proc ...)).
        type: str
      target:
        description:
          - Mount point relative to O(path) (a leading C(/) is ignored).
        type: str
        required: true
      type:
        description:
          - File system type (V(proc), V(sysfs), V(tmpfs), V(devpts), ...), or V(bind) or
            V(rbind) for (recursive) bind mounts.
        type: str
        required: true
      options:
        description:
          - Mount options, a list or a comma-separated string (for example C(size=4G,mode=775)
            for a tmpfs). Options of an existing mount that differ are applied with a remount.
        type: list
        elements: str
      rslave:
        description:
          - Make the mount and everything below it a slave (C(mount --make-rslave)), so mount
            events inside the chroot do not propagate to the host. Defaults to V(true) for
            V(rbind), V(false) otherwise.
        type: bool
  extra_mounts:
    description:
      - Mounts appended to O(mounts) (or to its default), for example the host's C(/run),
        a tmpfs for C(var/tmp/portage) or a bind of a distfiles cache.
    type: list
    elements: dict
    suboptions: *mount_suboptions
  lazy:
    description:
      - With O(state=unmounted), detach busy mounts with C(umount --lazy) instead of failing.
        The file systems stay in use by the processes that hold them.
    type: bool
    default: false
notes:
  - Only Linux is supported. Directories created for targets are left in place on unmount.
  - A bind mount's target directory below another bind (for example C(dev/something) after
    C(/dev) is bound) would be created on the host's file system; list such mounts first.
seealso:
  - name: Gentoo handbook, mounting the necessary file systems
    description: The manual procedure this module automates.
    link: https://wiki.gentoo.org/wiki/Handbook:AMD64/Installation/Base#Mounting_the_necessary_filesystems
  - module: ansible.posix.mount
"""

EXAMPLES = r"""
- name: Mount proc, /dev and /sys (rslave) in the staging root
  gentoo_binhost.infra.chroot_mount:
    path: /var/lib/build/stage-amd64

- name: Also bind /run, a tmpfs for Portage's build directory and the distfiles cache
  gentoo_binhost.infra.chroot_mount:
    path: /var/lib/build/stage-amd64
    extra_mounts:
      - src: /run
        target: run
        type: rbind
      - target: var/tmp/portage
        type: tmpfs
        options: [size=8G, mode=775, uid=250, gid=250]
      - src: /var/cache/distfiles
        target: var/cache/distfiles
        type: bind

- name: Build, and unmount everything below the root whatever happens
  block:
    - name: Mount the chroot
      gentoo_binhost.infra.chroot_mount:
        path: /var/lib/build/stage-amd64
    - name: Rebuild the world with binary packages
      ansible.builtin.command: chroot /var/lib/build/stage-amd64 env -i emerge -e @world
      changed_when: true
  always:
    - name: Unmount the chroot
      gentoo_binhost.infra.chroot_mount:
        path: /var/lib/build/stage-amd64
        state: unmounted
"""

RETURN = r"""
changed:
  description: Whether anything was (or, in check mode, would be) mounted, remounted, made rslave or unmounted.
  returned: always
  type: bool
  sample: true
path:
  description: The staging root, with symlinks resolved.
  returned: always
  type: str
  sample: /var/lib/build/stage-amd64
actions:
  description: What was done (or would be, in check mode), in order.
  returned: always
  type: list
  elements: str
  sample:
    - mount proc proc on /var/lib/build/stage-amd64/proc
    - mount rbind /dev on /var/lib/build/stage-amd64/dev
mounts:
  description:
    - The mounts below O(path) afterwards (in check mode, the mounts now), in mount table order.
  returned: always
  type: list
  elements: dict
  contains:
    target:
      description: Mount point.
      type: str
      sample: /var/lib/build/stage-amd64/dev/pts
    type:
      description: File system type.
      type: str
      sample: devpts
    source:
      description: Mount source as the kernel shows it.
      type: str
      sample: devpts
    root:
      description: Directory of the file system that is mounted (not C(/) for a bind of a subdirectory).
      type: str
      sample: /
    options:
      description: Per-mount options.
      type: str
      sample: rw,nosuid,noexec,relatime
    super_options:
      description: File system (super block) options.
      type: str
      sample: rw,gid=5,mode=620,ptmxmode=000
    propagation:
      description: Propagation type, C(shared), C(slave), C(private), possibly with C(unbindable), as findmnt names it.
      type: str
      sample: slave
  sample:
    - target: /var/lib/build/stage-amd64/proc
      type: proc
      source: proc
      root: /
      options: rw,relatime
      super_options: rw
      propagation: private
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._mounts import chroot_mount
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._module import run_module

MOUNT_SPEC = dict(
    src=dict(type="str"),
    target=dict(type="str", required=True),
    type=dict(type="str", required=True),
    options=dict(type="list", elements="str"),
    rslave=dict(type="bool"),
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", choices=["mounted", "unmounted"], default="mounted"),
            mounts=dict(type="list", elements="dict", options=MOUNT_SPEC),
            extra_mounts=dict(type="list", elements="dict", options=MOUNT_SPEC),
            lazy=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    run_module(module, chroot_mount, "managing mounts below %(path)s")


if __name__ == "__main__":
    main()
