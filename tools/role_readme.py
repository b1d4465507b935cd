"""Render each role's variables from ``meta/argument_specs.yml`` into its ``README.md``.

The table goes between the markers below; everything outside them is hand-written and kept.
A README without markers gets the section appended (a missing README is created with a title
and the role's short description), so a new role needs nothing but its argument specs.

    .venv/bin/python tools/role_readme.py              # update every roles/*/README.md
    .venv/bin/python tools/role_readme.py --check      # exit 1: a README is stale or a default disagrees
    .venv/bin/python tools/role_readme.py roles/x ...  # only these roles

``--check`` also compares ``defaults/main.yml`` with the specs: every default variable must be
documented, with the same default, so the table never shows a value the role does not use.
"""
from __future__ import annotations

import argparse
import difflib
import html
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- BEGIN ARGUMENT SPECS -->"
END = "<!-- END ARGUMENT SPECS -->"
NOTE = "<!-- Generated from meta/argument_specs.yml by tools/role_readme.py; edit the specs, not this table. -->"

# Ansible's documentation markup, as used in argument_specs descriptions. O(), V(), C(), E(),
# P(), RV() and M() are all code-like; their content may hold ")" only in a nested pair, which
# the option and value names here never do.
_MARKUP = re.compile(
    r"L\((?P<ltext>[^)]+?),\s*(?P<lurl>[^)]+)\)|U\((?P<url>[^)]+)\)|I\((?P<italic>[^)]+)\)"
    r"|B\((?P<bold>[^)]+)\)|\b(?:O|V|C|E|P|RV|M)\((?P<code>[^)]*)\)|HORIZONTALLINE"
)


def _code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _plain(text: str) -> str:
    """Text outside code spans: ``<name>`` would otherwise vanish as an HTML tag."""
    return html.escape(text, quote=False)


def markup(text: str) -> str:
    out, pos = [], 0
    for match in _MARKUP.finditer(text):
        out.append(_plain(text[pos:match.start()]))
        pos = match.end()
        if match["code"] is not None:
            out.append(_code(match["code"]))
        elif match["ltext"] is not None:
            out.append(f"[{_plain(match['ltext'])}]({match['lurl']})")
        elif match["url"] is not None:
            out.append(f"<{match['url']}>")
        elif match["italic"] is not None:
            out.append(f"*{_plain(match['italic'])}*")
        elif match["bold"] is not None:
            out.append(f"**{_plain(match['bold'])}**")
    out.append(_plain(text[pos:]))
    return "".join(out)


def _cell(text: str) -> str:
    """Make ``text`` safe inside a Markdown table cell (GFM: one line, pipes escaped)."""
    return " ".join(text.split()).replace("|", "\\|")


def _description(spec: dict) -> str:
    description = spec.get("description", "")
    paragraphs = description if isinstance(description, list) else [description]
    text = "<br>".join(_cell(markup(str(p))) for p in paragraphs if p)
    if spec.get("choices"):
        text += ("<br>" if text else "") + "Choices: " + ", ".join(_code(str(c)) for c in spec["choices"]) + "."
    return text


def _default(spec: dict) -> str:
    if "default" not in spec:
        return ""
    value = spec["default"]
    if isinstance(value, str):
        return _cell(_code(value) if value else '`""`')
    return _cell(_code(json.dumps(value)))


def _type(spec: dict) -> str:
    kind = spec.get("type", "str")
    if kind == "list" and spec.get("elements"):
        return f"list of {spec['elements']}"
    return kind


def option_rows(options: dict, prefix: str = "") -> list[tuple[str, dict]]:
    """``(dotted name, spec)`` for each option, suboptions after their parent (``a[].b`` for lists)."""
    rows = []
    for name, spec in options.items():
        spec = spec or {}
        full = prefix + name
        rows.append((full, spec))
        if spec.get("options"):
            below = full + ("[]." if spec.get("type") == "list" else ".")
            rows.extend(option_rows(spec["options"], below))
    return rows


