#!/usr/bin/env python3
"""Benchmark: importing daily ::gentoo snapshots with portage_snapshot, against two references.

One run, one mirror: a generated ::gentoo-sized tree (150,000 files in 170 categories by
default) and ``--days`` daily snapshots of it, each changing ``--fraction`` of the files,
xz-compressed, md5-summed and signed like distfiles.gentoo.org's, served over HTTP on
127.0.0.1. Timed on that mirror:

1. our first import (day 1, into a fresh bare repository);
2. our daily imports (days 2..N, each and the median);
3. our no-op (day N again: decided from the .md5sum alone, the tarball is not fetched);
4. the anchor: ``xz -dc`` of each day's tarball to /dev/null;
5. the manual flow: real ``emerge-webrsync --revert=DATE`` into a work dir, then
   ``git add -A && git commit && git tag DATE`` there (day 1 once to set up; days 2..N timed).

Each of our imports runs in a fresh interpreter: its wall time is measured around the
``import_snapshot`` call inside the child and around the whole child from here. Its peak RSS is
the child's own VmHWM: ``ru_maxrss`` (from ``os.wait4`` as from ``getrusage``) is no use here,
because Linux starts a spawned child's ``ru_maxrss`` at its parent's RSS — every child would
report this process's generator-inflated size (and xz/git that of the child at spawn time).

Nothing asserts on time (a busy machine would fail at random): the ratios are printed with their targets as PASS/MISS.
The exit status is non-zero only when something is functionally wrong: a wrong tag, commit
count, tree or change count, an import that reported no change when there was one, or a
no-op that downloaded the tarball.

The signed mirror is cached under ``--workdir`` by a hash of the parameters (and of the
generator's source), so re-runs skip the minutes its xz compression takes.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS = ROOT / ".collections"
FIXTURES = ROOT / "tests" / "fixtures"
for _path in (FIXTURES, COLLECTIONS):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from httpmirror import HttpMirror  # noqa: E402 - needs the sys.path set-up above
from snapmirror import (  # noqa: E402
    day_date,
    generate_tree,
    make_signing_key,
    mutate_tree,
    snapshot_timestamp,
    timestamp_files,
    write_snapshot,
)
from webrsync import WebrsyncError, prepare_webrsync  # noqa: E402

# Bump when the cached mirror's layout or meta.json changes meaning.
CACHE_FORMAT = 1

TARGET_DAILY_VS_XZ = 1.5
TARGET_DAILY_VS_MANUAL = 0.1
TARGET_NOOP_SECONDS = 0.5

# Runs in a fresh interpreter: only the collection is imported, so the child's RSS and time
# are what the module would cost. CPU: RUSAGE_SELF is the child's Python, RUSAGE_CHILDREN the
# xz, git and gpg it ran. Reads {"collections", "params", "profile"} as JSON on stdin.
CHILD_CODE = r"""
import json, resource, sys, time
started = time.perf_counter()
job = json.load(sys.stdin)
sys.path.insert(0, job["collections"])
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._snapshot import import_snapshot
loaded = time.perf_counter()
profile_text = None
if job["profile"]:
    import cProfile, io, pstats
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    result = profiler.runcall(import_snapshot, job["params"])
    call = time.perf_counter() - t0
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(18)
    stats.sort_stats("cumulative").print_stats(18)
    profile_text = out.getvalue()
else:
    t0 = time.perf_counter()
    result = import_snapshot(job["params"])
    call = time.perf_counter() - t0
own = resource.getrusage(resource.RUSAGE_SELF)
helpers = resource.getrusage(resource.RUSAGE_CHILDREN)
try:
    with open("/proc/self/status") as status:
        peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    peak_kb = None
