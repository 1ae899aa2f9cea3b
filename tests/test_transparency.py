"""A guarded provider behaves exactly like the unguarded one for every correct use.

Each scenario runs on the unguarded provider and then on the same provider guarded by
``protoguard.provider``, and the two records it returns must be equal. A record holds
the values the user's code saw, exception types and identities, what the provider saw
(its ``except`` and ``finally``), and the table's row count afterwards, read through
real SQLAlchemy sessions. Where CPython's own tests (``test_contextlib_async``) pin the
unguarded behaviour down, the unguarded record is checked against it as well.
"""

from __future__ import annotations

import asyncio
import collections.abc
import contextlib
import functools
import inspect
import re
import sys
import types
from typing import Any, Callable

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

import protoguard

from .conftest import COUNT

INSERT = text("INSERT INTO users (name) VALUES ('eve')")

needs_async_decorator = pytest.mark.skipif(
    sys.version_info < (3, 10),
    reason="@asynccontextmanager objects are decorators from Python 3.10 on",
)
needs_anext = pytest.mark.skipif(
    sys.version_info < (3, 10), reason="the anext() builtin is new in Python 3.10"
)


# --- providers -----------------------------------------------------------------------
# Each takes the session maker and a list it logs its lifecycle to. Exceptions the
# provider sees are logged as objects, so a scenario can check their identity.


@contextlib.asynccontextmanager
async def acm_db(maker: Any, log: list[Any]) -> Any:
    """Hand out one AsyncSession; roll back and re-raise on error."""
    async with maker() as session:
        log.append("enter")
        try:
            yield session
        except BaseException as exc:
            log.append(exc)
            await session.rollback()
            raise
        finally:
            log.append("finally")


@contextlib.contextmanager
def cm_db(maker: Any, log: list[Any]) -> Any:
    """Hand out one Session; roll back and re-raise on error."""
    with maker() as session:
        log.append("enter")
        try:
            yield session
        except BaseException as exc:
            log.append(exc)
            session.rollback()
            raise
        finally:
            log.append("finally")


async def agen_db(maker: Any, log: list[Any]) -> Any:
    """FastAPI style: hand out one AsyncSession."""
    async with maker() as session:
        log.append("enter")
        try:
            yield session
        except BaseException as exc:
            log.append(exc)
            raise
        finally:
            log.append("finally")


def gen_db(maker: Any, log: list[Any]) -> Any:
    """FastAPI style, sync: hand out one Session."""
    with maker() as session:
        log.append("enter")
        try:
            yield session
        except BaseException as exc:
            log.append(exc)
            raise
        finally:
            log.append("finally")


async def coro_db(maker: Any, log: list[Any]) -> Any:
    """Return a new AsyncSession, which the caller closes."""
    log.append("called")
    await asyncio.sleep(0)
    return maker()


def plain_db(maker: Any, log: list[Any]) -> Any:
    """Return a new Session, which the caller closes."""
    log.append("called")
    return maker()


@contextlib.asynccontextmanager
async def acm_swallow(log: list[Any]) -> Any:
    """Swallow any Exception raised in the body."""
    try:
        yield "value"
    except Exception as exc:
        log.append(exc)
    log.append("after")


@contextlib.contextmanager
def cm_swallow(log: list[Any]) -> Any:
    """Swallow any Exception raised in the body."""
    try:
        yield "value"
    except Exception as exc:
        log.append(exc)
    log.append("after")


@contextlib.asynccontextmanager
async def acm_wrap(log: list[Any]) -> Any:
    """Turn every Exception from the body into a RuntimeError (CPython's woohoo)."""
    try:
        yield
    except Exception as exc:
        log.append(exc)
        raise RuntimeError(f"caught {exc}") from exc


@contextlib.contextmanager
def cm_wrap(log: list[Any]) -> Any:
    """Turn every Exception from the body into a RuntimeError."""
    try:
        yield
    except Exception as exc:
        log.append(exc)
        raise RuntimeError(f"caught {exc}") from exc


@contextlib.asynccontextmanager
async def acm_plain() -> Any:
    yield 42


@contextlib.contextmanager
def cm_plain() -> Any:
    yield 42


async def agen_echo(log: list[Any]) -> Any:
    """Yield back what it is sent; recover from a ValueError thrown in."""
    received = yield "first"
    while True:
        try:
            received = yield ("got", received)
        except ValueError as exc:
            log.append(exc)
            received = yield "recovered"
        except GeneratorExit:
            log.append("closing")
            raise


def gen_echo(log: list[Any]) -> Any:
    """Yield back what it is sent; recover from a ValueError thrown in."""
    received = yield "first"
    while True:
        try:
            received = yield ("got", received)
        except ValueError as exc:
            log.append(exc)
            received = yield "recovered"
        except GeneratorExit:
            log.append("closing")
            raise


# --- helpers -------------------------------------------------------------------------


def summary(log: list[Any], *known: BaseException) -> list[Any]:
    """The log with each exception replaced by its type name and whether it is the
    object the scenario raised (by identity), so records of two runs compare."""
    return [
        (type(e).__name__, str(e), any(e is k for k in known))
        if isinstance(e, BaseException)
        else e
        for e in log
    ]


def outcome(exc: BaseException | None, *known: BaseException) -> Any:
    """An exception as a comparable record: type, message, identity, cause and context."""
    if exc is None:
        return None
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "is_raised": any(exc is k for k in known),
        "cause": None if exc.__cause__ is None else type(exc.__cause__).__name__,
        "cause_is_raised": any(exc.__cause__ is k for k in known),
        "suppress_context": exc.__suppress_context__,
    }


async def rows(maker: Any) -> int:
    """The number of rows in ``users``, read through a fresh session."""
    async with maker() as session:
        return int((await session.execute(COUNT)).scalar_one())


def sync_rows(maker: Any) -> int:
    """The number of rows in ``users``, read through a fresh sync session."""
    with maker() as session:
        return int(session.execute(COUNT).scalar_one())


async def on_both(scenario: Callable[..., Any], func: Any, *args: Any) -> Any:
    """``scenario(func, *args)`` unguarded, then guarded: the two records."""
    plain = await scenario(func, *args)
    guarded = await scenario(protoguard.provider(func), *args)
    return plain, guarded


def same(run: Any, scenario: Callable[..., Any], func: Any, *args: Any) -> Any:
    """Run an async scenario on both, require equal records, return the unguarded one."""
    plain, guarded = run(on_both(scenario, func, *args))
    assert guarded == plain
    return plain


def same_sync(scenario: Callable[..., Any], func: Any, *args: Any) -> Any:
    """Run a sync scenario on both, require equal records, return the unguarded one."""
    plain = scenario(func, *args)
    guarded = scenario(protoguard.provider(func), *args)
    assert guarded == plain
    return plain


# --- tests ---------------------------------------------------------------------------