def render_entry_point(options: dict) -> list[str]:
    lines = ["| Variable | Type | Required | Default | Description |", "|---|---|---|---|---|"]
    for name, spec in option_rows(options):
        required = "yes" if spec.get("required") else ""
        lines.append(f"| `{name}` | {_type(spec)} | {required} | {_default(spec)} | {_description(spec)} |")
    return lines


def load_specs(role: Path) -> dict:
    path = role / "meta" / "argument_specs.yml"
    data = yaml.safe_load(path.read_text()) or {}
    specs = data.get("argument_specs")
    if not isinstance(specs, dict) or not specs:
        raise SystemExit(f"{path}: no argument_specs entry points")
    return specs


def render(role: Path) -> str:
    """The generated block, markers included."""
    specs = load_specs(role)
    lines = [BEGIN, NOTE, ""]
    # main first: it is what ``roles:`` and ``import_role`` without tasks_from run.
    for entry in sorted(specs, key=lambda e: (e != "main", e)):
        spec = specs[entry] or {}
        if len(specs) > 1:
            lines += [f"### Entry point `{entry}`", ""]
            if spec.get("short_description"):
                lines += [markup(spec["short_description"]), ""]
        options = spec.get("options") or {}
        lines += render_entry_point(options) if options else ["This entry point takes no variables."]
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def updated_readme(role: Path, current: str | None) -> str:
    block = render(role)
    if current is None:
        specs = load_specs(role)
        summary = markup((specs.get("main") or {}).get("short_description", "")).strip()
        name = _collection_fqcn(role)
        return f"# {name}\n\n{summary}\n\n## Role variables\n\n{block}\n"
    begin, end = current.find(BEGIN), current.find(END)
    if begin == -1 and end == -1:
        return current.rstrip("\n") + f"\n\n## Role variables\n\n{block}\n"
    if begin == -1 or end < begin or current.count(BEGIN) != 1 or current.count(END) != 1:
        raise SystemExit(f"{role / 'README.md'}: needs exactly one {BEGIN} ... {END} pair, in that order")
    return current[:begin] + block + current[end + len(END):]


def _collection_fqcn(role: Path) -> str:
    galaxy = role.resolve().parent.parent / "galaxy.yml"
    if galaxy.exists():
        meta = yaml.safe_load(galaxy.read_text())
        return f"{meta['namespace']}.{meta['name']}.{role.name}"
    return role.name


def defaults_mismatches(role: Path) -> list[str]:
    """Variables of defaults/main.yml missing from the main entry point or with another default."""
    path = role / "defaults" / "main.yml"
    if not path.exists():
        return []
    defaults = yaml.safe_load(path.read_text()) or {}
    options = (load_specs(role).get("main") or {}).get("options") or {}
    problems = []
    for name, value in defaults.items():
        if name not in options:
            problems.append(f"{path}: {name} is not in meta/argument_specs.yml")
        elif "default" in (options[name] or {}) and options[name]["default"] != value:
            problems.append(f"{path}: {name} is {value!r} here but {options[name]['default']!r} in the specs")
    return problems


def roles_with_specs(root: Path = ROOT) -> list[Path]:
    return sorted(p.parent.parent for p in (root / "roles").glob("*/meta/argument_specs.yml"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("roles", nargs="*", type=Path, help="role directories (default: every roles/* with specs)")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a README is stale or a default disagrees with the specs")
    options = parser.parse_args(argv)
    roles = options.roles or roles_with_specs()
    if not roles:
        print("no roles with meta/argument_specs.yml found", file=sys.stderr)
        return 1
    failed = False
    for role in roles:
        readme = role / "README.md"
        current = readme.read_text() if readme.exists() else None
        wanted = updated_readme(role, current)
        if options.check:
            for problem in defaults_mismatches(role):
                print(problem, file=sys.stderr)
                failed = True
            if wanted != current:
                failed = True
                print(f"{readme} is stale; run .venv/bin/python tools/role_readme.py {role}", file=sys.stderr)
                sys.stderr.writelines(difflib.unified_diff(
                    (current or "").splitlines(True), wanted.splitlines(True),
                    fromfile=str(readme), tofile=f"{readme} (generated)", n=1))
        elif wanted != current:
            readme.write_text(wanted)
            print(f"updated {readme}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