json.dump({
    "result": result,
    "call_seconds": call,
    "load_seconds": loaded - started,
    "peak_rss_kb": peak_kb,
    "cpu_seconds": own.ru_utime + own.ru_stime,
    "helpers_cpu_seconds": helpers.ru_utime + helpers.ru_stime,
    "profile": profile_text,
}, sys.stdout)
"""


class BenchFailure(Exception):
    """Something did not work (as opposed to being slow): the benchmark exits non-zero."""


def iso(date: str) -> str:
    return f"{date[:4]}-{date[4:6]}-{date[6:]}"


def program(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise BenchFailure(f"{name} is needed and not in PATH")
    return path


# --------------------------------------------------------------------------- expectations


def git_tree_id(tree: dict[str, tuple[bytes, int]]) -> str:
    """The id git gives the root tree holding ``tree`` (files only, modes as git records them)."""
    root: dict = {}
    for path, (data, mode) in tree.items():
        node = root
        *dirs, name = path.split("/")
        for part in dirs:
            node = node.setdefault(part, {})
        git_mode = b"100755" if mode & 0o111 else b"100644"
        node[name] = (git_mode, hashlib.sha1(b"blob %d\0%s" % (len(data), data)).digest())

    def build(node: dict) -> bytes:
        entries = []
        for name, value in node.items():
            if isinstance(value, dict):
                # git orders a directory as if its name ended in '/'.
                entries.append((name.encode() + b"/", b"40000", build(value)))
            else:
                entries.append((name.encode(), value[0], value[1]))
        entries.sort(key=lambda entry: entry[0])
        body = b"".join(b"%s %s\0%s" % (mode, key.rstrip(b"/"), sha) for key, mode, sha in entries)
        return hashlib.sha1(b"tree %d\0%s" % (len(body), body)).digest()

    return build(root).hex()


def tree_changes(old: dict, new: dict) -> dict[str, int]:
    """What an import of ``new`` on top of ``old`` must report (a mode change is a change)."""
    def git_entry(value):
        data, mode = value
        return data, bool(mode & 0o111)

    added = sum(1 for path in new if path not in old)
    modified = sum(1 for path, value in new.items() if path in old and git_entry(old[path]) != git_entry(value))
    deleted = sum(1 for path in old if path not in new)
    return {"added": added, "modified": modified, "deleted": deleted}


# --------------------------------------------------------------------------- the mirror

# Set in the parent just before forking the compressors, so the trees reach them by fork
# instead of by pickling ~150 MB per day.
_GENERATION: SimpleNamespace | None = None


def _write_day(index: int) -> dict:
    gen = _GENERATION
    started = time.perf_counter()
    snap = write_snapshot(gen.mirror_dir, gen.dates[index], gen.trees[index], gen.key,
                          latest=index == len(gen.dates) - 1, preset=gen.preset)
    return {"date": snap.date, "md5": snap.md5, "xz_bytes": snap.tarball.stat().st_size,
            "compress_seconds": time.perf_counter() - started}


def tar_bytes(tarball: Path) -> int:
    """The uncompressed size, read from the xz index (no decompression)."""
    out = subprocess.run([program("xz"), "--robot", "--list", str(tarball)],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        fields = line.split("\t")
        if fields[0] == "totals":
            return int(fields[4])
    raise BenchFailure(f"xz --list gave no totals for {tarball}")


def cache_key(args) -> str:
    recipe = {
        "format": CACHE_FORMAT, "files": args.files, "categories": args.categories,
        "days": args.days, "fraction": args.fraction, "preset": args.preset,
        "generator": hashlib.sha256((FIXTURES / "snapmirror.py").read_bytes()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def generate_mirror(args, cache_dir: Path) -> dict:
    """Write the signed mirror into ``cache_dir`` (atomically: a half-written one is never used)."""
    global _GENERATION
    building = cache_dir.with_name(f"{cache_dir.name}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    started = time.perf_counter()
    dates = [day_date(i) for i in range(args.days)]
    key = make_signing_key()
    try:
        trees = [generate_tree(args.files, args.categories, seed=0)]
        for day in range(1, args.days):
            trees.append(mutate_tree(trees[-1], args.fraction, seed=day))
        trees_seconds = time.perf_counter() - started
        # Compression is the cost (~1 min per tarball at xz -6): one python lzma stream per
        # core, exactly write_snapshot's layout (one xz block, like a single-threaded xz).
        # key.sign from several processes is safe: key generation left its gpg-agent running.
        _GENERATION = SimpleNamespace(mirror_dir=building, dates=dates, trees=trees, key=key,
                                      preset=args.preset)
        workers = max(1, min(len(dates), os.cpu_count() or 1))
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            written = pool.map(_write_day, range(len(dates)), chunksize=1)
        _GENERATION = None
        shutil.copyfile(key.pubkey_path, building / "signing-key.asc")
        fingerprint = key.fingerprint
    finally:
        _GENERATION = None
        key.close()
    days = []
    previous: dict = {}
    for date, tree, info in zip(dates, trees, written):
        # What write_snapshot put below the top folder: the timestamps are the date's own.
        content = {**tree, **timestamp_files(snapshot_timestamp(date))}
        tarball = building / "snapshots" / f"gentoo-{date}.tar.xz"
        days.append({**info, "tar_bytes": tar_bytes(tarball), "files": len(content),
                     "tree": git_tree_id(content), "changes": tree_changes(previous, content)})
        previous = content
    meta = {
        "params": {"files": args.files, "categories": args.categories, "days": args.days,
                   "fraction": args.fraction, "preset": args.preset},
        "fingerprint": fingerprint,
        "days": days,
        "trees_seconds": trees_seconds,
        "generation_seconds": time.perf_counter() - started,
        "generation_workers": workers,
    }
    (building / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    shutil.rmtree(cache_dir, ignore_errors=True)
    os.rename(building, cache_dir)
    return meta


def load_or_generate_mirror(args) -> tuple[Path, dict, bool]:
    cache_dir = args.workdir / f"mirror-{cache_key(args)}"
    meta_path = cache_dir / "meta.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        snapshots = cache_dir / "snapshots"
        if all((snapshots / f"gentoo-{d['date']}.tar.xz{ext}").is_file()
               for d in meta["days"] for ext in ("", ".md5sum", ".gpgsig")):
            return cache_dir, meta, True
    print(f"generating the mirror in {cache_dir} (cached for later runs) ...", flush=True)
    return cache_dir, generate_mirror(args, cache_dir), False


# --------------------------------------------------------------------------- our import


def run_import(params: dict, profile: bool = False) -> dict:
    """One import_snapshot call in a fresh interpreter: its result, timings and peak RSS."""
    job = json.dumps({"collections": str(COLLECTIONS), "params": params, "profile": profile}).encode()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", CHILD_CODE],
                                stdin=subprocess.PIPE, stdout=out, stderr=err)
        proc.stdin.write(job)
        proc.stdin.close()
        # wait4 for the record: its ru_maxrss is max(child, parent at spawn, grandchildren),
        # so the table uses the child's VmHWM instead.
        _pid, status, usage = os.wait4(proc.pid, 0)
        total = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise BenchFailure(f"import of {params['date']} into {params['repo']} failed "
                           f"(exit {proc.returncode}):\n{stderr.decode(errors='replace')}")
    report = json.loads(stdout)
    report.update({
        "child_seconds": total,
        "wait4_maxrss_kb": usage.ru_maxrss,
    })
    return report


def git_out(git_dir: Path, *args: str) -> str:
    return subprocess.run([program("git"), f"--git-dir={git_dir}", *args],
                          capture_output=True, text=True, check=True).stdout.strip()


class Checks:
    """Functional expectations: each failure is kept and makes the run exit non-zero."""

    def __init__(self):
        self.passed = 0
        self.failures: list[str] = []

    def expect(self, condition: bool, message: str) -> None:
        if condition:
            self.passed += 1
        else:
            self.failures.append(message)
            print(f"FAIL: {message}", flush=True)


def check_imported_day(checks: Checks, repo: Path, report: dict, day: dict, index: int,
                       previous_commit: str | None) -> None:
    result = report["result"]
    date = day["date"]
    checks.expect(result["changed"] is True, f"import of {date} reported changed={result['changed']}")
    checks.expect(result["tag"] == iso(date), f"import of {date} tagged {result['tag']!r}, not {iso(date)!r}")
    checks.expect(result["previous_commit"] == previous_commit,
                  f"import of {date} started from {result['previous_commit']}, not {previous_commit}")
    checks.expect(result["stats"] == day["changes"],
                  f"import of {date} reported changes {result['stats']}, the snapshots differ by {day['changes']}")
    commit = git_out(repo, "rev-parse", "refs/heads/master")
    checks.expect(commit == result["commit"], f"after {date} master is {commit}, the import said {result['commit']}")
    checks.expect(git_out(repo, "rev-parse", f"refs/tags/{iso(date)}^{{commit}}") == commit,
                  f"tag {iso(date)} does not point at master after importing {date}")
    count = int(git_out(repo, "rev-list", "--count", "refs/heads/master"))
    checks.expect(count == index + 1, f"after {date} master has {count} commits, not {index + 1}")
    tree = git_out(repo, "rev-parse", "refs/heads/master^{tree}")
    checks.expect(tree == day["tree"], f"after {date} master's tree is {tree}, the snapshot's is {day['tree']}")


# --------------------------------------------------------------------------- references


def time_xz(tarball: Path) -> float:
    started = time.perf_counter()
    subprocess.run([program("xz"), "-dc", str(tarball)], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


class ManualFlow:
    """The manual way to keep a git mirror: emerge-webrsync into a work dir, then commit and tag it."""

    def __init__(self, mirror_url: str, key, run_dir: Path):
        self.dir = run_dir / "manual" / "gentoo"
        self.webrsync = prepare_webrsync(mirror_url, key, self.dir, run_dir / "webrsync")
        # emerge-webrsync chowns the tree; git then calls it "dubious ownership" without this.
        self.git = [program("git"), "-c", "safe.directory=*", "-c", "gc.autoDetach=false", "-C", str(self.dir)]
        self.env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
                    "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid"}

    def close(self) -> None:
        self.webrsync.close()

    def _git(self, *args: str) -> str:
        return subprocess.run(self.git + list(args), env=self.env, capture_output=True, text=True,
                              check=True).stdout.strip()

    def day(self, date: str, first: bool) -> dict:
        started = time.perf_counter()
        self.webrsync.run(date)
        synced = time.perf_counter()
        if first:
            self._git("init", "-q")
        self._git("add", "-A")
        self._git("commit", "-q", "-m", f"Update portage tree to {iso(date)}")
        self._git("tag", iso(date))
        done = time.perf_counter()
        return {"webrsync_seconds": synced - started, "git_seconds": done - synced, "seconds": done - started,
                "tree": self._git("rev-parse", "HEAD^{tree}")}


# --------------------------------------------------------------------------- the run


def profile_daily_import(run_dir: Path, repo: Path, params: dict, previous_commit: str, day: dict,
                         checks: Checks) -> str:
    """Import the last day again under cProfile, into a clone rewound to the day before."""
    clone = run_dir / "profile.git"
    subprocess.run([program("git"), "clone", "--bare", "-q", str(repo), str(clone)], check=True)
    git_out(clone, "update-ref", "refs/heads/master", previous_commit)
    git_out(clone, "tag", "-d", iso(day["date"]))
    report = run_import({**params, "repo": str(clone), "date": day["date"]}, profile=True)
    checks.expect(report["result"]["changed"] is True and git_out(clone, "rev-parse", "master^{tree}") == day["tree"],
                  f"the profiled import of {day['date']} did not give the snapshot's tree")
    shutil.rmtree(clone, ignore_errors=True)
    return (f"import call {report['call_seconds']:.2f} s under cProfile "
            f"(child total {report['child_seconds']:.2f} s)\n{report['profile']}")


def benchmark(args, cache_dir: Path, meta: dict, run_dir: Path, checks: Checks) -> dict:
    days = meta["days"]
    snapshots = cache_dir / "snapshots"
    key = SimpleNamespace(pubkey_path=cache_dir / "signing-key.asc", fingerprint=meta["fingerprint"])
    repo = run_dir / "ours.git"
    load_before = os.getloadavg()[0]
    mirror = HttpMirror(cache_dir).start()
    manual = None
    try:
        params = {"repo": str(repo), "mirrors": [mirror.url], "key": str(key.pubkey_path),
                  "fingerprint": key.fingerprint, "timeout": 60, "verify": True}
        ours = []
        xz_seconds = []
        previous_commit = None
        for index, day in enumerate(days):
            report = run_import({**params, "date": day["date"]})
            check_imported_day(checks, repo, report, day, index, previous_commit)
            previous_commit = report["result"]["commit"]
            ours.append(report)
            # Right after the import it is compared with, so both see the same machine load.
            xz_seconds.append(time_xz(snapshots / f"gentoo-{day['date']}.tar.xz"))
            print(f"  ours {'first' if index == 0 else 'daily'} {iso(day['date'])}: "
                  f"{report['call_seconds']:.2f} s (xz -dc {xz_seconds[-1]:.2f} s)", flush=True)

        last = days[-1]
        tarball_path = f"/snapshots/gentoo-{last['date']}.tar.xz"
        fetched_before = mirror.count(tarball_path), mirror.count(tarball_path + ".gpgsig")
        noop = run_import({**params, "date": last["date"]})
        fetched_after = mirror.count(tarball_path), mirror.count(tarball_path + ".gpgsig")
        checks.expect(noop["result"]["changed"] is False, f"the no-op re-run of {last['date']} reported a change")
        checks.expect(noop["result"]["commit"] == previous_commit, "the no-op re-run moved master")
        checks.expect(fetched_after == fetched_before,
                      f"the no-op re-run fetched the tarball or its signature ({fetched_before} → {fetched_after})")
        checks.expect(int(git_out(repo, "rev-list", "--count", "refs/heads/master")) == len(days),
                      "the no-op re-run added a commit")
        tags = git_out(repo, "for-each-ref", "--format=%(refname:short)", "refs/tags").split()
        checks.expect(sorted(tags) == [iso(d["date"]) for d in days], f"tags are {tags}")
        print(f"  ours no-op {iso(last['date'])}: {noop['call_seconds']:.3f} s", flush=True)
        load_after = os.getloadavg()[0]

        manual_days = []
        if not args.skip_webrsync:
            manual = ManualFlow(mirror.url, key, run_dir)
            for index, day in enumerate(days):
                step = manual.day(day["date"], first=index == 0)
                checks.expect(step["tree"] == day["tree"], f"the manual flow's tree for {day['date']} is "
                              f"{step['tree']}, the snapshot's is {day['tree']}")
                manual_days.append(step)
                print(f"  manual {'first' if index == 0 else 'daily'} {iso(day['date'])}: {step['seconds']:.1f} s "
                      f"(webrsync {step['webrsync_seconds']:.1f} s + git {step['git_seconds']:.1f} s)", flush=True)

        daily_ratio = statistics.median(r["call_seconds"] for r in ours[1:]) / statistics.median(xz_seconds[1:]) \
            if len(days) > 1 else None
        profile = None
        if args.profile == "always" or (args.profile == "auto" and daily_ratio and daily_ratio > TARGET_DAILY_VS_XZ):
            if len(days) > 1:
                print("  profiling a daily import ...", flush=True)
                profile = profile_daily_import(run_dir, repo, params, ours[-2]["result"]["commit"], last, checks)
        return {"ours": ours, "noop": noop, "xz_seconds": xz_seconds, "manual": manual_days,
                "mirror_url": mirror.url, "profile": profile,
                "load": [load_before, load_after]}
    finally:
        if manual is not None:
            manual.close()
        mirror.stop()


# --------------------------------------------------------------------------- the report


def seconds(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f} s"


def megabytes(kb: int | None) -> str:
    return "—" if kb is None else f"{kb / 1024:.0f} MB"


def verdict(value: float | None, target: float) -> str:
    if value is None:
        return "skipped"
    return "PASS" if value <= target else "MISS"


def summarize(args, meta: dict, cached: bool, cache_dir: Path, measured: dict) -> tuple[str, dict]:
    days = meta["days"]
    ours, noop, xz, manual = measured["ours"], measured["noop"], measured["xz_seconds"], measured["manual"]
    daily = ours[1:]
    med = statistics.median
    daily_call = med(r["call_seconds"] for r in daily) if daily else None
    daily_child = med(r["child_seconds"] for r in daily) if daily else None
    xz_daily = med(xz[1:]) if daily else None
    manual_daily = med(m["seconds"] for m in manual[1:]) if manual[1:] else None
    ratio_xz = daily_call / xz_daily if daily else None
    ratio_manual = daily_call / manual_daily if daily and manual_daily else None
    peak_rss = max(r["peak_rss_kb"] or 0 for r in ours)
    peak_daily_rss = max((r["peak_rss_kb"] or 0 for r in daily), default=None)

    last = days[-1]
    lines = [
        "",
        "== portage_snapshot import benchmark ==",
        f"tree: {meta['days'][0]['files']:,} files in {args.categories} categories; {len(days)} daily snapshots, "
        f"{args.fraction:.1%} of files changed per day; xz -{args.preset}",
        f"tarball (last day): {last['xz_bytes'] / 1e6:.1f} MB xz of a {last['tar_bytes'] / 1e6:.1f} MB tar "
        "(real ::gentoo snapshots: ~45 MB xz); served from " + measured["mirror_url"],
        f"mirror generation: {meta['generation_seconds']:.1f} s ({meta['trees_seconds']:.1f} s trees, "
        f"compression on {meta['generation_workers']} processes)"
        + (" — cached, not regenerated this run" if cached else "") + f"; cache {cache_dir}",
        f"load average (1 min) before / after our imports: {measured['load'][0]:.2f} / {measured['load'][1]:.2f} "
        f"on {os.cpu_count()} cores (other work on the machine skews every number; ours uses two cores, xz -dc one)",
        "",
        f"{'run':<22}{'import call':>12}{'child total':>13}{'peak RSS':>10}"
        f"{'CPU py+helpers':>17}{'changes +/~/-':>17}{'xz -dc':>9}{'manual (webrsync + git)':>30}",
    ]
    for index, (day, report) in enumerate(zip(days, ours)):
        stats = report["result"]["stats"]
        step = manual[index] if index < len(manual) else None
        manual_text = (f"{step['seconds']:.1f} s ({step['webrsync_seconds']:.1f} + {step['git_seconds']:.1f} s)"
                       if step else "skipped")
        cpu = f"{report['cpu_seconds']:.2f}+{report['helpers_cpu_seconds']:.2f} s"
        changes = f"{stats['added']}/{stats['modified']}/{stats['deleted']}"
        lines.append(
            f"{('first ' if index == 0 else 'daily ') + iso(day['date']):<22}{seconds(report['call_seconds']):>12}"
            f"{seconds(report['child_seconds']):>13}{megabytes(report['peak_rss_kb']):>10}"
            f"{cpu:>17}{changes:>17}"
            f"{seconds(xz[index]):>9}{manual_text:>30}"
        )
    if daily:
        lines.append(f"{'daily median':<22}{seconds(daily_call):>12}{seconds(daily_child):>13}"
                     f"{megabytes(med(r['peak_rss_kb'] or 0 for r in daily)):>10}{'':>17}{'':>17}"
                     f"{seconds(xz_daily):>9}{seconds(manual_daily, 1) if manual_daily else 'skipped':>30}")
    noop_cpu = f"{noop['cpu_seconds']:.2f}+{noop['helpers_cpu_seconds']:.2f} s"
    lines.append(f"{'no-op ' + iso(last['date']):<22}{seconds(noop['call_seconds'], 3):>12}"
                 f"{seconds(noop['child_seconds']):>13}{megabytes(noop['peak_rss_kb']):>10}"
                 f"{noop_cpu:>17}{'0/0/0':>17}")
    lines += [
        "",
        f"{'check':<40}{'value':>10}{'target':>11}  result",
        f"{'daily import / xz -dc':<40}{ratio_xz if ratio_xz is not None else float('nan'):>9.2f}×"
        f"{'≤ ' + str(TARGET_DAILY_VS_XZ) + '×':>11}  {verdict(ratio_xz, TARGET_DAILY_VS_XZ)}"
        + (f"   (child total / xz -dc: {daily_child / xz_daily:.2f}×)" if daily else ""),
        f"{'daily import / manual daily flow':<40}"
        + (f"{ratio_manual:>9.3f}×" if ratio_manual is not None else f"{'—':>10}")
        + f"{'≤ ' + str(TARGET_DAILY_VS_MANUAL) + '×':>11}  {verdict(ratio_manual, TARGET_DAILY_VS_MANUAL)}"
        + (f"   ({manual_daily / daily_call:.0f}× faster)" if ratio_manual else ""),
        f"{'no-op import':<40}{noop['call_seconds']:>8.3f} s{'≤ ' + str(TARGET_NOOP_SECONDS) + ' s':>11}  "
        f"{verdict(noop['call_seconds'], TARGET_NOOP_SECONDS)}   (child total {noop['child_seconds']:.2f} s)",
        f"{'peak RSS of our import (child VmHWM)':<40}{megabytes(peak_rss):>10}"
        + (f"{'':>11}  first {megabytes(ours[0]['peak_rss_kb'])}, daily max {megabytes(peak_daily_rss)}"
           if peak_daily_rss else ""),
    ]
    if manual:
        lines.append(f"manual flow, first day (set-up, not in the ratio): {manual[0]['seconds']:.1f} s "
                     f"= webrsync {manual[0]['webrsync_seconds']:.1f} s + git init/add/commit/tag "
                     f"{manual[0]['git_seconds']:.1f} s")
    summary = {
        "params": meta["params"], "cache": str(cache_dir), "cached": cached,
        "generation_seconds": meta["generation_seconds"], "days": days,
        "ours": [{k: r[k] for k in ("call_seconds", "child_seconds", "load_seconds", "peak_rss_kb",
                                    "wait4_maxrss_kb", "cpu_seconds", "helpers_cpu_seconds")}
                 | {"stats": r["result"]["stats"], "tag": r["result"]["tag"]} for r in ours],
        "noop": {k: noop[k] for k in ("call_seconds", "child_seconds", "peak_rss_kb", "wait4_maxrss_kb")},
        "xz_seconds": xz, "manual": manual,
        "medians": {"daily_call_seconds": daily_call, "daily_child_seconds": daily_child,
                    "xz_daily_seconds": xz_daily, "manual_daily_seconds": manual_daily},
        "ratios": {"daily_vs_xz": ratio_xz, "daily_vs_manual": ratio_manual},
        "verdicts": {"daily_vs_xz": verdict(ratio_xz, TARGET_DAILY_VS_XZ),
                     "daily_vs_manual": verdict(ratio_manual, TARGET_DAILY_VS_MANUAL),
                     "noop": verdict(noop["call_seconds"], TARGET_NOOP_SECONDS)},
        "peak_rss_kb": peak_rss, "profile": measured["profile"], "load": measured["load"],
    }
    return "\n".join(lines), summary


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--files", type=int, default=150_000, help="files in the tree")
    parser.add_argument("--categories", type=int, default=170, help="package categories")
    parser.add_argument("--days", type=int, default=5, help="daily snapshots (the first is the initial import)")
    parser.add_argument("--fraction", type=float, default=0.01, help="share of files changed per day")
    parser.add_argument("--preset", type=int, default=6, choices=range(10), metavar="0-9",
                        help="xz level of the tarballs (realistic compressibility matters for the xz -dc anchor)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "output",
                        help="where the generated mirror is cached and the run's repositories live")
    parser.add_argument("--skip-webrsync", action="store_true", help="leave out the manual emerge-webrsync flow")
    parser.add_argument("--profile", choices=["auto", "always", "never"], default="auto",
                        help="cProfile one daily import (auto: when the daily / xz -dc ratio misses its target)")
    parser.add_argument("--keep", action="store_true", help="keep the run's repositories and work dir")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.days < 2:
        parser.error("--days must be at least 2: one first import and one daily")
    args.workdir = args.workdir.resolve()
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    checks = Checks()
    cache_dir, meta, cached = load_or_generate_mirror(args)
    if not cached:
        print(f"generated in {meta['generation_seconds']:.1f} s", flush=True)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=args.workdir))
    try:
        measured = benchmark(args, cache_dir, meta, run_dir, checks)
    except (BenchFailure, WebrsyncError) as exc:
        print(f"FAIL: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"FAIL: {' '.join(map(str, exc.cmd))} exited {exc.returncode}: {exc.stderr}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
    table, summary = summarize(args, meta, cached, cache_dir, measured)
    print(table)
    if measured["profile"]:
        print("\n== cProfile of one daily import (the child's Python; xz and git run beside it) ==")
        print(measured["profile"])
    summary["functional_checks"] = {"passed": checks.passed, "failed": checks.failures}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    if checks.failures:
        print(f"\nfunctional checks: {checks.passed} passed, {len(checks.failures)} FAILED:")
        for failure in checks.failures:
            print(f"  - {failure}")
        return 1
    print(f"\nfunctional checks: all {checks.passed} passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
