"""Documentation gates: role READMEs match their argument specs, every module's and role's
documentation renders in ansible-doc, and the changelog fragments lint."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TOOL = ROOT / "tools" / "role_readme.py"
MODULES = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py"))
ROLES = sorted(p.parent.parent.name for p in (ROOT / "roles").glob("*/meta/argument_specs.yml"))


def role_readme(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True,
                          check=False, cwd=ROOT)


def checkout_env() -> dict:
    """ansible-doc as `make lint` runs it: the checkout's ansible.cfg (its .collections)."""
    env = dict(os.environ)
    env.update({"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
                "PATH": "%s:%s" % (BIN, env.get("PATH", "/usr/bin:/bin"))})
    return env


def test_role_readmes_are_current():
    assert {"build_host", "mirror_server"} <= set(ROLES)
    proc = role_readme("--check")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("role", ROLES)
def test_readme_documents_every_variable_and_has_the_hand_written_parts(role):
    readme = (ROOT / "roles" / role / "README.md").read_text()
    specs = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    for name in specs["argument_specs"]["main"]["options"]:
        assert f"| `{name}` |" in readme
    assert f"name: gentoo_binhost.infra.{role}" in readme  # the example uses the FQCN
    assert "## Idempotence and check mode" in readme


SPECS = {
    "argument_specs": {
        "main": {
            "short_description": "Serve binary packages over HTTP",
            "options": {
                "binpkg_server_port": {"description": ["TCP port; see O(binpkg_server_dir)."], "type": "int",
                                       "default": 8081},
                "binpkg_server_dir": {"description": "Directory with C(Packages) | the index.", "type": "path",
                                      "required": True},
                "binpkg_server_mode": {"description": "How to serve.", "type": "str", "choices": ["nginx", "python"],
                                       "default": "nginx"},
                "binpkg_server_hosts": {"description": "Clients.", "type": "list", "elements": "dict", "default": [],
                                        "options": {"name": {"description": "Host <name>.", "type": "str",
                                                             "required": True}}},
            },
        },
        "stop": {"short_description": "Stop the server", "options": {}},
    }
}


@pytest.fixture
def new_role(tmp_path):
    """A third role, as binpkg_server will arrive: argument specs and defaults, no README."""
    role = tmp_path / "roles" / "binpkg_server"
    (role / "meta").mkdir(parents=True)
    (role / "defaults").mkdir()
    (role / "meta" / "argument_specs.yml").write_text(yaml.safe_dump(SPECS, sort_keys=False))
    (role / "defaults" / "main.yml").write_text("binpkg_server_port: 8081\nbinpkg_server_mode: nginx\n")
    (tmp_path / "galaxy.yml").write_text("namespace: gentoo_binhost\nname: infra\nversion: 0.1.0\n")
    return role


def test_generator_works_for_a_new_role(new_role):
    readme = new_role / "README.md"
    missing = role_readme("--check", new_role)
    assert missing.returncode == 1 and not readme.exists()

    assert role_readme(new_role).returncode == 0
    text = readme.read_text()
    assert text.startswith("# gentoo_binhost.infra.binpkg_server\n\nServe binary packages over HTTP\n")
    assert "| `binpkg_server_port` | int |  | `8081` | TCP port; see `binpkg_server_dir`. |" in text
    assert "| `binpkg_server_dir` | path | yes |  | Directory with `Packages` \\| the index. |" in text
    assert "Choices: `nginx`, `python`." in text
    assert "| `binpkg_server_hosts[].name` | str | yes |  | Host &lt;name&gt;. |" in text
    assert "### Entry point `main`" in text and "### Entry point `stop`" in text
    assert text.index("`main`") < text.index("`stop`")
    assert role_readme("--check", new_role).returncode == 0


def test_hand_written_text_is_kept_and_stale_tables_are_caught(new_role):
    assert role_readme(new_role).returncode == 0
    readme = new_role / "README.md"
    text = readme.read_text()
    begin, end = text.index("<!-- BEGIN ARGUMENT SPECS -->"), text.index("<!-- END ARGUMENT SPECS -->")
    readme.write_text("# Hand title\n\nIntro.\n\n" + text[begin:end] + "<!-- END ARGUMENT SPECS -->\n\n## Notes\n\nKept.\n")

    changed = copy.deepcopy(SPECS)
    changed["argument_specs"]["main"]["options"]["binpkg_server_port"]["default"] = 9090
    (new_role / "meta" / "argument_specs.yml").write_text(yaml.safe_dump(changed, sort_keys=False))
    (new_role / "defaults" / "main.yml").write_text("binpkg_server_port: 9090\n")
    before = readme.read_text()

    stale = role_readme("--check", new_role)
    assert stale.returncode == 1
    assert "is stale" in stale.stderr and "+| `binpkg_server_port` | int |  | `9090` |" in stale.stderr
    assert readme.read_text() == before  # --check writes nothing

    assert role_readme(new_role).returncode == 0
    after = readme.read_text()
    assert after.startswith("# Hand title\n\nIntro.\n\n<!-- BEGIN ARGUMENT SPECS -->")
    assert after.endswith("<!-- END ARGUMENT SPECS -->\n\n## Notes\n\nKept.\n")
    assert "`9090`" in after and "`8081`" not in after
    assert role_readme("--check", new_role).returncode == 0


def test_check_catches_defaults_that_disagree_with_the_specs(new_role):
    assert role_readme(new_role).returncode == 0
    (new_role / "defaults" / "main.yml").write_text("binpkg_server_port: 8082\nbinpkg_server_undocumented: 1\n")
    proc = role_readme("--check", new_role)
    assert proc.returncode == 1
    assert "binpkg_server_port is 8082 here but 8081 in the specs" in proc.stderr
    assert "binpkg_server_undocumented is not in meta/argument_specs.yml" in proc.stderr


def test_broken_markers_are_refused(new_role):
    (new_role / "README.md").write_text("<!-- END ARGUMENT SPECS -->\n<!-- BEGIN ARGUMENT SPECS -->\n")
    proc = role_readme(new_role)
    assert proc.returncode != 0 and "needs exactly one" in proc.stderr
    assert (new_role / "README.md").read_text() == "<!-- END ARGUMENT SPECS -->\n<!-- BEGIN ARGUMENT SPECS -->\n"


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders_module(module):
    fqcn = f"gentoo_binhost.infra.{module}"
    text = subprocess.run([str(BIN / "ansible-doc"), fqcn], capture_output=True, text=True, check=False,
                          cwd=ROOT, env=checkout_env())
    assert text.returncode == 0 and not text.stderr.strip(), text.stderr
    doc = json.loads(subprocess.run([str(BIN / "ansible-doc"), "--json", fqcn], capture_output=True, text=True,
                                    check=True, cwd=ROOT, env=checkout_env()).stdout)[fqcn]
    assert doc["doc"]["options"] and doc["examples"] and doc["return"] is not None
    assert fqcn in doc["examples"]


@pytest.mark.parametrize("role", ROLES)
def test_ansible_doc_renders_role(role):
    fqcn = f"gentoo_binhost.infra.{role}"
    proc = subprocess.run([str(BIN / "ansible-doc"), "-t", "role", fqcn], capture_output=True, text=True,
                          check=False, cwd=ROOT, env=checkout_env())
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    assert f"{role}_" in proc.stdout


def test_changelog_fragments_lint():
    proc = subprocess.run([str(BIN / "antsibull-changelog"), "lint"], capture_output=True, text=True,
                          check=False, cwd=ROOT)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr
