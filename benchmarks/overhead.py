"""What a guarded provider costs on the correct path, against the same provider unguarded.

Usage: ``python benchmarks/overhead.py [--rounds N] [--block-ms MS] [--clock cpu|wall]
[--only TEXT] [--check]``

Each case is a provider used the right way, unguarded (A) and guarded (B). No database
is touched: the no-op providers hand out a plain object, and the session-maker case
makes ``AsyncSession`` objects that never connect. So this measures protoguard, not
SQLAlchemy.

Method. One event loop. A round times a block of N uses of A and a block of N uses of
B, back to back, alternating which goes first (AB, BA, AB, ...), and records B/A. N is
picked per case so that a block takes about ``--block-ms``. Many rounds give many
ratios; the report is their median, with the interquartile range and the min-max as the
spread. Ratios of adjacent blocks cancel most of the drift a busy machine adds (CPU
frequency, other processes), which a ratio of two separate long runs would not; blocks
are short and rounds many, so a round that a context switch lands in is one outlier
among hundreds, which the median ignores. As in
``timeit``, the garbage collector is off while a block runs; the young generation is
collected between rounds. Time is this thread's CPU time by default (``--clock cpu``),
which does not count the time another process holds the CPU; ``--clock wall`` uses
``time.perf_counter``.

The use is written inline in the timed loop (``async with provider() as s:``), not in
a helper coroutine, so the shared per-use overhead is only the loop itself.

Target (issue 2): ``async with`` on the @asynccontextmanager provider in mode "on" at
most 1.10x. ``--check`` exits 1 if a row that has a target misses it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, Callable, NamedTuple, Optional

import wrapt

import protoguard

TARGET_ASYNC_WITH = 1.10

Clock = Callable[[], float]
#: --clock: CPU time of this thread (not inflated while another process has the CPU, so
#: steadier on a busy machine), or wall-clock time.
CLOCKS: dict[str, Clock] = {"cpu": time.thread_time, "wall": time.perf_counter}

# A timed block: run ``uses`` correct uses of ``provider``, return the seconds taken.
Block = Callable[[Any, int, Clock], Any]


# --- the providers -------------------------------------------------------------------
# Each returns or yields a plain object: the session's own cost is not what is measured.

SESSION = object()


@contextlib.asynccontextmanager
async def acm_provider() -> AsyncIterator[object]:
    yield SESSION


@contextlib.contextmanager
def cm_provider() -> Iterator[object]:
    yield SESSION


async def agen_provider() -> AsyncIterator[object]:
    yield SESSION


async def coroutine_provider() -> object:
    return SESSION


# --- the uses, one timed loop per protocol ---------------------------------------------


async def block_async_with(provider: Any, uses: int, clock: Clock) -> float:
    start = clock()
    for _ in range(uses):
        async with provider() as session:
            del session
    return clock() - start


async def block_with(provider: Any, uses: int, clock: Clock) -> float:
    start = clock()
    for _ in range(uses):
        with provider() as session:
            del session
    return clock() - start


async def block_async_for(provider: Any, uses: int, clock: Clock) -> float:
    start = clock()
    for _ in range(uses):
        async for session in provider():
            del session
    return clock() - start


async def block_await(provider: Any, uses: int, clock: Clock) -> float:
    start = clock()
    for _ in range(uses):
        session = await provider()
        del session
    return clock() - start


class Case(NamedTuple):
    name: str
    block: Block
    unguarded: Any
    guarded: Any
    #: The most the median ratio may be, or None for a row that is only reported.
    target: Optional[float] = None
    #: Entered around every block of both sides (a run-time mode override, say).
    context: Callable[[], Any] = contextlib.nullcontext


def make_cases() -> list[Case]:
    on = protoguard.provider(mode="on")
    cases = [
        Case(
            "async with  @asynccontextmanager  on",
            block_async_with,
            acm_provider,
            on(acm_provider),
            TARGET_ASYNC_WITH,
        ),
        Case(
            "async with  @asynccontextmanager  strict",
            block_async_with,
            acm_provider,
            protoguard.provider(mode="strict")(acm_provider),
        ),
        # Off when decorating: @provider returns the function itself, so this row is
        # the noise floor of the method (A and B are the same object).
        Case(
            "async with  @asynccontextmanager  off",
            block_async_with,
            acm_provider,
            protoguard.provider(mode="off")(acm_provider),
        ),
        # Guarded while on, then switched off at run time: the guard is still there and
        # looks the mode up on every call.
        Case(
            "async with  @asynccontextmanager  override(off)",
            block_async_with,
            acm_provider,
            protoguard.provider(acm_provider),
            context=lambda: protoguard.override(mode="off"),
        ),
        Case("with        @contextmanager       on", block_with, cm_provider, on(cm_provider)),
        Case(
            "async for   async generator       on",
            block_async_for,
            agen_provider,
            on(agen_provider),
        ),
        Case(
            "await       coroutine function    on",
            block_await,
            coroutine_provider,
            on(coroutine_provider),
        ),
    ]
    maker = session_maker()
    if maker is not None:
        cases.append(
            Case(
                "async with  async_sessionmaker()  on",
                block_async_with,
                maker,
                on(maker),
            )
        )
    return cases


def session_maker() -> Any:
    """An ``async_sessionmaker`` over an engine that is never connected, or None."""
    try:
        from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
    except ImportError:  # pragma: no cover - the sqlalchemy extra is not installed
        print("(SQLAlchemy or aiosqlite missing: the async_sessionmaker row is skipped)")
        return None
    # Creating the engine opens nothing; a session connects only when it runs SQL.
    return async_sessionmaker(create_async_engine("sqlite+aiosqlite://"))


# --- measuring -------------------------------------------------------------------------


class Result(NamedTuple):
    case: Case
    uses: int
    unguarded_us: float
    guarded_us: float
    ratios: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.ratios)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(case: Case, provider: Any, uses: int, clock: Clock) -> float:
    with case.context():
        gc.disable()
        try:
            return float(await case.block(provider, uses, clock))
        finally:
            gc.enable()


async def measure(case: Case, rounds: int, block_ms: float, clock: Clock) -> Result:
    # Warm up both sides, then pick N so that one unguarded block takes about block_ms.
    for provider in (case.unguarded, case.guarded):
        await timed(case, provider, 200, clock)
    probe = await timed(case, case.unguarded, 2000, clock)
    uses = max(20, int(2000 * block_ms / 1000 / probe))
    ratios, unguarded, guarded = [], [], []
    gc.collect()
    for number in range(rounds):
        gc.collect(0)  # the young generation only: a full collection would dominate the run
        if number % 2:
            b = await timed(case, case.guarded, uses, clock)
            a = await timed(case, case.unguarded, uses, clock)
        else:
            a = await timed(case, case.unguarded, uses, clock)
            b = await timed(case, case.guarded, uses, clock)
        ratios.append(b / a)
        unguarded.append(a)
        guarded.append(b)
    return Result(
        case,
        uses,
        statistics.median(unguarded) / uses * 1e6,
        statistics.median(guarded) / uses * 1e6,
        ratios,
    )


def header(rounds: int, block_ms: float, clock: str) -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"protoguard {protoguard.__version__}, wrapt {wrapt.__version__}, "
        f"load average {load}\n"
        f"{rounds} rounds per case, blocks of ~{block_ms:g} ms, AB/BA interleaved, "
        f"{clock} time; ratio = guarded / unguarded, median over rounds"
    )


COLUMNS = (
    f"{'case':<48}{'N':>6}{'unguarded':>11}{'guarded':>11}"
    f"{'ratio':>8}{'p25-p75':>13}{'min-max':>13}  target"
)


def span(low: float, high: float) -> str:
    return f"{low:.2f}-{high:.2f}".rjust(13)


def row(result: Result) -> str:
    case = result.case
    verdict = ""
    if case.target is not None:
        verdict = f"<= {case.target:.2f} " + ("ok" if result.median <= case.target else "MISSED")
    return (
        f"{case.name:<48}{result.uses:>6}"
        f"{result.unguarded_us:>9.2f}us{result.guarded_us:>9.2f}us"
        f"{result.median:>8.3f}"
        f"{span(result.quantile(0.25), result.quantile(0.75))}"
        f"{span(min(result.ratios), max(result.ratios))}  {verdict}"
    )


async def main(rounds: int, block_ms: float, only: str, clock: str) -> list[Result]:
    print(header(rounds, block_ms, clock))
    print()
    print(COLUMNS)
    results = []
    for case in make_cases():
        if only and only not in case.name:
            continue
        result = await measure(case, rounds, block_ms, CLOCKS[clock])
        print(row(result), flush=True)
        results.append(result)
    return results


def parse(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=400, help="rounds per case (400)")
    parser.add_argument(
        "--block-ms", type=float, default=1.0, help="about how long one block runs (1 ms)"
    )
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="cpu",
        help="cpu: this thread's CPU time (default, steadier on a busy machine); wall",
    )
    parser.add_argument("--only", default="", help="run the cases whose name contains TEXT")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a row with a target misses it"
    )
    arguments = parser.parse_args(argv)
    if arguments.rounds < 1 or arguments.block_ms <= 0:
        parser.error("--rounds must be at least 1 and --block-ms more than 0")
    return arguments


if __name__ == "__main__":
    arguments = parse()
    results = asyncio.run(
        main(arguments.rounds, arguments.block_ms, arguments.only, arguments.clock)
    )
    missed = [r for r in results if r.case.target is not None and r.median > r.case.target]
    sys.exit(1 if arguments.check and missed else 0)
