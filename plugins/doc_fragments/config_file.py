# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # What the modules that edit one Portage configuration file of a root share: the root, the
    # state, how paths in a chroot are resolved, how the file is written, the attributes.
    # A module's own entry for an option or attribute takes precedence over this one.
    DOCUMENTATION = r"""
options:
  root:
    description:
      - The system or chroot root whose Portage configuration is managed. Must be an existing
        directory given as an absolute path. Paths below it are resolved as the root itself
        sees them (see the notes).
    type: path
    default: /
  state:
    description:
      - V(present) creates or updates the entry, V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
    details:
      - Reports whether the file would change; nothing is written.
  diff_mode:
    support: full
    details:
      - Shows the file before and after.
  idempotent:
    support: full
notes:
  - Paths are resolved the way a process inside O(root) resolves them; a symbolic link in a
    chroot is followed inside the chroot (an absolute target starts again at O(root)), so a
    chroot's C(etc/portage -> /etc/elsewhere) leads to the chroot's own C(/etc/elsewhere), never
    to the host's. A link whose target O(root) does not have is refused with a message naming
    the link and where it leads; nothing is created behind it. With the default O(root=/)
    this is plain path resolution.
  - The file is replaced atomically (a temporary file beside it, flushed to disk, moved over
    it), so Portage never reads half a file; a symbolic link to the file stays a link and the
    file it leads to is written. Missing directories are created with mode 0755, a new file
    with mode 0644 unless O(mode) says otherwise. Nothing is written when the input is refused.
"""
