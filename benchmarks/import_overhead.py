"""What the import hook costs: ``import sqlalchemy.orm, fastapi`` with the hook pointed at
sqlalchemy and fastapi, against the same import without it.

Every run is a fresh interpreter. Runs are interleaved (plain, hooked, plain, hooked, ...)
and each hooked run is compared with the plain run of its round; the figure is the
median of those ratios.

* cold: no ``.pyc`` and no scan cache on either side: each run gets a new, empty
  ``PYTHONPYCACHEPREFIX`` (so every module, the standard library's included, is compiled
  from source) and the hooked run a new, empty ``PROTOGUARD_CACHE_DIR``.
* warm: both filled beforehand, and reused by every run.

The timed part is the import of the two packages (and, on the hooked side, installing the
hook). Both sides import protoguard itself first, outside the timing, so the figure is
the hook's own cost; the cost of ``import protoguard`` is reported on its own line.

Usage: ``python benchmarks/import_overhead.py [--runs N]``. Targets: cold <= 1.30x,
warm <= 1.05x.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

PACKAGES = ("sqlalchemy", "fastapi")
IMPORTS = "import sqlalchemy.orm, fastapi"

CHILD = """
import json, sys, time
start = time.perf_counter()
import protoguard
protoguard_time = time.perf_counter() - start
hooked = sys.argv[1] == "hook"
start = time.perf_counter()
if hooked:
    hook = protoguard.install_import_hook({packages}, mode="on")
{imports}
elapsed = time.perf_counter() - start
findings = len(hook.findings) if hooked else 0
print(json.dumps({{"elapsed": elapsed, "protoguard": protoguard_time, "findings": findings}}))
"""


def _run(side: str, pycache: str, scan_cache: str) -> dict[str, float]:
    env = dict(os.environ)
    env["PYTHONPYCACHEPREFIX"] = pycache
    env["PROTOGUARD_CACHE_DIR"] = scan_cache
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PROTOGUARD_MODE"] = "on"
    code = CHILD.format(packages=", ".join(map(repr, PACKAGES)), imports=IMPORTS)
    out = subprocess.run(
        [sys.executable, "-c", code, side], env=env, check=True, capture_output=True, text=True
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    if result["findings"]:
        raise SystemExit(f"the hook reported {result['findings']} finding(s) in {PACKAGES}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=11, help="runs per side and state")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"plain-cold": [], "hook-cold": [], "plain-warm": []}
    times["hook-warm"] = []
    protoguard_import: list[float] = []
    with tempfile.TemporaryDirectory(prefix="protoguard-bench-") as root:
        warm = {side: os.path.join(root, f"warm-{side}") for side in ("plain", "hook")}
        warm_scan = os.path.join(root, "warm-scan")
        for side in ("plain", "hook"):  # fill the warm caches
            _run(side, warm[side], warm_scan)
            _run(side, warm[side], warm_scan)
        for index in range(args.runs):
            # Alternate which side goes first, so neither always follows the other.
            order = ("plain", "hook") if index % 2 == 0 else ("hook", "plain")
            for side in order:
                fresh = tempfile.mkdtemp(dir=root)
                result = _run(side, os.path.join(fresh, "pyc"), os.path.join(fresh, "scan"))
                times[f"{side}-cold"].append(result["elapsed"])
            for side in order:
                result = _run(side, warm[side], warm_scan)
                times[f"{side}-warm"].append(result["elapsed"])
                protoguard_import.append(result["protoguard"])
            print(".", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    print(f"{IMPORTS}, hook on {', '.join(PACKAGES)}; {args.runs} interleaved runs per cell")
    print(f"Python {sys.version.split()[0]}")
    for state, target in (("cold", 1.30), ("warm", 1.05)):
        plain = statistics.median(times[f"plain-{state}"])
        hooked = statistics.median(times[f"hook-{state}"])
        # Each run is paired with the other side's run of the same round.
        ratios = sorted(h / p for h, p in zip(times[f"hook-{state}"], times[f"plain-{state}"]))
        ratio = statistics.median(ratios)
        quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        verdict = "ok" if ratio <= target else "OVER TARGET"
        print(
            f"{state}: plain {plain * 1000:.0f} ms, hooked {hooked * 1000:.0f} ms, "
            f"median of ratios {ratio:.3f}x (p25-p75 {quartiles[0]:.3f}-{quartiles[2]:.3f}; "
            f"target <= {target:.2f}x: {verdict})"
        )
    print(f"import protoguard itself (warm): {statistics.median(protoguard_import) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
