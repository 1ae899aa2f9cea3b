"""The FastAPI request of ``fastapi_request.py``, counted in CPU instructions instead of
timed: unguarded vs. mode "on" vs. mode "strict".

Run:  python benchmarks/fastapi_instructions.py [--requests 400] [--jobs 2]

Timings on a shared or virtual machine move by 10-20 % from one block to the next;
instruction counts do not. Each mode runs in two fresh interpreters under valgrind's
callgrind (``apt install valgrind``), one making 10 requests and one making
10 + ``--requests``, after the same warm-up; the difference between the two totals,
divided by ``--requests``, is what one request costs, with start-up, imports and
warm-up cancelled out. The ratio to the unguarded request is the figure to compare with
the 1.03x target for strict mode. Instructions are not time (a cache miss costs more than
an add), so read this beside the timed benchmark, not instead of it. ``PYTHONHASHSEED``
is fixed so that both interpreters of a mode hash alike. Under valgrind a run takes a
minute or two.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fastapi_request  # the same apps, from the script beside this one
from sqlalchemy import text

MODES = ("unguarded", "on", "strict")
BASE = 10


async def _child(mode: str, requests: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = "sqlite+aiosqlite:///" + os.path.join(tmp, "bench.db")
        apps, engine = fastapi_request.build_apps(url)
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)"))
        await fastapi_request.timed(apps[mode], 30)  # warm-up: caches, lazy imports
        await fastapi_request.timed(apps[mode], requests)
        await engine.dispose()


def _count(mode: str, requests: int) -> int:
    env = dict(os.environ, PYTHONHASHSEED="0")
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        mode,
        str(requests),
    ]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{out.stderr}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.requests < 1 or args.jobs < 1:
        parser.error("--requests and --jobs must be at least 1")
    if args.child:
        asyncio.run(_child(args.child[0], int(args.child[1])))
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt install valgrind)")
    runs = [(mode, n) for mode in MODES for n in (BASE, BASE + args.requests)]
    with ThreadPoolExecutor(args.jobs) as pool:
        counts = dict(zip(runs, pool.map(lambda run: _count(*run), runs)))
    per_request = {
        mode: (counts[mode, BASE + args.requests] - counts[mode, BASE]) / args.requests
        for mode in MODES
    }
    base = per_request["unguarded"]
    print(f"instructions per request ({args.requests} requests, callgrind)")
    for mode in MODES:
        count = per_request[mode]
        print(f"{mode:<10}{count:>12,.0f}  {count - base:>+10,.0f}  {count / base:.3f}x")


if __name__ == "__main__":
    main()
