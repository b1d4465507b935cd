# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A stack's status page (``index.html``): its generations, newest first, with provenance.

The page is rewritten by binpkg_publish under the stack's lock, in the same step that
switches ``current``, so it never names another generation as current than the link does;
that is why the module renders it rather than the role (a rollback or a publication run
outside Ansible rewrites it too). The templates are Python strings in this file because a
module ships to the managed host as its Python module_utils only (AnsiballZ); a separate
``.html`` file would not be there. ``string.Template`` keeps them plain HTML and CSS:
``$name`` placeholders, every value HTML-escaped before it is put in.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import html
import os
from string import Template

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import write_file_atomic
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._stack import GENERATIONS, INDEX_HTML, MANIFEST

PAGE = Template("""\
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>$name - binary packages</title>
<style>
body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222;padding:0 1em}
h1{border-bottom:3px solid #54487a;padding-bottom:.3em}
section{border:1px solid #ccc;border-radius:6px;padding:0 1em 1em;margin:1em 0}
section.current{border:2px solid #54487a;background:#f7f5fc}
.badge{background:#54487a;color:#fff;border-radius:4px;padding:0 .4em;font-size:70%;margin-left:.5em}
dl{display:grid;grid-template-columns:9em 1fr;gap:.2em}dt{font-weight:bold}dd{margin:0}
ul.changes{list-style:none;padding:0}ul.changes li{display:inline-block;margin:.15em;padding:.1em .5em;border-radius:4px}
li.added{background:#d9f2d9}li.added::before{content:'+ '}
li.removed{background:#f6d5d5}li.removed::before{content:'- '}
li.rebuilt{background:#fdf0c4}li.rebuilt::before{content:'\\21BB  '}li.none{color:#777}
table{border-collapse:collapse}td,th{padding:.1em .6em;text-align:left;border-bottom:1px solid #eee}
</style></head><body>
<h1>$name</h1>
<p>Binary packages served from <code>current/</code> (now <strong>$current</strong>); $count generation(s) kept.
Clients: <code>sync-uri = &lt;this directory&gt;/current</code> in binrepos.conf.</p>
$sections
</body></html>
""")

SECTION = Template("""\
<section class="generation$current_class" id="g-$generation">
<h2><a href="$generations/$generation/">$generation</a>$badge</h2>
<dl>
<dt>Published</dt><dd>$published</dd>
<dt>Tree</dt><dd>$tag <code>$commit</code></dd>
<dt>Overlays</dt><dd>$overlays</dd>
<dt>Stage</dt><dd>$stage</dd>
<dt>Built</dt><dd>$built_at on $built_on with Portage $portage</dd>
<dt>Packages</dt><dd>$packages ($size)</dd>
<dt>Transferred</dt><dd>$files files, $bytes bytes</dd>
</dl>
<h3>Changes from the previous generation</h3>
<ul class="changes">$changes</ul>
<details><summary>All packages</summary><table><tr><th>Package</th><th>Build</th><th>USE</th><th>Size</th></tr>$rows</table></details>
<p><a href="$generations/$generation/$manifest">manifest.json</a></p>
</section>""")

CHANGE = Template('<li class="$kind">$cpv</li>')
ROW = Template("<tr><td>$cpv</td><td>$build</td><td>$use</td><td>$size</td></tr>")
BADGE = ' <span class="badge">current</span>'
NO_CHANGES = '<li class="none">no changes</li>'


def human(size):
    """A byte count as people read it: ``512 B``, ``4.0 KiB``, ``1.5 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return ("%d %s" % (size, unit)) if unit == "B" else ("%.1f %s" % (size, unit))
        size /= 1024.0
    return str(size)


def _escaped(values):
    """Every value as text, HTML-escaped (``str`` first: numbers and None are shown as such)."""
    return dict((key, html.escape(str(value))) for key, value in values.items())


def _section(generation, manifest, is_current):
    prov = manifest.get("provenance") or {}
    changes = manifest.get("changes") or {}
    snapshot = prov.get("snapshot") or {}
    packages = manifest.get("packages") or []
    transfer = manifest.get("transfer") or {}
    change_items = "".join(CHANGE.substitute(_escaped({"kind": kind, "cpv": cpv}))
                           for kind in ("added", "removed", "rebuilt") for cpv in changes.get(kind, []))
    rows = "".join(ROW.substitute(_escaped({
        "cpv": p["cpv"], "build": p.get("build_id") or "", "use": " ".join(p.get("use") or []),
        "size": human(p.get("size") or 0)})) for p in packages)
    values = _escaped({
        "current_class": " current" if is_current else "",
        "generation": generation,
        "generations": GENERATIONS,
        "manifest": MANIFEST,
        "published": manifest.get("published_at", "?"),
        "tag": snapshot.get("tag") or "?",
        "commit": (snapshot.get("commit") or "")[:12],
        "overlays": ", ".join("%s %s" % (o.get("name"), (o.get("commit") or "")[:12])
                              for o in prov.get("overlays") or []) or "none",
        "stage": os.path.basename((prov.get("stage") or {}).get("file") or "?"),
        "built_at": prov.get("built_at") or "?",
        "built_on": prov.get("built_on") or "?",
        "portage": prov.get("portage_version") or "?",
        "packages": len(packages),
        "size": human(sum(p.get("size") or 0 for p in packages)),
        "files": transfer.get("files", "?"),
        "bytes": transfer.get("bytes", "?"),
    })
    values.update(badge=BADGE if is_current else "", changes=change_items or NO_CHANGES, rows=rows)
    return SECTION.substitute(values)


def render_index(stack_name, stack):
    """A static page: the generations, newest first, with their provenance and changes."""
    current = stack.current()
    sections = [_section(generation, stack.manifest(generation) or {}, generation == current)
                for generation in reversed(stack.list())]
    values = _escaped({"name": stack_name, "current": current or "none", "count": len(sections)})
    values["sections"] = "\n".join(sections)
    return PAGE.substitute(values)


def write_status_page(stack, name):
    """Rewrite the stack's ``index.html`` (atomically: a reader gets the old or the new page)."""
    write_file_atomic(os.path.join(stack.dest, INDEX_HTML), render_index(name, stack).encode("utf-8"), 0o644)
