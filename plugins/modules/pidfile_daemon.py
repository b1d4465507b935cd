#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pidfile_daemon
short_description: Keep a self-daemonizing server running, or stopped, by its pid file
version_added: 0.1.0
description:
  - For hosts without systemd (containers, chroots, VMs booted otherwise), starts a server
    that daemonizes itself and writes a pid file (nginx, C(git daemon --detach)), stops it,
    and restarts it when its configuration O(fingerprint) changed.
  - The process named in O(pid_file) counts as the server only while C(/proc/<pid>/exe) is
    O(executable); a stale pid file whose number now belongs to another program is ignored,
    and only processes this way identified are ever signalled.
  - A server that runs but does not answer on O(port) is restarted. A port that answers
    although the server is not running is reported as held by another process.
author:
  - gentoo_binhost.infra maintainers (@gentoo-binhost)
extends_documentation_fragment:
  - gentoo_binhost.infra.attributes
attributes:
  check_mode:
    support: full
    details: Reports what would be started, restarted or stopped.
  diff_mode:
    support: none
    details: Not supported; the RV(action) return value says what was done.
  idempotent:
    support: full
    details: A running, answering server with the same fingerprint is left alone.
options:
  name:
    description: A name for messages.
    type: str
    required: true
  argv:
    description: Command that starts the server and returns once it has daemonized. Required for O(state=started).
    type: list
    elements: str
  pid_file:
    description: The pid file the server writes.
    type: path
    required: true
  executable:
    description: Base name of the server's program, as C(/proc/<pid>/exe) shows it (for example V(nginx)).
    type: str
    required: true
  host:
    description: Address to probe O(port) on.
    type: str
    default: 127.0.0.1
  port:
    description: TCP port the server answers on; V(0) skips the probe.
    type: int
    default: 0
  fingerprint:
    description:
      - The configuration the server should run with, for example the checksum of its
        configuration file. Recorded next to the pid file at start; a different value
        restarts the server.
    type: str
  state:
    description: V(started) or V(stopped).
    type: str
    choices: [started, stopped]
    default: started
  timeout:
    description: Seconds to wait for the server to come up or to exit.
    type: int
    default: 30
"""

EXAMPLES = r"""
- name: Run a standalone nginx
  gentoo_binhost.infra.pidfile_daemon:
    name: binhost nginx
    argv: [/usr/sbin/nginx, -c, /etc/gentoo-binhost/nginx.conf]
    pid_file: /run/gentoo-binhost/nginx.pid
    executable: nginx
    port: 8081
    fingerprint: "{{ nginx_conf.checksum }}"

- name: Stop it
  gentoo_binhost.infra.pidfile_daemon:
    name: binhost nginx
    pid_file: /run/gentoo-binhost/nginx.pid
    executable: nginx
    state: stopped
"""

RETURN = r"""
pid:
  description: PID of the running server (null when stopped).
  returned: always
  type: int
action:
  description: What was done, V(none), V(started), V(restarted) or V(stopped).
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._daemon import ensure
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._module import run_module


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            argv=dict(type="list", elements="str"),
            pid_file=dict(type="path", required=True),
            executable=dict(type="str", required=True),
            host=dict(type="str", default="127.0.0.1"),
            port=dict(type="int", default=0),
            fingerprint=dict(type="str"),
            state=dict(type="str", choices=["started", "stopped"], default="started"),
            timeout=dict(type="int", default=30),
        ),
        required_if=[("state", "started", ("argv",))],
        supports_check_mode=True,
    )
    run_module(module, ensure, "managing %(name)s")


if __name__ == "__main__":
    main()
