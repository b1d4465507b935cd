# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The directory of one stack on a binary package server.

Layout (``dest``)::

    dest/current -> generations/<id>      # the only thing clients follow; switched by rename
    dest/generations/<id>/                # a complete PKGDIR: Packages, files, manifest.json
    dest/generations/.partial-<id>/       # a publication in progress (removed if abandoned)
    dest/index.html                       # the stack's status page
    dest/.lock                            # serialises publications and rollbacks
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fcntl
import json
import os

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._generations import Generations
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._packages_index import PublishError

GENERATIONS = "generations"
CURRENT = "current"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
INDEX_HTML = "index.html"
LOCK = ".lock"


class Stack(Generations):
    """``dest``'s generations and the ``current`` link naming the one served."""

    def __init__(self, dest):
        if not os.path.isabs(dest):
            raise PublishError("dest must be an absolute path, got %r" % dest)
        self.dest = os.path.normpath(dest)
        self.generations = os.path.join(self.dest, GENERATIONS)
        self.current_link = os.path.join(self.dest, CURRENT)
        Generations.__init__(self, self.generations, self.current_link, GENERATIONS + "/")

    def manifest(self, generation):
        """The generation's ``manifest.json``, or None when it has none that reads."""
        try:
            with open(os.path.join(self.path(generation), MANIFEST)) as handle:
                return json.load(handle)
        except (IOError, OSError, ValueError):
            return None

    def lock(self):
        """An open file holding the stack's exclusive lock (released when it is closed)."""
        if not os.path.isdir(self.dest):
            os.makedirs(self.dest, 0o755)
        handle = open(os.path.join(self.dest, LOCK), "a")
        fcntl.flock(handle, fcntl.LOCK_EX)
        return handle
