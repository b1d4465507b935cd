#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pidfile_daemon
short_description: Keep self-daemonizing servers running, or stopped, by their pid files
version_added: 0.1.0
description:
  - For hosts without systemd (containers, chroots, VMs booted otherwise), starts a server
    that daemonizes itself and writes a pid file (nginx, C(git daemon --detach)), stops it,
    and restarts it when its configuration O(fingerprint) changed.
  - The process named in O(pid_file) counts as the server only while C(/proc/<pid>/exe) is
    O(executable); a stale pid file whose number now belongs to another program is ignored
    (and removed by O(state=stopped)), and only processes this way identified are ever signalled.
  - A server that runs but does not answer on O(port) is restarted. A port that answers
    although the server is not running is reported as held by another process.
  - O(servers) manages several servers as one set, for example a git daemon and a web server
    that serve one mirror. Every port is checked before any server is started, and when one
    server fails to come up the servers this task started are stopped again, so that a later
    run does not take a half-started set for a working one.
author:
  - gentoo_binhost.infra maintainers (@gentoo-binhost)
extends_documentation_fragment:
  - gentoo_binhost.infra.attributes
attributes:
  check_mode:
    support: full
    details: Reports what would be started, restarted, stopped or cleaned, and checks the ports.
  diff_mode:
    support: none
    details: Not supported; the RV(action) return value says what was done.
  idempotent:
    support: full
    details: A running, answering server with the same fingerprint is left alone.
options:
  name:
    description:
      - A name for messages. Required unless O(servers) is given.
      - O(name), O(pid_file) and O(executable) describe one server; O(servers) describes several.
    type: str
  argv:
    description: Command that starts the server and returns once it has daemonized. Required for O(state=started).
    type: list
    elements: str
  env:
    description: Environment variables set, in addition to the module's own, for O(argv).
    type: dict
  pid_file:
    description: The pid file the server writes.
    type: path
  executable:
    description: Base name of the server's program, as C(/proc/<pid>/exe) shows it (for example V(nginx)).
    type: str
  host:
    description:
      - Address the server listens on, where O(port) is probed. A server listening on every
        address (V(0.0.0.0), V(::) or V("")) is probed on the loopback address.
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
  log_file:
    description: The server's log; when the server fails to start, its last lines are part of the error message.
    type: path
  servers:
    description:
      - Several servers, brought to O(state) together (see the description). Each has the
        options of a single server; O(state) and O(timeout) apply to all of them.
      - Mutually exclusive with the options of a single server.
    type: list
    elements: dict
    suboptions:
      name:
        description: A name for messages.
        type: str
        required: true
      argv:
        description: Command that starts the server and returns once it has daemonized. Required for O(state=started).
        type: list
        elements: str
      env:
        description: Environment variables set, in addition to the module's own, for O(servers[].argv).
        type: dict
      pid_file:
        description: The pid file the server writes; each server needs its own.
        type: path
        required: true
      executable:
        description: Base name of the server's program, as C(/proc/<pid>/exe) shows it.
        type: str
        required: true
      host:
        default: 127.0.0.1
        description: Address the server listens on, where O(servers[].port) is probed (see O(host)).
        type: str
      port:
        default: 0
        description: TCP port the server answers on; V(0) skips the probe.
        type: int
      fingerprint:
        description: The configuration the server should run with; a different value restarts it.
        type: str
      log_file:
        description: The server's log, quoted when it fails to start.
        type: path
  state:
    description:
      - V(started) or V(stopped).
      - V(stopped) stops the server only if the process in the pid file is the server, and
        removes the pid file and the fingerprint stamp.
    type: str
    choices: [started, stopped]
    default: started
  timeout:
    description: Seconds to wait for the start command to return, for the server to come up or to exit.
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
    log_file: /var/log/gentoo-binhost/error.log

- name: Stop it
  gentoo_binhost.infra.pidfile_daemon:
    name: binhost nginx
    pid_file: /run/gentoo-binhost/nginx.pid
    executable: nginx
    state: stopped

- name: Run a git daemon and an nginx as one set
  gentoo_binhost.infra.pidfile_daemon:
    servers:
      - name: git daemon
        argv: [/usr/lib/git-core/git-daemon, --detach, --pid-file=/run/mirror/git-daemon.pid,
               --base-path=/srv/git, /srv/git/gentoo.git]
        env:
          HOME: /run/mirror
        pid_file: /run/mirror/git-daemon.pid
        executable: git-daemon
        port: 9418
        fingerprint: "{{ git_daemon_argv | to_json | hash('sha256') }}"
      - name: distfiles nginx
        argv: [/usr/sbin/nginx, -c, /etc/mirror/nginx.conf]
        pid_file: /run/mirror/nginx.pid
        executable: nginx
        port: 8080
        fingerprint: "{{ mirror_nginx_conf.checksum }}"
"""

RETURN = r"""
pid:
  description: PID of the running server (null when stopped).
  returned: unless O(servers) is given
  type: int
  sample: 4242
action:
  description:
    - What was done, V(none), V(started), V(restarted), V(stopped), or V(cleaned) (no server
      ran; its stale pid file was removed).
  returned: unless O(servers) is given
  type: str
  sample: started
servers:
  description: One result per server of O(servers), in their order.
  returned: when O(servers) is given
  type: list
  elements: dict
  contains:
    name:
      description: The server's O(servers[].name).
      type: str
      sample: git daemon
    pid:
      description: PID of the running server (null when stopped).
      type: int
      sample: 4242
    action:
      description: What was done to this server, as RV(action).
      type: str
      sample: none
    changed:
      description: Whether this server was started, restarted, stopped or cleaned.
      type: bool
      sample: false
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._daemon import ensure
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._module import run_module


def server_options(single):
    """The options of one server: top-level ones (all optional there) or a servers[] element."""
    return dict(
        name=dict(type="str", required=not single),
        argv=dict(type="list", elements="str"),
        env=dict(type="dict"),
        pid_file=dict(type="path", required=not single),
        executable=dict(type="str", required=not single),
        host=dict(type="str", default="127.0.0.1"),
        port=dict(type="int", default=0),
        fingerprint=dict(type="str"),
        log_file=dict(type="path"),
    )


def main():
    single = server_options(single=True)
    module = AnsibleModule(
        argument_spec=dict(
            servers=dict(type="list", elements="dict", options=server_options(single=False)),
            state=dict(type="str", choices=["started", "stopped"], default="started"),
            timeout=dict(type="int", default=30),
            **single
        ),
        mutually_exclusive=[("servers", option) for option in single],
        required_one_of=[("name", "servers")],
        required_together=[("name", "pid_file", "executable")],
        required_if=[("state", "started", ("argv", "servers"), True)],
        supports_check_mode=True,
    )
    run_module(module, ensure, "managing %(name)s" if module.params["name"] else "managing the servers")


if __name__ == "__main__":
    main()
