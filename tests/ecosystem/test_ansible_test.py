"""``ansible-test sanity`` and ``ansible-test units`` on the collection, offline, for real.

Both run through ``ansible_test_offline.py`` (the script CI and developers use) in a throwaway
``ansible_collections/gentoo_binhost/infra`` layout below tmp_path; the checkout is only read.
Each runs once per ansible-core minor version meta/runtime.yml claims (``TESTED_CORE_VERSIONS``),
with that version's ansible-test from a venv of its own. ansible-test keeps its venvs in
``~/.ansible/test/venv``: the first run on a machine installs their requirements from PyPI,
later runs reuse them.
"""
from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import ansible_test_offline as offline

ROOT = Path(__file__).resolve().parents[2]
PYTHON = "%d.%d" % sys.version_info[:2]


def test_layout_is_the_collection_without_build_ignored_files(tmp_path):
    layout = offline.make_layout(tmp_path)
    assert layout == tmp_path / "ansible_collections" / "gentoo_binhost" / "infra"
    assert (layout / "galaxy.yml").is_file() and (layout / "plugins" / "modules" / "portage_snapshot.py").is_file()
    assert (layout / "tests" / "sanity" / "ignore-2.19.txt").is_file()
    # The checkout's .collections symlink points back into the checkout: never copied.
    assert not (layout / ".collections").exists() and not (layout / ".venv").exists()
    assert not (layout / "tests" / "integration").exists()
    assert not (layout / "tests" / "fixtures").exists() and not (layout / "tests" / "conftest.py").exists()
    copied = {str(p.relative_to(layout)) for p in layout.rglob("*") if p.is_file() or p.is_symlink()}
    assert copied == set(offline.collection_files())


def test_units_layout_has_the_fixtures_and_nothing_else_of_the_harness(tmp_path):
    layout = offline.make_layout(tmp_path, leave_out=offline.left_out("units"))
    assert (layout / "tests" / "conftest.py").is_file() and (layout / "tests" / "fixtures" / "testkit.py").is_file()
    assert (layout / "tests" / "unit" / "requirements.txt").is_file()
    assert not (layout / "tests" / "integration").exists() and not (layout / "bench").exists()


@pytest.mark.parametrize("path, ignored", [
    (".collections/ansible_collections/gentoo_binhost/infra", True),
    ("tests/output/junit/x.xml", True),
    ("gentoo_binhost-infra-0.1.0.tar.gz", True),
    ("tests/fixtures/snapmirror.py", True),
    ("tests/integration/test_fixtures.py", True),
    ("tests/unit/plugins/module_utils/test_fetch_locations.py", False),
    ("plugins/modules/portage_snapshot.py", False),
])
def test_build_ignore_and_harness_patterns(path, ignored):
    patterns = [".collections", "tests/output", "*.tar.gz", *offline.HARNESS]
    assert offline.build_ignored(path, patterns) is ignored


def test_get_pip_standin_bootstraps_a_bare_venv(tmp_path):
    """The stand-in does what ansible-test needs from get-pip.py: a venv without pip gets the
    pinned pip, and get-pip's own options are not passed on to pip."""
    standin = offline.install_get_pip_standin()
    version = offline.pip_bootstrap_version()
    assert standin == Path.home() / ".ansible" / "test" / "cache" / f"get_pip_{version.replace('.', '_')}.py"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    proc = subprocess.run([str(venv / "bin" / "python"), str(standin), "--disable-pip-version-check",
                           f"pip=={version}", "--no-setuptools", "--no-wheel"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "--version"],
                         capture_output=True, text=True, check=True).stdout
    assert pip.startswith(f"pip {version} ")


def collected(*args: str) -> set[tuple[str, str]]:
    """The unit tests plain pytest collects in the checkout, as junit's (classname, name)."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           *args, "tests/unit"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ids = [line for line in proc.stdout.splitlines() if "::" in line]
    return {(path.removesuffix(".py").replace("/", "."), name)
            for path, name in (node.split("::", 1) for node in ids)}


def junit_cases(junit_dir: Path) -> dict[tuple[str, str], str]:
    """Every test case in ansible-test's junit files: (classname, name) -> its outcome."""
    cases = {}
    for report in junit_dir.glob("*.xml"):
        for case in ET.parse(report).iter("testcase"):
            outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
            cases[(case.get("classname"), case.get("name"))] = outcome
    return cases


def test_claimed_versions_run_from_the_lowest_claimed_to_this_venvs():
    claimed = offline.claimed_core_versions()
    assert claimed[-1] == offline.installed_core_minor(offline.BIN)
    assert [int(v.split(".")[1]) for v in claimed] == list(range(int(claimed[0].split(".")[1]), int(claimed[-1].split(".")[1]) + 1))


@pytest.mark.slow
@pytest.mark.parametrize("core", offline.claimed_core_versions())
def test_sanity_passes(tmp_path, core):
    rc, elapsed = offline.run_ansible_test("sanity", [], python=PYTHON, workdir=tmp_path, ansible_core=core)
    assert rc == 0, f"ansible-test sanity (ansible-core {core}) failed after {elapsed:.0f} s; its findings are above"


@pytest.mark.slow
@pytest.mark.parametrize("core", offline.claimed_core_versions())
def test_units_pass(tmp_path, core):
    """ansible-test runs exactly the unit tests pytest collects, and all pass. `make test` runs the
    unit tests only this way. Not as root, the requires_root ones skip. A unit test that drives
    the ansible CLI would skip too (ansible-test's units venv has ansible.module_utils, not the
    CLI) and fail this check: such tests belong in tests/integration."""
    expected = collected()  # before the layout is copied, so both see the same files
    expected_skips = collected("-m", "requires_root") if os.geteuid() else set()
    rc, elapsed = offline.run_ansible_test("units", [], python=PYTHON, workdir=tmp_path,
                                           keep_output=tmp_path / "output", ansible_core=core)
    assert rc == 0, f"ansible-test units (ansible-core {core}) failed after {elapsed:.0f} s"
    ran = junit_cases(tmp_path / "output" / "junit")
    assert set(ran) == expected
    skipped = {case for case, outcome in ran.items() if outcome == "skipped"}
    assert skipped == expected_skips
    assert all(outcome in ("passed", "skipped") for outcome in ran.values())