class TestValues:
    """The correct protocol hands out the same session, and the same results."""

    def test_async_context_manager(self, run: Any, async_maker: Any) -> None:
        """`async with get_db() as s` gives the real AsyncSession, not a proxy."""

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []
            async with provider(async_maker, log) as session:
                exact = type(session) is AsyncSession
                count = (await session.execute(COUNT)).scalar_one()
            return {"exact": exact, "count": count, "log": log}

        assert same(run, scenario, acm_db) == {
            "exact": True,
            "count": 2,
            "log": ["enter", "finally"],
        }

    def test_context_manager(self, sync_maker: Any) -> None:
        """`with get_db() as s` gives the real Session."""

        def scenario(provider: Any) -> Any:
            log: list[Any] = []
            with provider(sync_maker, log) as session:
                exact = type(session) is sync_maker.class_
                count = session.execute(COUNT).scalar_one()
            return {"exact": exact, "count": count, "log": log}

        assert same_sync(scenario, cm_db) == {
            "exact": True,
            "count": 2,
            "log": ["enter", "finally"],
        }

    def test_async_generator(self, run: Any, async_maker: Any) -> None:
        """`async for s in get_db()` runs once with the real AsyncSession, then cleans up."""

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []
            seen = []
            async for session in provider(async_maker, log):
                seen.append((type(session) is AsyncSession, await session.scalar(COUNT)))
            return {"seen": seen, "log": log}

        assert same(run, scenario, agen_db) == {
            "seen": [(True, 2)],
            "log": ["enter", "finally"],
        }

    def test_generator(self, sync_maker: Any) -> None:
        """`for s in get_db()` runs once with the real Session, then cleans up."""

        def scenario(provider: Any) -> Any:
            log: list[Any] = []
            seen = [
                (type(session) is sync_maker.class_, session.scalar(COUNT))
                for session in provider(sync_maker, log)
            ]
            return {"seen": seen, "log": log}

        assert same_sync(scenario, gen_db) == {
            "seen": [(True, 2)],
            "log": ["enter", "finally"],
        }

    def test_coroutine(self, run: Any, async_maker: Any) -> None:
        """`await make_session()` gives the real AsyncSession."""

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []
            session = await provider(async_maker, log)
            try:
                return (type(session) is AsyncSession, await session.scalar(COUNT), log)
            finally:
                await session.close()

        assert same(run, scenario, coro_db) == (True, 2, ["called"])

    def test_plain_function(self, sync_maker: Any) -> None:
        """A plain function's session works as the session, and in `with`."""

        def scenario(provider: Any) -> Any:
            log: list[Any] = []
            session = provider(sync_maker, log)
            try:
                direct = (isinstance(session, Session), session.scalar(COUNT))
            finally:
                session.close()
            with provider(sync_maker, log) as entered:
                inside = (type(entered) is sync_maker.class_, entered.scalar(COUNT))
            return direct, inside, log

        assert same_sync(scenario, plain_db) == ((True, 2), (True, 2), ["called", "called"])

    def test_async_sessionmaker(self, run: Any, async_maker: Any) -> None:
        """An async_sessionmaker's session works in `async with`, `.begin()` and directly."""

        async def scenario(maker: Any) -> Any:
            async with maker() as session:
                entered = (type(session) is AsyncSession, await session.scalar(COUNT))
            async with maker.begin() as session:
                begun = (type(session) is AsyncSession, await session.scalar(COUNT))
            session = maker()
            try:
                direct = (isinstance(session, AsyncSession), await session.scalar(COUNT))
            finally:
                await session.close()
            return entered, begun, direct

        assert same(run, scenario, async_maker) == ((True, 2), (True, 2), (True, 2))

    def test_sessionmaker(self, sync_maker: Any) -> None:
        """A sessionmaker's session works in `with`, `.begin()` and directly."""

        def scenario(maker: Any) -> Any:
            with maker() as session:
                entered = (type(session) is sync_maker.class_, session.scalar(COUNT))
            with maker.begin() as session:
                begun = (type(session) is sync_maker.class_, session.scalar(COUNT))
            session = maker()
            try:
                direct = (isinstance(session, Session), session.scalar(COUNT))
            finally:
                session.close()
            return entered, begun, direct

        assert same_sync(scenario, sync_maker) == ((True, 2), (True, 2), (True, 2))

    def test_arguments_reach_the_provider(self, run: Any) -> None:
        """Positional and keyword arguments reach the provider unchanged."""

        @contextlib.asynccontextmanager
        async def with_args(a: Any, *rest: Any, key: Any = None, **more: Any) -> Any:
            yield (a, rest, key, more)

        async def scenario(provider: Any) -> Any:
            async with provider(1, 2, 3, key="k", extra=[4]) as value:
                return value

        assert same(run, scenario, with_args) == (1, (2, 3), "k", {"extra": [4]})


class TestExceptionInBody:
    """An exception raised in the body reaches the provider and comes out the same object."""

    def test_async_context_manager_rolls_back(self, run: Any, async_maker: Any) -> None:
        """The provider's except runs, its rollback undoes the insert, the error is the same."""

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []
            raised = ValueError("boom")
            caught = None
            try:
                async with provider(async_maker, log) as session:
                    await session.execute(INSERT)
                    log.append(("inside", await session.scalar(COUNT)))
                    raise raised
            except ValueError as exc:
                caught = exc
            return {
                "log": summary(log, raised),
                "caught": outcome(caught, raised),
                "rows": await rows(async_maker),
            }

        record = same(run, scenario, acm_db)
        assert record["log"] == ["enter", ("inside", 3), ("ValueError", "boom", True), "finally"]
        assert record["caught"]["is_raised"]
        assert record["rows"] == 2

    def test_context_manager_rolls_back(self, sync_maker: Any) -> None:
        """The same for @contextmanager over a sync Session."""

        def scenario(provider: Any) -> Any:
            log: list[Any] = []
            raised = ValueError("boom")
            caught = None
            try:
                with provider(sync_maker, log) as session:
                    session.execute(INSERT)
                    log.append(("inside", session.scalar(COUNT)))
                    raise raised
            except ValueError as exc:
                caught = exc
            return {
                "log": summary(log, raised),
                "caught": outcome(caught, raised),
                "rows": sync_rows(sync_maker),
            }

        record = same_sync(scenario, cm_db)
        assert record["log"] == ["enter", ("inside", 3), ("ValueError", "boom", True), "finally"]
        assert record["caught"]["is_raised"]
        assert record["rows"] == 2

    def test_async_sessionmaker_rolls_back(self, run: Any, async_maker: Any) -> None:
        """`async with Session()` and `Session.begin()` roll back and re-raise the same error."""

        async def scenario(maker: Any) -> Any:
            results = []
            for enter in (maker, maker.begin):
                raised = KeyError("boom")
                try:
                    async with enter() as session:
                        await session.execute(INSERT)
                        raise raised
                except KeyError as exc:
                    results.append(outcome(exc, raised))
            return results, await rows(async_maker)

        results, count = same(run, scenario, async_maker)
        assert all(r["is_raised"] for r in results)
        assert count == 2

    def test_sessionmaker_rolls_back(self, sync_maker: Any) -> None:
        """`with Session()` and `Session.begin()` roll back and re-raise the same error."""

        def scenario(maker: Any) -> Any:
            results = []
            for enter in (maker, maker.begin):
                raised = KeyError("boom")
                try:
                    with enter() as session:
                        session.execute(INSERT)
                        raise raised
                except KeyError as exc:
                    results.append(outcome(exc, raised))
            return results, sync_rows(sync_maker)

        results, count = same_sync(scenario, sync_maker)
        assert all(r["is_raised"] for r in results)
        assert count == 2

    def test_base_exception(self, run: Any, async_maker: Any) -> None:
        """A BaseException that is not an Exception reaches the provider as well."""

        class Abort(BaseException):
            pass

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []
            raised = Abort("stop")
            try:
                async with provider(async_maker, log) as session:
                    await session.execute(INSERT)
                    raise raised
            except Abort as exc:
                caught = exc
            return summary(log, raised), outcome(caught, raised), await rows(async_maker)

        log, caught, count = same(run, scenario, acm_db)
        assert log == ["enter", ("Abort", "stop", True), "finally"]
        assert caught["is_raised"]
        assert count == 2

    def test_async_generator_body_error(self, run: Any, async_maker: Any) -> None:
        """An error in an `async for` body leaves the generator to aclose(), as unguarded."""

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []
            raised = ValueError("boom")
            gen = provider(async_maker, log)
            try:
                async for session in gen:
                    await session.execute(INSERT)
                    raise raised
            except ValueError as exc:
                caught = outcome(exc, raised)
            before_close = list(log)
            await gen.aclose()
            return before_close, summary(log), caught, await rows(async_maker)

        before, log, caught, count = same(run, scenario, agen_db)
        assert before == ["enter"]
        assert log == ["enter", ("GeneratorExit", "", False), "finally"]
        assert caught["is_raised"]
        assert count == 2

    def test_provider_wraps_the_error(self, run: Any) -> None:
        """A provider that re-raises as RuntimeError chains the body's error as the cause."""

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []
            raised = ZeroDivisionError("division by zero")
            try:
                async with provider(log):
                    raise raised
            except RuntimeError as exc:
                return summary(log, raised), outcome(exc, raised)

        log, caught = same(run, scenario, acm_wrap)
        assert log == [("ZeroDivisionError", "division by zero", True)]
        assert caught["type"] == "RuntimeError"
        assert caught["cause_is_raised"]

    def test_context_manager_wraps_the_error(self) -> None:
        """The same for @contextmanager."""

        def scenario(provider: Any) -> Any:
            log: list[Any] = []
            raised = ZeroDivisionError("division by zero")
            try:
                with provider(log):
                    raise raised
            except RuntimeError as exc:
                return summary(log, raised), outcome(exc, raised)

        log, caught = same_sync(scenario, cm_wrap)
        assert log == [("ZeroDivisionError", "division by zero", True)]
        assert caught["cause_is_raised"]

    def test_error_before_yield(self, run: Any) -> None:
        """An error the provider raises before its yield comes out of `async with` unchanged."""
        raised = ConnectionError("database down")

        @contextlib.asynccontextmanager
        async def failing() -> Any:
            raise raised
            yield  # pragma: no cover

        async def scenario(provider: Any) -> Any:
            try:
                async with provider():
                    pass  # pragma: no cover
            except ConnectionError as exc:
                return outcome(exc, raised)

        assert same(run, scenario, failing)["is_raised"]

    def test_error_after_yield(self, run: Any) -> None:
        """An error the provider raises in its cleanup comes out of `async with` unchanged."""
        raised = OSError("cannot close")

        @contextlib.asynccontextmanager
        async def failing_cleanup() -> Any:
            yield 1
            raise raised

        async def scenario(provider: Any) -> Any:
            try:
                async with provider():
                    pass
            except OSError as exc:
                return outcome(exc, raised)

        assert same(run, scenario, failing_cleanup)["is_raised"]

    def test_generator_exit_in_body(self, run: Any) -> None:
        """GeneratorExit raised in the body is thrown into the provider and re-raised."""

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []
            raised = GeneratorExit()
            try:
                async with provider(log):
                    raise raised
            except GeneratorExit as exc:
                return summary(log, raised), outcome(exc, raised)

        same(run, scenario, acm_swallow)

    def test_provider_breaks_its_protocol(self, run: Any) -> None:
        """A provider that never yields, or yields twice, fails as contextlib says."""

        @contextlib.asynccontextmanager
        async def no_yield() -> Any:
            if False:
                yield  # pragma: no cover

        @contextlib.asynccontextmanager
        async def two_yields() -> Any:
            yield
            yield

        @contextlib.asynccontextmanager
        async def yields_after_throw() -> Any:
            with contextlib.suppress(Exception):
                yield
            yield

        async def scenario(provider: Any, raise_in_body: bool) -> Any:
            try:
                async with provider():
                    if raise_in_body:
                        raise ValueError("x")
            except Exception as exc:
                return type(exc).__name__, str(exc)
            return None  # pragma: no cover

        assert same(run, scenario, no_yield, False) == ("RuntimeError", "generator didn't yield")
        assert same(run, scenario, two_yields, False)[0] == "RuntimeError"
        assert same(run, scenario, yields_after_throw, True)[0] == "RuntimeError"

    def test_dunders_called_directly(self, run: Any) -> None:
        """`await cm.__aenter__()` and `await cm.__aexit__(...)` behave as unguarded."""

        async def scenario(provider: Any) -> Any:
            cm = provider()
            entered = await cm.__aenter__()
            # CPython's test_contextmanager_no_reraise: a plain provider does not swallow.
            exited = await cm.__aexit__(TypeError, TypeError("foo"), None)
            return entered, exited

        assert same(run, scenario, acm_plain) == (42, False)


class TestCancellation:
    """A task cancelled inside the block runs the provider's cleanup, as unguarded."""

    async def _cancel_inside(self, enter: Callable[[], Any], maker: Any) -> Any:
        inside = asyncio.Event()
        never = asyncio.Event()

        async def user() -> None:
            async with enter() as session:
                await session.execute(INSERT)
                inside.set()
                await never.wait()

        task = asyncio.create_task(user())
        await inside.wait()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError as exc:
            caught = type(exc).__name__
        return caught, task.cancelled(), await rows(maker)

    def test_async_context_manager(self, run: Any, async_maker: Any) -> None:
        """The provider sees CancelledError, rolls back, and the task ends cancelled."""

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []
            result = await self._cancel_inside(lambda: provider(async_maker, log), async_maker)
            return summary(log), result

        log, result = same(run, scenario, acm_db)
        assert log == ["enter", ("CancelledError", "", False), "finally"]
        assert result == ("CancelledError", True, 2)

    def test_async_generator(self, run: Any, async_maker: Any) -> None:
        """Cancelled inside `async for`, the generator's finally runs on aclose()."""

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []
            inside = asyncio.Event()
            gen = provider(async_maker, log)

            async def user() -> None:
                async for session in gen:
                    await session.execute(INSERT)
                    inside.set()
                    await asyncio.Event().wait()

            task = asyncio.create_task(user())
            await inside.wait()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await gen.aclose()
            return summary(log), task.cancelled(), await rows(async_maker)

        assert same(run, scenario, agen_db) == (
            ["enter", ("GeneratorExit", "", False), "finally"],
            True,
            2,
        )

    def test_coroutine(self, run: Any, async_maker: Any) -> None:
        """A coroutine provider cancelled while it runs ends cancelled, as unguarded."""
        gate: list[asyncio.Event] = []

        async def slow(log: list[Any]) -> Any:
            try:
                log.append("started")
                gate[0].set()
                await asyncio.Event().wait()
            finally:
                log.append("finally")

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []
            gate[:] = [asyncio.Event()]
            task = asyncio.create_task(provider(log))
            await gate[0].wait()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return log, task.cancelled()

        assert same(run, scenario, slow) == (["started", "finally"], True)

    def test_async_sessionmaker(self, run: Any, async_maker: Any) -> None:
        """`async with Session()` cancelled inside closes the session and rolls back."""

        async def scenario(maker: Any) -> Any:
            return await self._cancel_inside(maker, async_maker)

        assert same(run, scenario, async_maker) == ("CancelledError", True, 2)


class TestGeneratorExit:
    """aclose()/close() on a generator provider's result runs its cleanup, as unguarded."""

    def test_aclose(self, run: Any, async_maker: Any) -> None:
        """aclose() after the first item throws GeneratorExit in; the generator then ends."""

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []
            gen = provider(async_maker, log)
            session = await gen.__anext__()
            await session.execute(INSERT)
            closed = await gen.aclose()
            try:
                await gen.__anext__()
            except StopAsyncIteration:
                after = "StopAsyncIteration"
            return summary(log), closed, after, await rows(async_maker)

        assert same(run, scenario, agen_db) == (
            ["enter", ("GeneratorExit", "", False), "finally"],
            None,
            "StopAsyncIteration",
            2,
        )

    def test_aclose_before_start(self, run: Any, async_maker: Any) -> None:
        """aclose() on a generator that never started runs nothing."""

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []
            gen = provider(async_maker, log)
            await gen.aclose()
            return log

        assert same(run, scenario, agen_db) == []

    def test_break_then_aclose(self, run: Any, async_maker: Any) -> None:
        """`break` leaves the generator suspended until aclose(), as unguarded."""

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []
            gen = provider(async_maker, log)
            async for _session in gen:
                break
            suspended = list(log)
            await gen.aclose()
            return suspended, summary(log)

        assert same(run, scenario, agen_db) == (
            ["enter"],
            ["enter", ("GeneratorExit", "", False), "finally"],
        )

    def test_close(self, sync_maker: Any) -> None:
        """close() on a sync generator provider throws GeneratorExit in and rolls back."""

        def scenario(provider: Any) -> Any:
            log: list[Any] = []
            gen = provider(sync_maker, log)
            session = next(gen)
            session.execute(INSERT)
            gen.close()
            after = next(gen, "exhausted")
            return summary(log), after, sync_rows(sync_maker)

        assert same_sync(scenario, gen_db) == (
            ["enter", ("GeneratorExit", "", False), "finally"],
            "exhausted",
            2,
        )

    def test_ignored_generator_exit(self, run: Any) -> None:
        """An async generator that yields after GeneratorExit fails aclose() the same way."""

        async def stubborn() -> Any:
            try:
                yield 1
            except GeneratorExit:
                yield 2

        async def scenario(provider: Any) -> Any:
            gen = provider()
            await gen.__anext__()
            try:
                await gen.aclose()
            except RuntimeError as exc:
                return str(exc)

        assert "GeneratorExit" in same(run, scenario, stubborn)


class TestStopIteration:
    """StopIteration/StopAsyncIteration in the body propagate as unguarded (CPython's
    test_contextmanager_except_stopiter and test_contextmanager_wrap_runtimeerror)."""

    class StopIterationSubclass(StopIteration):
        pass

    class StopAsyncIterationSubclass(StopAsyncIteration):
        pass

    STOPS = (
        StopIteration("spam"),
        StopAsyncIteration("ham"),
        StopIterationSubclass("spam"),
        StopAsyncIterationSubclass("spam"),
    )

    @pytest.mark.parametrize("stop", STOPS, ids=lambda e: type(e).__name__)
    def test_async_context_manager(self, run: Any, stop: BaseException) -> None:
        """The very same stop exception comes out of `async with`."""

        async def scenario(provider: Any) -> Any:
            try:
                async with provider():
                    raise stop
            except BaseException as exc:
                return outcome(exc, stop)
            return None  # pragma: no cover

        record = same(run, scenario, acm_plain)
        assert record is not None
        assert record["is_raised"]

    @pytest.mark.parametrize("stop", STOPS, ids=lambda e: type(e).__name__)
    def test_context_manager(self, stop: BaseException) -> None:
        """The very same stop exception comes out of `with`."""

        def scenario(provider: Any) -> Any:
            try:
                with provider():
                    raise stop
            except BaseException as exc:
                return outcome(exc, stop)
            return None  # pragma: no cover

        record = same_sync(scenario, cm_plain)
        assert record is not None
        assert record["is_raised"]

    def test_unwrapped_from_provider_runtime_error(self, run: Any) -> None:
        """A provider that wraps errors in RuntimeError still lets StopAsyncIteration out."""

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []
            raised = StopAsyncIteration()
            try:
                async with provider(log):
                    raise raised
            except BaseException as exc:
                return summary(log, raised), outcome(exc, raised)

        log, caught = same(run, scenario, acm_wrap)
        assert log == [("StopAsyncIteration", "", True)]
        assert caught["type"] == "StopAsyncIteration"

    def test_context_manager_unwrapped(self) -> None:
        """The same for StopIteration through a @contextmanager that wraps errors."""

        def scenario(provider: Any) -> Any:
            log: list[Any] = []
            raised = StopIteration()
            try:
                with provider(log):
                    raise raised
            except BaseException as exc:
                return summary(log, raised), outcome(exc, raised)

        log, caught = same_sync(scenario, cm_wrap)
        assert log == [("StopIteration", "", True)]
        assert caught["type"] == "StopIteration"

    def test_in_async_for_body(self, run: Any, async_maker: Any) -> None:
        """StopAsyncIteration raised in an `async for` body is not taken as the end."""

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []
            raised = StopAsyncIteration("body")
            gen = provider(async_maker, log)
            try:
                async for _session in gen:
                    raise raised
            except BaseException as exc:
                caught = outcome(exc, raised)
            await gen.aclose()
            return caught, summary(log)

        caught, _ = same(run, scenario, agen_db)
        assert caught["is_raised"]

    def test_in_for_body(self, sync_maker: Any) -> None:
        """StopIteration raised in a `for` body is not taken as the end."""

        def scenario(provider: Any) -> Any:
            log: list[Any] = []
            raised = StopIteration("body")
            gen = provider(sync_maker, log)
            try:
                for _session in gen:
                    raise raised
            except BaseException as exc:
                caught = outcome(exc, raised)
            gen.close()
            return caught, summary(log)

        caught, _ = same_sync(scenario, gen_db)
        assert caught["is_raised"]

    def test_raised_by_async_generator(self, run: Any) -> None:
        """StopAsyncIteration raised inside a generator provider becomes RuntimeError (PEP 479)."""

        async def leaky() -> Any:
            yield 1
            raise StopAsyncIteration("inside")

        async def scenario(provider: Any) -> Any:
            seen = []
            try:
                async for value in provider():
                    seen.append(value)
            except RuntimeError as exc:
                return seen, outcome(exc)
            return seen, None  # pragma: no cover

        seen, caught = same(run, scenario, leaky)
        assert (seen, caught["type"], caught["cause"]) == (
            [1],
            "RuntimeError",
            "StopAsyncIteration",
        )

    def test_raised_by_generator(self) -> None:
        """StopIteration raised inside a sync generator provider becomes RuntimeError."""

        def leaky() -> Any:
            yield 1
            raise StopIteration("inside")

        def scenario(provider: Any) -> Any:
            seen = []
            try:
                for value in provider():
                    seen.append(value)
            except RuntimeError as exc:
                return seen, outcome(exc)
            return seen, None  # pragma: no cover

        seen, caught = same_sync(scenario, leaky)
        assert (seen, caught["type"], caught["cause"]) == ([1], "RuntimeError", "StopIteration")


class TestSuppression:
    """A provider that swallows the body's exception suppresses it, as unguarded."""

    def test_async_context_manager(self, run: Any) -> None:
        """Nothing escapes `async with`; the code after the block runs."""

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []
            raised = ValueError("swallowed")
            async with provider(log) as value:
                log.append(value)
                raise raised
            log.append("after the block")
            return summary(log, raised)

        assert same(run, scenario, acm_swallow) == [
            "value",
            ("ValueError", "swallowed", True),
            "after",
            "after the block",
        ]

    def test_context_manager(self) -> None:
        """Nothing escapes `with`; the code after the block runs."""

        def scenario(provider: Any) -> Any:
            log: list[Any] = []
            raised = ValueError("swallowed")
            with provider(log) as value:
                log.append(value)
                raise raised
            log.append("after the block")
            return summary(log, raised)

        assert same_sync(scenario, cm_swallow)[-1] == "after the block"

    def test_aexit_returns_true(self, run: Any) -> None:
        """`await cm.__aexit__(...)` returns True when the provider swallowed the error."""

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []
            cm = provider(log)
            await cm.__aenter__()
            exited = await cm.__aexit__(ValueError, ValueError("x"), None)
            return exited, summary(log)

        assert same(run, scenario, acm_swallow) == (True, [("ValueError", "x", False), "after"])

    def test_session_rolled_back_and_swallowed(self, run: Any, async_maker: Any) -> None:
        """A provider that rolls back and swallows leaves the table unchanged, no error."""

        @contextlib.asynccontextmanager
        async def forgiving(maker: Any) -> Any:
            async with maker() as session:
                try:
                    yield session
                except LookupError:
                    await session.rollback()

        async def scenario(provider: Any) -> Any:
            async with provider(async_maker) as session:
                await session.execute(INSERT)
                raise KeyError("missing")
            return await rows(async_maker)

        assert same(run, scenario, forgiving) == 2

    def test_base_exception_not_swallowed(self, run: Any) -> None:
        """A provider that catches Exception lets a BaseException through, as unguarded."""

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []
            raised = KeyboardInterrupt()
            try:
                async with provider(log):
                    raise raised
            except KeyboardInterrupt as exc:
                return summary(log), outcome(exc, raised)

        log, caught = same(run, scenario, acm_swallow)
        assert (log, caught["is_raised"]) == ([], True)


def _results(kind: str, async_maker: Any, sync_maker: Any) -> tuple[Callable[[], Any], Any]:
    """A factory of one kind's provider results and its (unguarded) provider."""
    log: list[Any] = []
    table: dict[str, tuple[Any, tuple[Any, ...]]] = {
        "asynccontextmanager": (acm_db, (async_maker, log)),
        "contextmanager": (cm_db, (sync_maker, log)),
        "async generator": (agen_db, (async_maker, log)),
        "generator": (gen_db, (sync_maker, log)),
        "coroutine": (coro_db, (async_maker, log)),
        "plain function": (plain_db, (sync_maker, log)),
        "async_sessionmaker": (async_maker, ()),
        "sessionmaker": (sync_maker, ()),
    }
    provider, args = table[kind]
    return (lambda p: p(*args)), provider


KINDS = (
    "asynccontextmanager",
    "contextmanager",
    "async generator",
    "generator",
    "coroutine",
    "plain function",
    "async_sessionmaker",
    "sessionmaker",
)


def _dispose(obj: Any) -> None:
    """Close what a provider returned and nobody used, without a warning."""
    if isinstance(obj, (types.CoroutineType, Session)):
        obj.close()


class TestRepr:
    """A result's repr is the object's own, so errors that show it name the provider."""

    @pytest.mark.parametrize("kind", KINDS)
    def test_repr_is_the_results_own(self, kind: str, async_maker: Any, sync_maker: Any) -> None:
        make, provider = _results(kind, async_maker, sync_maker)
        plain = make(provider)
        guarded = make(protoguard.provider(provider))
        try:
            inner = getattr(guarded, "__wrapped__", guarded)
            # Objects of their own (contextlib's, a maker's session): the same kind of repr.
            assert repr(guarded) == repr(inner)
            shape = re.sub(r"0x[0-9a-f]+", "0x", repr(plain))
            assert re.sub(r"0x[0-9a-f]+", "0x", repr(guarded)) == shape or kind.endswith(
                "contextmanager"
            )
            if kind in ("async generator", "generator", "coroutine"):
                assert provider.__name__ in repr(guarded)
        finally:
            _dispose(plain)
            _dispose(inner)

    def test_a_guarded_provider_has_its_own_repr(self, async_maker: Any) -> None:
        """A guarded generator or coroutine function, and a guarded maker, show as the
        function or maker they guard (as a guarded context-manager function does)."""
        for provider in (agen_db, gen_db, coro_db, acm_db, async_maker):
            guarded = protoguard.provider(provider)
            if provider is acm_db:  # a function of its own, named as the provider
                assert repr(guarded).startswith("<function acm_db at 0x")
            else:
                assert repr(guarded) == repr(provider)

    def test_strict_session_repr(self, run, async_maker: Any) -> None:
        """The session strict mode watches has the session's repr."""

        @protoguard.provider(mode="strict")
        async def get_db() -> Any:
            async with async_maker() as session:
                yield session

        async def main() -> tuple[str, str]:
            reprs = ("", "")
            async for session in get_db():
                reprs = repr(session), repr(session.__wrapped__)
            return reprs

        shown, own = run(main())
        assert shown == own
        assert shown.startswith("<sqlalchemy.ext.asyncio.session.AsyncSession object at 0x")


class TestIsinstance:
    """isinstance and the standard protocol checks answer as they do unguarded."""

    @pytest.mark.parametrize(
        ("kind", "cls", "expected"),
        [
            ("asynccontextmanager", contextlib._AsyncGeneratorContextManager, True),
            ("asynccontextmanager", contextlib.AbstractAsyncContextManager, True),
            ("asynccontextmanager", contextlib.AbstractContextManager, False),
            ("contextmanager", contextlib._GeneratorContextManager, True),
            ("contextmanager", contextlib.AbstractContextManager, True),
            ("contextmanager", contextlib.AbstractAsyncContextManager, False),
            ("async generator", types.AsyncGeneratorType, True),
            ("async generator", contextlib.AbstractAsyncContextManager, False),
            ("generator", types.GeneratorType, True),
            ("generator", contextlib.AbstractContextManager, False),
            ("coroutine", types.CoroutineType, True),
            ("coroutine", contextlib.AbstractAsyncContextManager, False),
            ("plain function", Session, True),
            ("async_sessionmaker", AsyncSession, True),
            ("async_sessionmaker", contextlib.AbstractAsyncContextManager, True),
            ("sessionmaker", Session, True),
            ("sessionmaker", contextlib.AbstractContextManager, True),
        ],
    )
    def test_named_classes(
        self, kind: str, cls: type, expected: bool, async_maker: Any, sync_maker: Any
    ) -> None:
        """isinstance against contextlib's classes, the CM ABCs and the real types."""
        make, provider = _results(kind, async_maker, sync_maker)
        plain, guarded = make(provider), make(protoguard.provider(provider))
        try:
            assert (isinstance(plain, cls), isinstance(guarded, cls)) == (expected, expected)
        finally:
            _dispose(plain)
            _dispose(guarded)

    @pytest.mark.parametrize("kind", KINDS)
    @pytest.mark.parametrize(
        "check",
        [
            *(
                functools.partial(lambda abc, obj: isinstance(obj, abc), abc)
                for abc in (
                    collections.abc.Awaitable,
                    collections.abc.Coroutine,
                    collections.abc.AsyncIterable,
                    collections.abc.AsyncIterator,
                    collections.abc.AsyncGenerator,
                    collections.abc.Iterable,
                    collections.abc.Iterator,
                    collections.abc.Generator,
                    contextlib.AbstractContextManager,
                    contextlib.AbstractAsyncContextManager,
                )
            ),
            inspect.isawaitable,
            inspect.iscoroutine,
            inspect.isasyncgen,
            inspect.isgenerator,
            asyncio.iscoroutine,
        ],
        ids=[
            "Awaitable",
            "Coroutine",
            "AsyncIterable",
            "AsyncIterator",
            "AsyncGenerator",
            "Iterable",
            "Iterator",
            "Generator",
            "AbstractContextManager",
            "AbstractAsyncContextManager",
            "inspect.isawaitable",
            "inspect.iscoroutine",
            "inspect.isasyncgen",
            "inspect.isgenerator",
            "asyncio.iscoroutine",
        ],
    )
    def test_protocol_checks(
        self, kind: str, check: Callable[[Any], bool], async_maker: Any, sync_maker: Any
    ) -> None:
        """Structural checks (collections.abc, inspect.isawaitable, ...) agree with unguarded,
        except where the guard must define a protocol's method to name its misuse."""
        make, provider = _results(kind, async_maker, sync_maker)
        plain, guarded = make(provider), make(protoguard.provider(provider))
        try:
            if check(guarded) != check(plain):
                # Python looks the protocol methods up on the type, so the only way to
                # raise PG104 at `await x` (or PG101/PG105 at `for`/`async for`, PG105 at
                # the wrong `with`) is to define __await__/__iter__/__aiter__/__enter__ on
                # the proxy; checks that only ask "is the method there?" then say yes.
                # That is the documented price (docs/provider.md); nothing else may differ.
                assert (check(plain), check(guarded)) == (False, True)
                assert _check_name(check) in DELIBERATE, _check_name(check)
        finally:
            _dispose(plain)
            _dispose(guarded)


# The structural checks a guarded result may answer True to where the unguarded one
# answers False: each names a protocol whose misuse the guard reports at the use.
DELIBERATE = {
    "Awaitable",
    "isawaitable",
    "AsyncIterable",
    "AsyncIterator",
    "Iterable",
    "Iterator",
    "AbstractContextManager",
    "AbstractAsyncContextManager",
}


def _check_name(check: Callable[[Any], bool]) -> str:
    if isinstance(check, functools.partial):
        return check.args[0].__name__
    return check.__name__


class TestNotASession:
    """hasattr/getattr of session attributes on a provider's result answer as unguarded."""

    @pytest.mark.parametrize("kind", KINDS)
    @pytest.mark.parametrize("attr", ["execute", "add", "commit", "scalars", "close"])
    def test_hasattr(self, kind: str, attr: str, async_maker: Any, sync_maker: Any) -> None:
        """hasattr(get_db(), attr) and getattr with a default give the unguarded answer."""
        make, provider = _results(kind, async_maker, sync_maker)
        plain, guarded = make(provider), make(protoguard.provider(provider))
        try:
            missing = object()
            if (kind, attr) == ("contextmanager", "close"):
                # The guarded @contextmanager object has close()/throw() so that FastAPI's
                # Depends() can drive it like the generator it unwraps to; called before
                # the object is entered, close() is PG103 (taken for session.close()).
                with pytest.raises(protoguard.ProtocolAttributeError, match="PG103"):
                    guarded.close()
                return
            assert hasattr(guarded, attr) == hasattr(plain, attr)
            assert (getattr(guarded, attr, missing) is missing) == (
                getattr(plain, attr, missing) is missing
            )
        finally:
            _dispose(plain)
            _dispose(guarded)

    @pytest.mark.parametrize("kind", ["asynccontextmanager", "async generator", "coroutine"])
    def test_execute_is_missing(self, kind: str, async_maker: Any, sync_maker: Any) -> None:
        """`get_db().execute` is an AttributeError both ways (PG103 subclasses it)."""
        make, provider = _results(kind, async_maker, sync_maker)
        plain, guarded = make(provider), make(protoguard.provider(provider))
        try:
            for obj in (plain, guarded):
                with pytest.raises(AttributeError):
                    obj.execute  # noqa: B018
        finally:
            _dispose(plain)
            _dispose(guarded)


class TestDecoratorUse:
    """A context manager object used as a decorator behaves as unguarded."""

    @needs_async_decorator
    def test_async_decorator(self, run: Any) -> None:
        """`@get_db()` on an async function enters the provider on every call."""

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []

            @provider(log)
            async def handler(x: int) -> int:
                log.append(("handler", x))
                return x * 2

            return [await handler(1), await handler(2)], summary(log)

        assert same(run, scenario, acm_swallow) == (
            [2, 4],
            [("handler", 1), "after", ("handler", 2), "after"],
        )

    @needs_async_decorator
    def test_async_decorator_error(self, run: Any) -> None:
        """An error in the decorated function reaches the provider, which swallows it."""

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []
            raised = ValueError("in handler")

            @provider(log)
            async def handler() -> None:
                raise raised

            return await handler(), summary(log, raised)

        assert same(run, scenario, acm_swallow) == (
            None,
            [("ValueError", "in handler", True), "after"],
        )

    @needs_async_decorator
    def test_async_decorator_with_session(self, run: Any, async_maker: Any) -> None:
        """`@get_db(maker, log)` runs the decorated function inside the provider."""

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []

            @provider(async_maker, log)
            async def handler() -> None:
                log.append("handler")
                raise LookupError("rolled back")

            try:
                await handler()
            except LookupError as exc:
                caught = type(exc).__name__
            return summary(log), caught

        assert same(run, scenario, acm_db) == (
            ["enter", "handler", ("LookupError", "rolled back", False), "finally"],
            "LookupError",
        )

    def test_sync_decorator(self) -> None:
        """`@get_db()` on a sync function enters the provider on every call."""

        def scenario(provider: Any) -> Any:
            log: list[Any] = []

            @provider(log)
            def handler(x: int) -> int:
                log.append(("handler", x))
                return x * 2

            return [handler(1), handler(2)], summary(log)

        assert same_sync(scenario, cm_swallow) == (
            [2, 4],
            [("handler", 1), "after", ("handler", 2), "after"],
        )


class TestRecursion:
    """A provider used inside itself, and nested blocks, behave as unguarded."""

    @needs_async_decorator
    def test_recursive_decorator(self, run: Any) -> None:
        """CPython's test_recursive: a function decorated with `@woohoo()` calls itself."""

        async def scenario(provider: Any) -> Any:
            state = {"depth": 0, "entries": 0, "max": 0}

            @contextlib.asynccontextmanager
            async def woohoo() -> Any:
                state["entries"] += 1
                before = state["depth"]
                state["depth"] += 1
                state["max"] = max(state["max"], state["depth"])
                yield
                state["depth"] -= 1
                assert state["depth"] == before

            guarded_or_not = provider(woohoo)

            @guarded_or_not()
            async def recursive() -> None:
                if state["depth"] < 10:
                    await recursive()

            await recursive()
            return state

        plain, guarded = run(scenario(lambda f: f)), run(scenario(protoguard.provider))
        assert guarded == plain == {"depth": 0, "entries": 10, "max": 10}

    def test_provider_inside_itself(self, run: Any, async_maker: Any) -> None:
        """A provider that enters itself (through its guarded name) nests correctly."""

        @contextlib.asynccontextmanager
        async def nested(again: Any, depth: int, log: list[Any]) -> Any:
            async with async_maker() as session:
                log.append(("enter", depth))
                if depth:
                    async with again(again, depth - 1, log) as inner:
                        log.append(("inner is another session", inner is not session))
                        yield session
                else:
                    yield session
                log.append(("exit", depth))

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []
            async with provider(provider, 3, log) as session:
                log.append(("count", await session.scalar(COUNT)))
            return log

        log = same(run, scenario, nested)
        assert log[:4] == [("enter", 3), ("enter", 2), ("enter", 1), ("enter", 0)]

    def test_nested_sessions(self, run: Any, async_maker: Any) -> None:
        """Two nested `async with` blocks get two distinct, working sessions."""

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []
            async with provider(async_maker, log) as outer:
                await outer.execute(INSERT)
                async with provider(async_maker, log) as inner:
                    distinct = inner is not outer
                    inner_count = await inner.scalar(COUNT)
                outer_count = await outer.scalar(COUNT)
            return distinct, inner_count, outer_count, log, await rows(async_maker)

        assert same(run, scenario, acm_db)[:3] == (True, 2, 3)

    def test_nested_sync_sessions(self, sync_maker: Any) -> None:
        """Two nested `with` blocks of a @contextmanager provider, as unguarded."""

        def scenario(provider: Any) -> Any:
            log: list[Any] = []
            with provider(sync_maker, log) as outer, provider(sync_maker, log) as inner:
                distinct = inner is not outer
                counts = (outer.scalar(COUNT), inner.scalar(COUNT))
            return distinct, counts, log

        assert same_sync(scenario, cm_db) == (
            True,
            (2, 2),
            ["enter", "enter", "finally", "finally"],
        )


def _attribs(**attrs: Any) -> Callable[[Any], Any]:
    def decorate(func: Any) -> Any:
        for name, value in attrs.items():
            setattr(func, name, value)
        return func

    return decorate


@contextlib.asynccontextmanager
@_attribs(foo="bar")
async def documented_acm(spam: int, *, eggs: str = "x") -> Any:
    """Whee!"""
    yield spam


@contextlib.contextmanager
@_attribs(foo="bar")
def documented_cm(spam: int, *, eggs: str = "x") -> Any:
    """Whee!"""
    yield spam


@_attribs(foo="bar")
async def documented_agen(spam: int, *, eggs: str = "x") -> Any:
    """Whee!"""
    yield spam


@_attribs(foo="bar")
def documented_gen(spam: int, *, eggs: str = "x") -> Any:
    """Whee!"""
    yield spam


@_attribs(foo="bar")
async def documented_coro(spam: int, *, eggs: str = "x") -> Any:
    """Whee!"""
    return spam


DOCUMENTED = [documented_acm, documented_cm, documented_agen, documented_gen, documented_coro]


class TestMetadata:
    """The guarded provider keeps its name, docstring, signature and __wrapped__."""

    @pytest.mark.parametrize("func", DOCUMENTED, ids=lambda f: f.__name__)
    def test_function_attributes(self, func: Any) -> None:
        """__name__, __qualname__, __doc__, __module__ and custom attributes are kept."""
        guarded = protoguard.provider(func)
        for attr in ("__name__", "__qualname__", "__doc__", "__module__", "foo"):
            assert getattr(guarded, attr) == getattr(func, attr), attr

    def test_docstring_written_later(self) -> None:
        """A docstring set on the guarded function after decoration is the function's,
        read back through the guarded one (as wrapt forwards it)."""

        async def get_session() -> Any:
            """First."""
            yield 1

        guarded = protoguard.provider(get_session)
        guarded.__doc__ = "Second."
        assert get_session.__doc__ == guarded.__doc__ == "Second."

    def test_docstring_deleted(self) -> None:
        """``del guarded.__doc__`` deletes the function's docstring, as it does unguarded
        (a function's docstring is then None)."""

        async def get_session() -> Any:
            """First."""
            yield 1

        guarded = protoguard.provider(get_session)
        del guarded.__doc__
        assert get_session.__doc__ is None
        assert guarded.__doc__ is None

    @pytest.mark.parametrize("mode", ["on", "strict"])
    def test_result_docstring(self, run: Any, mode: str) -> None:
        """A generator's or coroutine's __doc__ is None, guarded or not: the proxy's own
        docstring is not shown in its place."""

        async def scenario() -> None:
            agen = protoguard.provider(mode=mode)(documented_agen)(1)
            assert agen.__doc__ is documented_agen(1).__doc__ is None
            assert [value async for value in agen] == [1]
            gen = protoguard.provider(mode=mode)(documented_gen)(1)
            assert gen.__doc__ is documented_gen(1).__doc__ is None
            assert list(gen) == [1]
            coro, plain = protoguard.provider(mode=mode)(documented_coro)(1), documented_coro(1)
            assert coro.__doc__ is plain.__doc__ is None
            assert await coro == await plain == 1

        run(scenario())

    @pytest.mark.parametrize("func", DOCUMENTED, ids=lambda f: f.__name__)
    def test_wrapped(self, func: Any) -> None:
        """__wrapped__ is the decorated function, and unwrapping ends at the user's one."""
        guarded = protoguard.provider(func)
        assert guarded.__wrapped__ is func
        assert inspect.unwrap(guarded) is inspect.unwrap(func)

    @pytest.mark.parametrize("func", DOCUMENTED, ids=lambda f: f.__name__)
    def test_signature(self, func: Any) -> None:
        """inspect.signature gives the same parameters and annotations."""
        assert inspect.signature(protoguard.provider(func)) == inspect.signature(func)

    @pytest.mark.parametrize("func", DOCUMENTED, ids=lambda f: f.__name__)
    @pytest.mark.parametrize(
        "predicate",
        [
            inspect.isasyncgenfunction,
            inspect.isgeneratorfunction,
            inspect.iscoroutinefunction,
            inspect.isfunction,
            callable,
        ],
        ids=lambda p: p.__name__,
    )
    def test_inspect_predicates(self, func: Any, predicate: Callable[[Any], bool]) -> None:
        """inspect's predicates give the same answer guarded and unguarded."""
        assert predicate(protoguard.provider(func)) == predicate(func)

    def test_context_manager_docstring(self) -> None:
        """The context-manager object carries the provider's docstring (CPython's test)."""
        for func in (documented_acm, documented_cm):
            assert protoguard.provider(func)(1).__doc__ == func(1).__doc__ == "Whee!"

    def test_context_manager_docstring_absent(self) -> None:
        """Without a docstring, the object's __doc__ is contextlib's, as unguarded."""
        for func in (acm_plain, cm_plain):
            assert protoguard.provider(func)().__doc__ == func().__doc__

    def test_result_names(self, run: Any) -> None:
        """A generator's or coroutine's own name and code are the provider's."""

        async def scenario(provider: Any) -> Any:
            gen = provider(1)
            try:
                return gen.__name__, gen.__qualname__, gen.ag_code.co_name
            finally:
                await gen.aclose()

        same(run, scenario, documented_agen)
        plain, guarded = documented_coro(1), protoguard.provider(documented_coro)(1)
        try:
            assert (guarded.__name__, guarded.cr_code) == (plain.__name__, plain.cr_code)
        finally:
            plain.close()
            guarded.close()


class TestGeneratorProtocol:
    """anext()/asend()/athrow()/aclose() and next()/send()/throw()/close() pass through."""

    def test_async_generator_methods(self, run: Any) -> None:
        """Values sent in come back, a thrown ValueError is handled, aclose() ends it."""

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []
            gen = provider(log)
            steps: list[Any] = [await gen.__anext__(), await gen.asend("a")]
            thrown = ValueError("in")
            steps.append(await gen.athrow(thrown))
            steps.append(await gen.asend("b"))
            steps.append(await gen.aclose())
            try:
                await gen.asend("c")
            except StopAsyncIteration:
                steps.append("StopAsyncIteration")
            return steps, summary(log, thrown)

        assert same(run, scenario, agen_echo) == (
            ["first", ("got", "a"), "recovered", ("got", "b"), None, "StopAsyncIteration"],
            [("ValueError", "in", True), "closing"],
        )

    def test_athrow_unhandled(self, run: Any) -> None:
        """An exception thrown in and not handled comes back out as the same object."""

        async def scenario(provider: Any) -> Any:
            gen = provider([])
            await gen.__anext__()
            thrown = KeyError("out")
            try:
                await gen.athrow(thrown)
            except KeyError as exc:
                return outcome(exc, thrown), gen.ag_frame is None

        caught, finished = same(run, scenario, agen_echo)
        assert caught["is_raised"]
        assert finished

    @needs_anext
    def test_anext_builtin(self, run: Any, async_maker: Any) -> None:
        """The anext() builtin, with and without a default, works on the result."""

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []
            gen = provider(async_maker, log)
            session = await anext(gen)  # noqa: F821 (3.10+)
            count = await session.scalar(COUNT)
            end = await anext(gen, "done")  # noqa: F821
            return type(session) is AsyncSession, count, end, log

        assert same(run, scenario, agen_db) == (True, 2, "done", ["enter", "finally"])

    def test_async_iter_is_self(self, run: Any) -> None:
        """`aiter(gen)` returns an iterator that yields the same values."""

        async def scenario(provider: Any) -> Any:
            gen = provider([])
            iterator = gen.__aiter__()
            first = await iterator.__anext__()
            await gen.aclose()
            return first, gen.ag_running

        assert same(run, scenario, agen_echo) == ("first", False)

    def test_generator_methods(self) -> None:
        """next()/send()/throw()/close() on a sync generator provider's result."""

        def scenario(provider: Any) -> Any:
            log: list[Any] = []
            gen = provider(log)
            thrown = ValueError("in")
            steps = [next(gen), gen.send("a"), gen.throw(thrown), gen.send("b"), gen.close()]
            steps.append(next(gen, "exhausted"))
            return steps, summary(log, thrown), iter(gen) is not None

        assert same_sync(scenario, gen_echo) == (
            ["first", ("got", "a"), "recovered", ("got", "b"), None, "exhausted"],
            [("ValueError", "in", True), "closing"],
            True,
        )


class TestContextlibHandoff:
    """A generator provider called by contextlib (``asynccontextmanager(provider)()``,
    what FastAPI's Depends() does) is driven by contextlib alone, which cannot misuse
    it: mode "on" hands contextlib the generator itself, nothing in between."""

    def test_async_generator_under_asynccontextmanager(self, run: Any, async_maker: Any) -> None:
        async def scenario(provider: Any) -> Any:
            log: list[Any] = []
            cm = contextlib.asynccontextmanager(provider)(async_maker, log)
            native = type(cm.gen) is types.AsyncGeneratorType
            async with cm as session:
                count = await session.scalar(COUNT)
            failure = RuntimeError("in the body")
            try:
                async with contextlib.asynccontextmanager(provider)(async_maker, log):
                    raise failure
            except RuntimeError as exc:
                caught = outcome(exc, failure)
            return native, type(session) is AsyncSession, count, summary(log, failure), caught

        native, is_session, count, log, caught = same(run, scenario, agen_db)
        assert (native, is_session, count) == (True, True, 2)
        failed = ("RuntimeError", "in the body", True)
        assert log == ["enter", "finally", "enter", failed, "finally"]
        assert caught["is_raised"]

    def test_generator_under_contextmanager(self, sync_maker: Any) -> None:
        def scenario(provider: Any) -> Any:
            log: list[Any] = []
            cm = contextlib.contextmanager(provider)(sync_maker, log)
            native = type(cm.gen) is types.GeneratorType
            with cm as session:
                count = session.execute(COUNT).scalar_one()
            return native, isinstance(session, Session), count, log

        assert same_sync(scenario, gen_db) == (True, True, 2, ["enter", "finally"])

    def test_called_directly_it_is_still_guarded(self, run: Any, async_maker: Any) -> None:
        """The hand-off depends on who calls: the same provider called by the user
        still gets a proxy, and the wrong protocol is still a ProtocolError."""
        guarded = protoguard.provider(agen_db)

        async def scenario() -> Any:
            contextlib.asynccontextmanager(guarded)(async_maker, [])  # dropped unentered
            with pytest.raises(protoguard.ProtocolError) as info:
                async with guarded(async_maker, []):  # type: ignore[attr-defined]
                    pass  # pragma: no cover
            return info.value.code

        assert run(scenario()) == "PG102"

    def test_strict_mode_still_watches_the_session(self, run: Any, async_maker: Any) -> None:
        """Strict mode does not hand over: it watches the session contextlib gets."""
        guarded = protoguard.provider(mode="strict")(agen_db)

        async def scenario() -> Any:
            cm = contextlib.asynccontextmanager(guarded)(async_maker, [])
            async with cm as session:
                pass
            with pytest.raises(protoguard.ProtocolError) as info:
                await session.execute(COUNT)
            return type(cm.gen) is types.AsyncGeneratorType, info.value.code

        assert run(scenario()) == (False, "PG203")


