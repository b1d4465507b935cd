"""``ansible-test sanity`` and ``ansible-test units`` on the collection, offline, for real.

Both run through ``ansible_test_offline.py`` (the script CI and developers use) in a throwaway
``ansible_collections/gentoo_binhost/infra`` layout below tmp_path; the checkout is only read.
ansible-test keeps its venvs in ``~/.ansible/test/venv``: the first run on a machine installs
their requirements from PyPI (about a minute), later runs take seconds.
"""
from __future__ import annotations

import subprocess
import sys
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
    copied = {str(p.relative_to(layout)) for p in layout.rglob("*") if p.is_file() or p.is_symlink()}
    assert copied == set(offline.collection_files())


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


@pytest.mark.slow
def test_sanity_passes(tmp_path):
    rc, elapsed = offline.run_ansible_test("sanity", [], python=PYTHON, workdir=tmp_path)
    assert rc == 0, f"ansible-test sanity failed after {elapsed:.0f} s; its findings are in the output above"


@pytest.mark.slow
def test_units_pass(tmp_path):
    rc, elapsed = offline.run_ansible_test("units", ["tests/unit/plugins/"], python=PYTHON, workdir=tmp_path,
                                           keep_output=tmp_path / "output")
    assert rc == 0, f"ansible-test units failed after {elapsed:.0f} s"
    # It really ran the tests (a target list matching nothing would pass too).
    junit = list((tmp_path / "output" / "junit").glob("*.xml"))
    assert junit and all('failures="0"' in p.read_text() and 'errors="0"' in p.read_text() for p in junit)
    assert any('tests="0"' not in p.read_text() for p in junit)
