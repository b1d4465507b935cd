"""bench/snapshot_import.py runs end to end at its smoke size, emerge-webrsync included.

Only that it works and reports its ratios is asserted, never how fast anything was (that depends on the machine's load):
the benchmark itself exits non-zero when an import is functionally wrong.
"""
import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "snapshot_import.py"
SMOKE = ["--files", "3000", "--days", "3", "--preset", "1"]


def test_benchmark_smoke_run_reports_its_ratios(tmp_path):
    results = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), *SMOKE, "--workdir", str(tmp_path / "bench"), "--json", str(results)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for label in ("daily import / xz -dc", "daily import / manual daily flow", "no-op import"):
        assert label in proc.stdout
    summary = json.loads(results.read_text())
    assert summary["functional_checks"]["failed"] == []
    assert [day["tag"] for day in summary["ours"]] == ["2025-01-06", "2025-01-07", "2025-01-08"]
    assert len(summary["manual"]) == 3
    # The run's repositories and work dirs are removed; only the cached mirror stays.
    assert [p.name.startswith("mirror-") for p in (tmp_path / "bench").iterdir()] == [True]


def test_binpkg_publish_benchmark_smoke_run(tmp_path):
    """bench/binpkg_publish.py at its smoke size: its own functional checks pass (each
    incremental publication transfers the rebuilt package and the two index files only)."""
    bench = Path(__file__).resolve().parents[2] / "bench" / "binpkg_publish.py"
    results = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, str(bench), "--packages", "40", "--runs", "3", "--largest", "200000",
                           "--workdir", str(tmp_path), "--json", str(results)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(results.read_text())
    assert data["failures"] == [] and data["packages"] == 40 and len(data["runs"]) == 3
    assert all(run["files"] == 3 for run in data["runs"]), data["runs"]
    assert "incremental publication, median" in proc.stdout and "target <= 2.0 s" in proc.stdout