class TestCoroutineScheduling:
    """A coroutine provider's result can be scheduled like any coroutine."""

    def test_create_task(self, run: Any, async_maker: Any) -> None:
        """asyncio.create_task(make_session()) runs it and gives the session."""

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []
            session = await asyncio.create_task(provider(async_maker, log))
            try:
                return type(session) is AsyncSession, await session.scalar(COUNT), log
            finally:
                await session.close()

        assert same(run, scenario, coro_db) == (True, 2, ["called"])

    def test_gather(self, run: Any, async_maker: Any) -> None:
        """asyncio.gather of two calls gives two distinct sessions."""

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []
            first, second = await asyncio.gather(
                provider(async_maker, log), provider(async_maker, log)
            )
            try:
                return first is not second, [await s.scalar(COUNT) for s in (first, second)]
            finally:
                await first.close()
                await second.close()

        assert same(run, scenario, coro_db) == (True, [2, 2])

    def test_wait_for_and_ensure_future(self, run: Any, async_maker: Any) -> None:
        """asyncio.wait_for and asyncio.ensure_future accept the result."""

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []
            first = await asyncio.wait_for(provider(async_maker, log), timeout=None)
            second = await asyncio.ensure_future(provider(async_maker, log))
            for session in (first, second):
                await session.close()
            return type(first) is AsyncSession, type(second) is AsyncSession

        assert same(run, scenario, coro_db) == (True, True)

    def test_gather_exception(self, run: Any) -> None:
        """An exception from a gathered coroutine provider is the same object."""
        raised = ValueError("no session")

        async def failing() -> Any:
            await asyncio.sleep(0)
            raise raised

        async def scenario(provider: Any) -> Any:
            results = await asyncio.gather(provider(), return_exceptions=True)
            return [r is raised for r in results]

        assert same(run, scenario, failing) == [True]

    def test_driven_by_hand(self) -> None:
        """send(None)/close() on the coroutine work as on the unguarded one."""

        async def two_steps() -> str:
            await asyncio.sleep(0)
            return "done"

        def scenario(provider: Any) -> Any:
            coro = provider()
            first = coro.send(None)
            try:
                coro.send(None)
            except StopIteration as stop:
                return first, stop.value

        assert same_sync(scenario, two_steps) == (None, "done")


class TestModeOff:
    """In mode "off" a guarded provider returns exactly the unguarded types."""

    @pytest.mark.parametrize("kind", KINDS)
    def test_override_off(self, kind: str, async_maker: Any, sync_maker: Any) -> None:
        """Under override(mode="off"), the result's type is the unguarded one, exactly."""
        make, provider = _results(kind, async_maker, sync_maker)
        guarded_provider = protoguard.provider(provider)
        plain = make(provider)
        with protoguard.override(mode="off"):
            guarded = make(guarded_provider)
        try:
            assert type(guarded) is type(plain)
        finally:
            _dispose(plain)
            _dispose(guarded)

    @pytest.mark.parametrize("func", [*DOCUMENTED, plain_db], ids=lambda f: f.__name__)
    def test_decorated_off_is_unchanged(self, func: Any) -> None:
        """provider(mode="off") returns the input, but an @asynccontextmanager or
        @contextmanager function keeps its guard (Depends() needs it; see TestModeOff in
        test_fastapi), which then hands out contextlib's own object. Decoration under
        override(mode="off") guards: the block is for the code inside it."""
        off = protoguard.provider(mode="off")(func)
        if func in (documented_acm, documented_cm):
            assert off is not func
            assert off.__wrapped__ is func
        else:
            assert off is func
        with protoguard.override(mode="off"):
            assert protoguard.provider(func) is not func

    def test_sessionmaker_off(self, async_maker: Any) -> None:
        """A session maker decorated in mode "off" is the maker itself."""
        assert protoguard.provider(mode="off")(async_maker) is async_maker


class TestIdempotence:
    """Guarding a guarded provider changes nothing."""

    @pytest.mark.parametrize("func", [*DOCUMENTED, plain_db], ids=lambda f: f.__name__)
    def test_function(self, func: Any) -> None:
        """provider(provider(f)) is provider(f). New options guard f again with them."""
        once = protoguard.provider(func)
        assert protoguard.provider(once) is once
        assert protoguard.provider(name=once.__protoguard_provider__.name)(once) is once
        renamed = protoguard.provider(name="other")(once)
        assert renamed is not once
        assert renamed.__protoguard_provider__.name == "other"
        assert renamed.__wrapped__ is func

    def test_session_makers(self, async_maker: Any, sync_maker: Any) -> None:
        """The same for async_sessionmaker and sessionmaker."""
        for maker in (async_maker, sync_maker):
            once = protoguard.provider(maker)
            assert protoguard.provider(once) is once

    @pytest.mark.parametrize("bound", [False, True], ids=["function", "method"])
    @pytest.mark.parametrize("kind", ["asynccontextmanager", "async generator"])
    def test_a_new_mode_applies(self, run: Any, async_maker: Any, kind: str, bound: bool) -> None:
        """provider(mode="strict") on a provider guarded in mode on (a library's) is
        that provider in strict mode, not the one given, its mode silently kept."""

        class Repo:
            @protoguard.provider
            @contextlib.asynccontextmanager
            async def cm(self) -> Any:
                async with async_maker() as session:
                    yield session

            @protoguard.provider
            async def gen(self) -> Any:
                async with async_maker() as session:
                    yield session

        repo = Repo()
        once = (repo.cm if kind == "asynccontextmanager" else repo.gen) if bound else None
        if once is None:
            once = protoguard.provider(acm_db if kind == "asynccontextmanager" else agen_db)
        strict = protoguard.provider(mode="strict")(once)
        assert strict is not once
        args = () if bound else (async_maker, [])

        async def kept_past_its_block(provider: Any) -> Any:
            if kind == "asynccontextmanager":
                async with provider(*args) as session:
                    pass
            else:
                async for session in provider(*args):  # noqa: B007 - used after the loop
                    pass
            try:
                return (await session.execute(COUNT)).scalar_one()
            finally:
                await session.close()

        assert run(kept_past_its_block(once)) == 2  # mode on: no strict checks
        with pytest.raises(protoguard.ProtocolError) as caught:
            run(kept_past_its_block(strict))
        assert caught.value.code == "PG203"

    def test_a_guarded_partial_guarded_again(self, run: Any, async_maker: Any) -> None:
        """A guarded partial of an @asynccontextmanager function, given a new mode, is
        still that context manager (its __wrapped__ is the generator beneath, for
        FastAPI, which is not what it guards)."""
        once = protoguard.provider(functools.partial(acm_db, async_maker, []))
        again = protoguard.provider(mode="strict")(once)

        async def count() -> int:
            async with again() as session:
                return (await session.execute(COUNT)).scalar_one()

        assert run(count()) == 2

    def test_the_first_guards_options_are_kept(self, run: Any, async_maker: Any) -> None:
        """A new name keeps the first guard's mode and type; a new mode keeps its type."""
        lib = protoguard.provider(mode="strict", yields=AsyncSession)(agen_db)
        renamed = protoguard.provider(name="db")(lib)
        assert renamed.__protoguard_provider__.name == "db"
        strict_again = protoguard.provider(mode="strict")(lib)

        async def wrong_type() -> Any:
            yield "not a session"

        async def drain(result: Any) -> None:
            async for _ in result:
                pass

        for guarded in (renamed, strict_again):
            result = guarded(async_maker, [])
            assert type(result).__name__ == "StrictAsyncGeneratorProxy"
            run(drain(result))
        typed = protoguard.provider(yields=AsyncSession)(wrong_type)
        retyped = protoguard.provider(mode="strict")(typed)

        async def use() -> None:
            async for _ in retyped():
                pass

        with pytest.raises(protoguard.ProtocolError) as caught:
            run(use())
        assert caught.value.code == "PG205"

    def test_mode_off_on_a_guarded_provider(self) -> None:
        """provider(mode="off") on a guarded provider is the provider beneath."""
        assert protoguard.provider(mode="off")(protoguard.provider(agen_db)) is agen_db

    def test_mode_off_on_a_partial_of_a_guarded_provider(self) -> None:
        """provider(partial(guarded, ...), mode="off") is the partial of the provider
        beneath: as it was, a partial calling the strict guard, it stayed strict."""
        strict = protoguard.provider(mode="strict")(agen_db)
        off = protoguard.provider(mode="off")(functools.partial(strict, "acme"))
        assert type(off) is functools.partial
        assert off.func is agen_db
        assert off.args == ("acme",)

    def test_twice_behaves_as_unguarded(self, run: Any, async_maker: Any) -> None:
        """A provider guarded twice still rolls back and re-raises the same error."""

        async def scenario(provider: Any) -> Any:
            log: list[Any] = []
            raised = ValueError("boom")
            try:
                async with provider(async_maker, log) as session:
                    await session.execute(INSERT)
                    raise raised
            except ValueError as exc:
                return outcome(exc, raised), summary(log, raised), await rows(async_maker)

        plain = run(scenario(acm_db))
        twice = run(scenario(protoguard.provider(protoguard.provider(acm_db))))
        assert twice == plain
