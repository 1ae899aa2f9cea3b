"""Strict mode: each PG2xx finding on a real database, and its correct counterpart."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import gc
import inspect
import logging
import sys
import warnings
import weakref
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

import protoguard
from protoguard import ProtocolError, ProtocolWarning, ProviderRuntimeError, _lifecycle, _messages

from .conftest import COUNT, line_of

pytestmark = pytest.mark.usefixtures("_strict")


@pytest.fixture
def _strict() -> None:
    protoguard.configure(mode="strict")


@pytest.fixture
def providers(async_maker):
    """An @asynccontextmanager and an async generator provider that log their cleanup."""
    log: list[str] = []

    @protoguard.provider
    @contextlib.asynccontextmanager
    async def get_db():
        async with async_maker() as session:
            try:
                yield session
            finally:
                log.append("cm closed")

    @protoguard.provider
    async def get_gen():
        async with async_maker() as session:
            try:
                yield session
            finally:
                log.append("gen closed")

    return get_db, get_gen, log


def _codes() -> list[tuple[str, int]]:
    return [(f.code, f.count) for f in protoguard.findings()]


async def _two_requests(block: Any, use: Any) -> None:
    """Request A (task 'request-a') opens ``block()`` and keeps its session in a shared
    place until request B (task 'request-b', not started inside A's block) has called
    ``use(session)`` (awaited if it returns an awaitable): a session escaping its request."""
    shared: dict[str, Any] = {}
    ready, done = asyncio.Event(), asyncio.Event()

    async def request_a() -> None:
        async with block() as session:
            shared["session"] = session
            ready.set()
            await done.wait()

    async def request_b() -> None:
        await ready.wait()
        try:
            result = use(shared["session"])
            if inspect.isawaitable(result):
                await result
        finally:
            done.set()

    await asyncio.gather(
        asyncio.create_task(request_a(), name="request-a"),
        asyncio.create_task(request_b(), name="request-b"),
    )


class TestCorrectUse:
    """Correct code produces no finding in strict mode, and gets the real session."""

    def test_context_manager(self, run, providers) -> None:
        """`async with` runs queries and the provider's cleanup, with no finding."""
        get_db, _, log = providers

        async def main() -> int:
            async with get_db() as session:
                assert isinstance(session, AsyncSession)
                return (await session.execute(COUNT)).scalar_one()

        assert run(main()) == 2
        assert log == ["cm closed"]
        assert protoguard.findings() == []

    def test_generator_loop_to_the_end(self, run, providers) -> None:
        """An `async for` that runs to the end is no PG201."""
        _, get_gen, log = providers

        async def main() -> int:
            total = 0
            async for session in get_gen():
                total += (await session.execute(COUNT)).scalar_one()
            return total

        assert run(main()) == 2
        assert log == ["gen closed"]
        assert protoguard.findings() == []

    def test_sequential_use_in_one_task(self, run, providers) -> None:
        """Many calls one after the other in one task are fine."""
        get_db, _, _ = providers

        async def main() -> None:
            async with get_db() as session:
                for _ in range(3):
                    await session.execute(COUNT)
                await session.commit()

        run(main())
        assert protoguard.findings() == []

    def test_calls_made_first_and_awaited_in_one_task(self, run, providers) -> None:
        """Calls made before they are awaited, then awaited one after the other in the
        same task, in either order, are no finding."""
        get_db, _, _ = providers

        async def main() -> list[int]:
            async with get_db() as session:
                first, second = session.execute(COUNT), session.scalar(COUNT)
                later = (await second, (await first).scalar_one())
                third, fourth = session.scalar(COUNT), session.scalar(COUNT)
                return [*later, await third, await fourth]

        assert run(main()) == [2, 2, 2, 2]
        assert protoguard.findings() == []

    def test_a_call_never_awaited(self, run, providers) -> None:
        """A call dropped without await gets Python's own warning, naming the session's
        method as it would without protoguard, and the session's later calls work."""
        get_db, _, _ = providers

        async def main() -> int:
            async with get_db() as session:
                session.execute(COUNT)  # never awaited
                gc.collect()
                return (await session.execute(COUNT)).scalar_one()

        with pytest.warns(RuntimeWarning, match="'AsyncSession.execute' was never awaited"):
            assert run(main()) == 2
        assert protoguard.findings() == []

    def test_gather_over_separate_sessions(self, run, providers) -> None:
        """asyncio.gather over one session per task is fine."""
        get_db, _, _ = providers

        async def one() -> int:
            async with get_db() as session:
                return (await session.execute(COUNT)).scalar_one()

        async def main() -> list[int]:
            return await asyncio.gather(*(one() for _ in range(5)))

        assert run(main()) == [2] * 5
        assert protoguard.findings() == []

    def test_task_started_inside_the_block(self, run, providers) -> None:
        """A task started inside the provider's block may use its session (no PG206)."""
        get_db, _, _ = providers

        async def main() -> int:
            async with get_db() as session:
                return (await asyncio.gather(session.execute(COUNT)))[0].scalar_one()

        assert run(main()) == 2
        assert protoguard.findings() == []


class TestSessionsPassedOn:
    """A watched session handed to a second guarded provider, a session from a guarded
    maker entered again, maker.begin(): correct uses, no finding; the scope still ends
    where it should."""

    def test_an_async_helper_given_the_watched_session(self, run, providers) -> None:
        """A guarded @asynccontextmanager transaction helper handed the session of another
        guarded provider leaves that provider's block open: the session is used after the
        helper's block, inside the outer one, with no finding; after the outer block it
        is PG203."""
        get_db, _, _ = providers

        @protoguard.provider
        @contextlib.asynccontextmanager
        async def transaction(session):
            async with session.begin():
                yield session

        async def main() -> tuple[int, Any]:
            async with get_db() as db:
                async with transaction(db) as tx:
                    assert tx is db
                    await tx.execute(COUNT)
                return (await db.execute(COUNT)).scalar_one(), db

        count, db = run(main())
        assert count == 2
        assert protoguard.findings() == []
        with pytest.raises(ProtocolError) as info:
            run(db.execute(COUNT))  # the outer block has ended
        assert info.value.code == "PG203"

    def test_sync_helpers_given_the_watched_session(self, sync_maker) -> None:
        """The same for a sync @contextmanager helper and a sync generator helper in a
        `for` loop."""

        @protoguard.provider
        @contextlib.contextmanager
        def get_db():
            with sync_maker() as session:
                yield session

        @protoguard.provider
        @contextlib.contextmanager
        def transaction(session):
            with session.begin():
                yield session

        @protoguard.provider
        def each_transaction(session):
            with session.begin():
                yield session

        with get_db() as db:
            with transaction(db) as tx:
                tx.execute(COUNT)
            assert db.execute(COUNT).scalar_one() == 2
            db.commit()  # ends the transaction the query began, for the next helper's
            for tx in each_transaction(db):
                tx.execute(COUNT)
            assert db.execute(COUNT).scalar_one() == 2
        assert protoguard.findings() == []
        with pytest.raises(ProtocolError) as info:
            db.execute(COUNT)
        assert info.value.code == "PG203"

    def test_no_autoflush(self, run, async_maker, sync_maker) -> None:
        """`with session.no_autoflush:` works on a watched session (a callable attribute
        that is not a method is handed out as it is)."""

        @protoguard.provider
        @contextlib.asynccontextmanager
        async def get_db():
            async with async_maker() as session:
                yield session

        @protoguard.provider
        @contextlib.contextmanager
        def get_sync_db():
            with sync_maker() as session:
                yield session

        async def main() -> int:
            async with get_db() as db:
                with db.no_autoflush:
                    return (await db.execute(COUNT)).scalar_one()

        assert run(main()) == 2
        with get_sync_db() as db, db.no_autoflush:
            assert db.execute(COUNT).scalar_one() == 2
        assert protoguard.findings() == []

    def test_a_maker_session_entered_again(self, run, async_maker, sync_maker) -> None:
        """A session from a guarded maker entered in one block after another (a worker
        that keeps its session and enters it per job, as SQLAlchemy allows): each block
        is a scope of its own, and the use after the last one is PG203."""
        maker, sync = protoguard.provider(async_maker), protoguard.provider(sync_maker)

        async def main() -> list[int]:
            session, counts = maker(), []
            for _ in range(2):
                async with session as db:
                    counts.append((await db.execute(COUNT)).scalar_one())
            return counts

        assert run(main()) == [2, 2]
        session = sync()
        for _ in range(2):
            with session as db:
                assert db.execute(COUNT).scalar_one() == 2
        assert protoguard.findings() == []
        with pytest.raises(ProtocolError) as info:
            db.execute(COUNT)
        assert info.value.code == "PG203"

    def test_a_maker_session_entered_again_keeps_pg206(self, run, async_maker) -> None:
        """Worker A enters a kept session once and leaves; worker B enters it in a block of
        its own; A's use during B's block is PG206, naming B's 'async with' line (A's ended
        block is not B's). Entering again and again keeps one open block per task."""
        maker = protoguard.provider(async_maker)
        protoguard.configure(action="log")

        async def scenario() -> int:
            shared = maker()
            left, held, done = asyncio.Event(), asyncio.Event(), asyncio.Event()

            async def worker_a() -> None:
                async with shared as db:
                    await db.execute(COUNT)
                left.set()
                await held.wait()
                await shared.execute(COUNT)  # during B's block
                done.set()

            async def worker_b() -> None:
                await left.wait()  # A's block has ended, however long its query took
                async with shared as db:  # worker B opens its block
                    await db.execute(COUNT)
                    held.set()
                    await done.wait()

            await asyncio.gather(
                asyncio.create_task(worker_a(), name="A"), asyncio.create_task(worker_b(), name="B")
            )
            for _ in range(50):
                async with shared:
                    pass
            return len(_lifecycle._scopes.get())

        assert run(scenario()) == 1
        (finding,) = protoguard.findings()
        assert finding.code == "PG206"
        assert finding.call_site.lineno == line_of(__file__, "# during B's block")
        opened = line_of(__file__, "# worker B opens its block")
        assert f"opened in task 'B' at {__file__}:{opened} and" in finding.message

    def test_a_coroutine_handed_the_watched_session(self, run, providers) -> None:
        """A guarded coroutine provider handed the watched session and run in a task of its
        own (gather) gives it back as it is: the session still belongs to its block, and
        its use from another request's task is PG206."""
        get_db, _, _ = providers
        protoguard.configure(action="log")

        @protoguard.provider
        async def tenant_session(db):
            return db

        @contextlib.asynccontextmanager
        async def block() -> Any:
            async with get_db() as db:
                (same,) = await asyncio.gather(tenant_session(db))
                assert same is db
                yield same

        run(_two_requests(block, lambda session: session.execute(COUNT)))
        assert [finding.code for finding in protoguard.findings()] == ["PG206"]

    def test_maker_begin(self, run, async_maker, sync_maker) -> None:
        """`maker.begin()` on a guarded maker hands out the watched session: the block
        commits, the session's use after it is PG203, and a task from another block
        is PG206, for async and sync makers."""
        maker, sync = protoguard.provider(async_maker), protoguard.provider(sync_maker)
        insert = text("INSERT INTO users (name) VALUES ('ida')")

        async def main() -> Any:
            block = maker.begin()
            assert copy.copy(block).async_session is block.async_session
            async with block as db:
                assert block.async_session is db  # SQLAlchemy's block's attributes too
                await db.execute(insert)
            return db

        db = run(main())
        with pytest.raises(ProtocolError) as info:
            run(db.execute(COUNT))  # PG203 after maker.begin()
        assert info.value.code == "PG203"
        assert info.value.call_site == (__file__, line_of(__file__, "# PG203 after maker.begin()"))
        with sync.begin() as sync_db:
            assert sync_db.execute(COUNT).scalar_one() == 3  # committed by the async block
            sync_db.execute(insert)
        with pytest.raises(ProtocolError) as info:
            sync_db.execute(COUNT)
        assert info.value.code == "PG203"
        with sync_maker() as plain:
            assert plain.execute(COUNT).scalar_one() == 4  # committed by the sync block

        with pytest.raises(ProtocolError) as info:
            run(_two_requests(maker.begin, lambda session: session.execute(COUNT)))
        assert info.value.code == "PG206"

    def test_maker_begin_in_mode_on_is_the_makers_own(self, run, async_maker) -> None:
        """In mode "on", maker.begin() hands out the session itself, as unguarded."""
        maker = protoguard.provider(async_maker, mode="on")

        async def main() -> bool:
            async with maker.begin() as db:
                return type(db) is AsyncSession

        assert run(main())


class TestPG201:
    """An async generator provider left early."""

    @pytest.mark.parametrize(
        ("loop", "fix"),
        [
            (
                "async for db in get_db(tenant, read_only=True):  # a comment",
                "async with contextlib.asynccontextmanager(get_db)(tenant, read_only=True) as db:",
            ),
            (
                "async for db in deps.get_db():",
                "async with contextlib.asynccontextmanager(deps.get_db)() as db:",
            ),
            (  # a header spread over lines: the whole statement, on one line
                "async for db in get_db(\n        tenant,\n    ):\n        pass",
                "async with contextlib.asynccontextmanager(get_db)(tenant) as db:",
            ),
            (  # a file that does not parse: the line alone, its arguments unknown
                "async for db in get_db(",
                "async with contextlib.asynccontextmanager(get_db)(...) as session:",
            ),
        ],
    )
    def test_fix_rewrites_the_loop(self, tmp_path, loop: str, fix: str) -> None:
        """PG201's fix is the user's loop entering the same provider once, as Depends()
        does: same name, same arguments, same variable."""
        source = tmp_path / "handler.py"
        source.write_text(f"async def handler(tenant):\n    {loop}\n")
        info = protoguard.ProviderInfo("get_db", "async generator", None, None)
        site = protoguard.CallSite(str(source), 2)
        assert _messages.enter_once(info, site) == fix

    def test_loop_in_an_async_generator_stepped_by_other_tasks(self, run, providers) -> None:
        """A loop inside an async generator (a pytest-asyncio fixture) whose steps run in
        tasks of their own: the task that began the loop ends with the loop suspended,
        not left. No PG201, and the provider is not closed behind the loop's back."""
        _, get_gen, log = providers

        async def fixture() -> Any:
            async for session in get_gen():
                yield session

        async def main() -> list[str]:
            steps = fixture()

            async def step() -> Any:
                return await steps.__anext__()

            await asyncio.create_task(step())  # set-up, in a task that then ends
            for _ in range(3):
                await asyncio.sleep(0)  # the ended task's callbacks run
            assert log == []
            with pytest.raises(StopAsyncIteration):
                await asyncio.create_task(step())  # tear-down
            return log

        assert run(main()) == ["gen closed"]
        gc.collect()
        assert protoguard.findings() == []

    def test_return_inside_the_loop(self, run, providers, async_engine) -> None:
        """Returning from inside `async for` is reported at the loop, and cleanup runs."""
        protoguard.configure(action="warn")
        _, get_gen, log = providers

        async def handler() -> int:
            async for session in get_gen():  # PG201 here
                return (await session.execute(COUNT)).scalar_one()
            raise AssertionError("unreachable")

        async def main() -> int:
            with pytest.warns(ProtocolWarning, match=r"\[PG201\]") as caught:
                result = await handler()
            for _ in range(400):  # the provider's cleanup is scheduled on the loop
                await asyncio.sleep(0.005)
                if log and async_engine.pool.checkedout() == 0:
                    break
            assert async_engine.pool.checkedout() == 0
            assert caught[0].filename == __file__
            assert caught[0].lineno == line_of(__file__, "# PG201 here")
            # The loop rewritten, the provider left as it is (not made an
            # @asynccontextmanager function, which Depends() would then refuse).
            # The fix is code; what it is, and the import it needs, are said beside it.
            assert (
                "  fix: async with contextlib.asynccontextmanager(get_gen)() as session:"
                "  # import contextlib"
            ) in str(caught[0].message).splitlines()
            assert "Enter the provider once, as it is, as Depends() does" in str(caught[0].message)
            return result

        assert run(main()) == 2
        assert log == ["gen closed"]
        assert _codes() == [("PG201", 1)]

    def test_session_returned_out_of_the_loop_and_used(self, run, providers) -> None:
        """`async for db in get_gen(): return db`, then a use of db: PG201 for the loop,
        and PG203 at the use (the session is past its block: its cleanup is scheduled)."""
        protoguard.configure(action="log")
        _, get_gen, log = providers

        async def helper() -> Any:
            async for db in get_gen():
                return db
            raise AssertionError("unreachable")

        async def main() -> None:
            db = await helper()
            await db.execute(COUNT)  # PG203 after the loop was left
            await db.close()

        run(main())
        assert log == ["gen closed"]
        assert _codes() == [("PG201", 1), ("PG203", 1)]
        assert protoguard.findings()[1].call_site == (
            __file__,
            line_of(__file__, "# PG203 after the loop was left"),
        )

    @pytest.mark.parametrize("leave", ["return", "break"])
    def test_sync_loop_left_then_the_session_used(self, sync_maker, leave: str) -> None:
        """A sync generator provider's loop left early: Python closes the generator at
        once and its cleanup runs (no PG201 for a sync generator), and the session it
        handed out is past its block: a use of it is PG203, with no connection left out."""
        protoguard.configure(action="log")
        closed = []

        @protoguard.provider(mode="strict")
        def get_db() -> Any:
            with sync_maker() as session:
                try:
                    yield session
                finally:
                    closed.append(True)

        def helper() -> Any:
            for db in get_db():
                if leave == "return":
                    return db
                break
            return db

        db = helper()
        assert closed == [True]
        db.execute(COUNT)  # PG203 after a sync loop
        db.close()
        assert _codes() == [("PG203", 1)]
        assert protoguard.findings()[0].call_site == (
            __file__,
            line_of(__file__, "# PG203 after a sync loop"),
        )

    @pytest.mark.parametrize("referenced", [False, True], ids=["collected", "referenced"])
    def test_left_as_asyncio_run_ends(self, run, providers, async_engine, referenced) -> None:
        """The loop left by a return in asyncio.run()'s own task, which ends the run at
        once: the close protoguard schedules is cancelled with the loop's other tasks
        before it starts, not inside the provider's cleanup, which then runs whole: the
        connection is back in the pool when asyncio.run() returns, as without protoguard.
        (PG201 comes from the proxy's collection, or, still referenced, the task's end.)"""
        protoguard.configure(action="log")
        _, get_gen, log = providers
        kept: list[Any] = []

        async def main() -> int:
            sessions = get_gen()
            if referenced:
                kept.append(sessions)
            async for session in sessions:
                return (await session.execute(COUNT)).scalar_one()
            raise AssertionError("unreachable")

        assert run(main()) == 2
        assert log == ["gen closed"]
        assert async_engine.pool.checkedout() == 0
        assert _codes() == [("PG201", 1)]

    def test_raise_goes_to_unraisablehook(self, run, providers, monkeypatch) -> None:
        """With action "raise", a finding made at collection goes to sys.unraisablehook."""
        _, get_gen, _ = providers
        seen: list[BaseException] = []
        monkeypatch.setattr(sys, "unraisablehook", lambda args: seen.append(args.exc_value))

        async def main() -> None:
            async for session in get_gen():
                await session.execute(COUNT)
                break
            await asyncio.sleep(0.05)  # the loop goes on, as a server's does

        run(main())
        gc.collect()
        assert [e.code for e in seen if isinstance(e, ProtocolError)] == ["PG201"]
        assert _codes() == [("PG201", 1)]


def _most_statements_at_once(async_maker: Any) -> list[int]:
    """A one-item list that holds, as the test runs, the most SQL statements in flight at
    once on the maker's engine (read from SQLAlchemy's cursor events)."""
    in_flight: list[object] = []
    most: list[int] = [0]

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        in_flight.append(cursor)
        most[0] = max(most[0], len(in_flight))

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        in_flight.remove(cursor)

    engine = async_maker.kw["bind"].sync_engine
    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    return most


class TestPG202:
    """One session used by two tasks at once."""

    def test_concurrent_execute(self, run, providers) -> None:
        """asyncio.gather of two calls on one session is PG202 naming both tasks."""
        get_db, _, _ = providers

        async def main() -> None:
            async with get_db() as session:
                await asyncio.gather(session.execute(COUNT), session.execute(COUNT))

        with pytest.raises(ProtocolError) as info:
            run(main())
        assert info.value.code == "PG202"
        assert str(info.value).count("task 'Task-") == 2
        assert _codes() == [("PG202", 1)]

    def test_concurrent_execute_and_commit(self, run, providers) -> None:
        """A session that already holds a connection: execute + commit at once (SQLAlchemy
        itself says nothing here)."""
        get_db, _, _ = providers

        async def main() -> None:
            async with get_db() as session:
                await session.execute(COUNT)  # now it holds a connection
                await asyncio.gather(
                    session.execute(text("INSERT INTO users (name) VALUES ('x')")),
                    session.commit(),
                )

        with pytest.raises(ProtocolError, match=r"\[PG202\]"):
            run(main())

    def test_call_made_first_and_awaited_second(self, run, providers) -> None:
        """Two calls made first and gathered in the other order, on a session that holds
        a connection (SQLAlchemy is silent then): PG202 at the call that reached the
        session second, naming both tasks."""
        get_db, _, _ = providers

        async def main() -> None:
            async with get_db() as session:
                await session.execute(COUNT)
                first = session.execute(COUNT)  # PG202 made first, run second
                second = session.execute(COUNT)
                await asyncio.gather(second, first)

        with pytest.raises(ProtocolError) as info:
            run(main())
        assert info.value.code == "PG202"
        line = line_of(__file__, "# PG202 made first, run second")
        assert info.value.call_site == (__file__, line)
        assert str(info.value).count("task 'Task-") == 2
        assert _codes() == [("PG202", 1)]

    def test_second_call_cancelled_while_it_waits(self, run, providers, monkeypatch) -> None:
        """The second task's call times out while it waits for the first to finish:
        PG202 all the same (to sys.unraisablehook: the cancellation goes on), and the
        first call's result is whole."""
        get_db, _, _ = providers
        slow = text(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000)"
            " SELECT count(*) FROM c"
        )

        async def main() -> tuple[int, str]:
            started = asyncio.Event()  # in the loop: Python 3.9 binds it on creation
            async with get_db() as session:

                async def first() -> int:
                    started.set()
                    return int((await session.execute(slow)).scalar_one())

                async def second() -> str:
                    await started.wait()
                    try:
                        await asyncio.wait_for(session.execute(COUNT), 0.001)  # PG202 cancelled
                    except asyncio.TimeoutError:
                        return "timed out"
                    return "ran"

                return await asyncio.gather(first(), second())  # type: ignore[return-value]

        seen: list[Any] = []
        monkeypatch.setattr(sys, "unraisablehook", lambda args: seen.append(args.exc_value))
        assert run(main()) == [300000, "timed out"]
        assert [error.code for error in seen] == ["PG202"]
        (finding,) = protoguard.findings()
        assert finding.code == "PG202"
        assert finding.call_site == (__file__, line_of(__file__, "# PG202 cancelled"))
        assert "cancelled while protoguard had it wait" in finding.message

    def test_gather_through_a_guarded_session_maker(self, run, async_maker) -> None:
        """A session from a guarded async_sessionmaker is checked the same way."""
        maker = protoguard.provider(async_maker)

        async def main() -> None:
            async with maker() as session:
                await asyncio.gather(session.execute(COUNT), session.scalar(COUNT))  # PG202 maker

        with pytest.raises(ProtocolError) as info:
            run(main())
        assert info.value.code == "PG202"
        assert info.value.call_site == (__file__, line_of(__file__, "# PG202 maker"))

    @pytest.mark.parametrize("action", ["warn", "log"])
    def test_calls_never_overlap_whatever_the_action(
        self, run, providers, async_maker, action
    ) -> None:
        """With an action that lets the code go on, each later call waits for the one in
        flight: the statements never overlap on the connection, all give their results,
        and each waiting call is one finding."""
        protoguard.configure(action=action)
        get_db, _, log = providers
        most = _most_statements_at_once(async_maker)

        async def main() -> list[int]:
            async with get_db() as session:
                results = await asyncio.gather(
                    session.execute(COUNT), session.execute(COUNT), session.execute(COUNT)
                )
                return [result.scalar_one() for result in results]

        with contextlib.ExitStack() as stack:
            if action == "warn":
                stack.enter_context(pytest.warns(ProtocolWarning, match=r"\[PG202\]"))
            assert run(main()) == [2, 2, 2]
        assert most == [1]
        assert _codes() == [("PG202", 2)]
        assert log == ["cm closed"]

    @pytest.mark.parametrize("action", ["raise", "log"])
    def test_a_task_calls_while_the_owner_awaits_a_call(
        self, run, providers, async_maker, action
    ) -> None:
        """The owner awaits a call and a task started in the block calls the session
        meanwhile: PG202 naming both tasks, at the task's line; with an action that lets
        it go on, the task's call waits for the owner's to finish."""
        protoguard.configure(action=action)
        get_db, _, _ = providers
        most = _most_statements_at_once(async_maker)

        async def main() -> list[int]:
            async with get_db() as session:
                await session.execute(COUNT)  # it holds a connection: SQLAlchemy is silent

                async def audit() -> int:
                    return int((await session.execute(COUNT)).scalar_one())  # PG202 audit

                task = asyncio.create_task(audit(), name="audit")
                mine = int((await session.execute(COUNT)).scalar_one())
                return [mine, await task]

        if action == "raise":
            with pytest.raises(ProtocolError) as info:
                run(main())
            assert info.value.code == "PG202"
            assert info.value.call_site == (__file__, line_of(__file__, "# PG202 audit"))
            assert "task 'audit'" in str(info.value)
            assert str(info.value).count("task '") == 2
        else:
            assert run(main()) == [2, 2]
            assert _codes() == [("PG202", 1)]
        assert most == [1]

    def test_a_sync_method_while_another_task_is_inside_a_call(self, run, providers) -> None:
        """A task calls a sync method (`expunge_all`) while the owner awaits a call: PG202
        at the task's line, naming both tasks; such a call cannot wait, so the message
        says so instead of "let the first call finish"."""
        get_db, _, _ = providers

        async def main() -> None:
            async with get_db() as session:
                await session.execute(COUNT)

                async def tidy() -> None:
                    session.expunge_all()  # PG202 sync

                task = asyncio.create_task(tidy(), name="tidy")
                await session.execute(COUNT)  # tidy runs while this call waits on aiosqlite
                await task

        with pytest.raises(ProtocolError) as info:
            run(main())
        assert info.value.code == "PG202"
        assert info.value.call_site == (__file__, line_of(__file__, "# PG202 sync"))
        assert "'.expunge_all' from task 'tidy' while task 'Task-" in str(info.value)
        assert "'.expunge_all' is a sync method, so it cannot wait for that call to finish." in (
            str(info.value)
        )

    def test_an_unawaited_call_is_still_checked(self, run, providers) -> None:
        """A call the owner makes and hands to a task instead of awaiting: the owner's
        next call, while the task is inside it, is PG202 at the owner's line."""
        get_db, _, _ = providers

        async def main() -> None:
            async with get_db() as session:
                await session.execute(COUNT)
                task = asyncio.create_task(session.execute(COUNT))
                await asyncio.sleep(0)  # the task is inside its call now
                try:
                    await session.commit()  # PG202 owner
                finally:
                    await task

        with pytest.raises(ProtocolError) as info:
            run(main())
        assert info.value.code == "PG202"
        assert info.value.call_site == (__file__, line_of(__file__, "# PG202 owner"))


class TestPG203:
    """A session used after its provider's scope exited."""

    @pytest.mark.parametrize("kind", ["asynccontextmanager", "async generator"])
    def test_a_guarded_makers_session_names_the_provider(self, run, async_maker, kind) -> None:
        """Maker and provider both guarded (as provider.md suggests): the finding names
        the provider the user called and the line that opened its block, as with an
        unguarded maker, not the maker and a line inside the provider."""
        maker = protoguard.provider(async_maker)

        async def body() -> Any:
            async with maker() as session:
                yield session

        if kind == "asynccontextmanager":
            get_db = protoguard.provider(contextlib.asynccontextmanager(body))
        else:
            get_db = protoguard.provider(body)

        async def main() -> None:
            if kind == "asynccontextmanager":
                async with get_db() as db:  # the block opened here
                    pass
            else:
                async for db in get_db():  # noqa: B007 # the loop opened here
                    pass
            await db.execute(COUNT)  # used after it

        with pytest.raises(ProtocolError) as caught:
            run(main())
        error = caught.value
        marker = (
            "# the block opened here" if kind == "asynccontextmanager" else "# the loop opened here"
        )
        assert error.code == "PG203"
        assert error.provider.name.endswith("body")
        assert error.call_site.lineno == line_of(__file__, "# used after it")
        assert f"opened at {__file__}:{line_of(__file__, marker)}" in str(error)

    def test_a_guarded_makers_session_first_step_in_a_task_of_its_own(
        self, run, async_maker
    ) -> None:
        """The same provider whose first step runs in a task of its own (gather,
        wait_for before 3.12): the generator carries the block, no PG206."""
        maker = protoguard.provider(async_maker)

        @protoguard.provider
        async def get_db() -> Any:
            async with maker() as session:
                yield session

        async def main() -> int:
            sessions = get_db()
            (session,) = await asyncio.gather(asyncio.ensure_future(sessions.__anext__()))
            count = (await session.execute(COUNT)).scalar_one()
            with pytest.raises(StopAsyncIteration):
                await sessions.__anext__()
            return count

        assert run(main()) == 2
        assert protoguard.findings() == []

    def test_a_helper_handed_another_providers_session_keeps_its_name(
        self, run, async_maker
    ) -> None:
        """A unit of work's transaction helper that hands out the session it holds (not
        an argument of its call): the session stays the provider's that opened it."""

        @protoguard.provider
        @contextlib.asynccontextmanager
        async def get_db() -> Any:
            async with async_maker() as session:
                yield session

        class UnitOfWork:
            def __init__(self, session: Any) -> None:
                self.session = session

            @protoguard.provider
            @contextlib.asynccontextmanager
            async def transaction(self) -> Any:
                async with self.session.begin_nested():
                    yield self.session

        async def main() -> None:
            async with get_db() as session, UnitOfWork(session).transaction() as inner:
                await inner.execute(COUNT)
            await session.execute(COUNT)

        with pytest.raises(ProtocolError) as caught:
            run(main())
        assert caught.value.code == "PG203"
        assert caught.value.provider.name.endswith("get_db")

    def test_provider_work_after_its_yield_is_not_a_use(self, run, async_maker) -> None:
        """An async generator provider driven by contextlib (as Depends() drives it) whose
        code after 'yield' writes and commits: that begins a transaction after the
        caller's block, on the provider's own session, and is no finding."""

        @protoguard.provider
        async def get_gen():
            async with async_maker() as session:
                yield session
                await session.execute(text("INSERT INTO users (name) VALUES ('audit')"))
                await session.commit()

        async def main() -> int:
            async with contextlib.asynccontextmanager(get_gen)():
                pass
            async with async_maker() as check:
                return int((await check.execute(COUNT)).scalar_one())

        assert run(main()) == 3
        assert protoguard.findings() == []

    @pytest.mark.parametrize("driver", ["create_task", "gather"])
    def test_coroutine_provider_run_as_a_task(self, run, async_maker, driver) -> None:
        """A coroutine provider run by a task (create_task, gather) hands out a watched
        session too: used after its block, PG203. The task that made it does not own it,
        so the task that awaited the result uses it freely (no PG206)."""

        @protoguard.provider(mode="strict")
        async def make_session():
            return async_maker()

        async def main() -> int:
            if driver == "create_task":
                session = await asyncio.create_task(make_session())
            else:
                session, other = await asyncio.gather(make_session(), make_session())
                await other.close()
            async with session:
                count = int((await session.execute(COUNT)).scalar_one())
            await session.execute(COUNT)  # PG203 task-made
            return count  # pragma: no cover

        with pytest.raises(ProtocolError) as info:
            run(main())
        assert info.value.code == "PG203"
        assert info.value.call_site == (__file__, line_of(__file__, "# PG203 task-made"))
        assert _codes() == [("PG203", 1)]

    def test_use_after_async_with(self, run, providers) -> None:
        """Using the session after the block is PG203 at the use."""
        get_db, _, _ = providers

        async def main() -> None:
            async with get_db() as session:
                await session.execute(COUNT)
            await session.execute(COUNT)  # PG203 here

        with pytest.raises(ProtocolError) as info:
            run(main())
        assert info.value.code == "PG203"
        assert info.value.call_site == (__file__, line_of(__file__, "# PG203 here"))

    def test_looking_at_the_session_after_the_block(self, run, providers) -> None:
        """Calls that read the session's state or detach objects (in_transaction,
        get_transaction, expunge_all, ...) are no finding after the block: they cannot
        take a connection. A query after them still is PG203."""
        get_db, _, _ = providers

        async def main() -> Any:
            async with get_db() as db:
                await db.execute(COUNT)
            assert not db.in_transaction()
            assert not db.in_nested_transaction()
            assert db.get_transaction() is None
            db.expunge_all()
            db.expire_all()
            assert db.get_bind() is not None
            return db

        db = run(main())
        assert protoguard.findings() == []
        with pytest.raises(ProtocolError) as info:
            run(db.execute(COUNT))
        assert info.value.code == "PG203"

    def test_closing_the_session_after_the_block(self, run, providers) -> None:
        """close(), aclose() and contextlib.aclosing() after the block are no finding:
        closing is the remedy for a session kept too long, never a misuse itself."""
        get_db, _, _ = providers

        async def main() -> None:
            async with get_db() as db:
                await db.execute(COUNT)
            await db.close()
            await db.aclose()
            if sys.version_info >= (3, 10):  # contextlib.aclosing is new in 3.10
                async with contextlib.aclosing(db):
                    pass

        run(main())
        assert protoguard.findings() == []

    def test_detaching_objects_from_another_request_is_pg206(self, run, providers) -> None:
        """expunge_all() is harmless after the block, not from another request's task
        while the block is open: it changes that request's session (PG206)."""
        get_db, _, _ = providers
        with pytest.raises(ProtocolError) as info:
            run(_two_requests(get_db, lambda session: session.expunge_all()))
        assert info.value.code == "PG206"

    def test_use_after_generator_finished(self, run, providers) -> None:
        """Using the session from a finished `async for` is PG203."""
        _, get_gen, _ = providers

        async def main() -> None:
            async for session in get_gen():  # noqa: B007 - the leak is the point
                pass
            await session.execute(COUNT)

        with pytest.raises(ProtocolError, match=r"\[PG203\]"):
            run(main())

    def test_call_awaited_after_the_block(self, run, providers) -> None:
        """A call made in the block and awaited after it is PG203 when it is awaited,
        naming the line that made it; no connection is taken."""
        get_db, _, log = providers

        async def main() -> None:
            async with get_db() as session:
                pending = session.execute(COUNT)  # PG203 not awaited
            await pending

        with pytest.raises(ProtocolError) as info:
            run(main())
        assert info.value.code == "PG203"
        assert info.value.call_site == (__file__, line_of(__file__, "# PG203 not awaited"))
        assert log == ["cm closed"]
        assert _codes() == [("PG203", 1)]

    @pytest.mark.parametrize("kind", ["asynccontextmanager", "async generator"])
    def test_call_still_running_in_a_task(self, run, async_maker, kind) -> None:
        """A task started in the block whose call is still running when the block exits:
        PG203 at the block's exit, through sys.unraisablehook under action raise. (This
        provider does not close the session, so the running call is not disturbed.) The
        async generator is driven by contextlib, as Depends() drives it."""
        seen: list[Any] = []

        async def provider():
            yield async_maker()

        if kind == "asynccontextmanager":
            get_db = protoguard.provider(contextlib.asynccontextmanager(provider))
        else:
            get_db = contextlib.asynccontextmanager(protoguard.provider(provider))

        async def main() -> int:
            async with get_db() as session:
                task = asyncio.create_task(session.execute(COUNT))  # PG203 in a task
                await asyncio.sleep(0)  # the task begins its call
            count = (await task).scalar_one()
            await session.close()
            return count

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sys, "unraisablehook", seen.append)
            assert run(main()) == 2
        assert [hook.exc_value.code for hook in seen] == ["PG203"]
        assert seen[0].err_msg.endswith("made when the provider's block exited")
        assert seen[0].exc_value.call_site == (__file__, line_of(__file__, "# PG203 in a task"))
        assert "was still running when the provider's block" in str(seen[0].exc_value)
        assert str(seen[0].exc_value).count("task 'Task-") == 2

    def test_method_that_is_not_a_function(self, sync_maker) -> None:
        """A session method that is not a plain function (a partialmethod here) is
        watched too: it works in the block and is PG203 after it."""

        class CountingSession(Session):
            count_users = functools.partialmethod(Session.scalar, COUNT)

        @protoguard.provider
        @contextlib.contextmanager
        def get_db():
            with CountingSession(bind=sync_maker.kw["bind"]) as session:
                yield session

        with get_db() as session:
            assert session.count_users() == 2
        with pytest.raises(ProtocolError) as info:
            session.count_users()  # PG203 on a partialmethod
        assert info.value.code == "PG203"
        assert info.value.call_site == (__file__, line_of(__file__, "# PG203 on a partialmethod"))


class TestPG204:
    """A provider called and its result never used."""

    def test_dropped_context_manager(self, providers) -> None:
        """get_db() called and dropped is reported when collected, naming the call."""
        protoguard.configure(action="warn")
        get_db, _, _ = providers

        def drop() -> None:
            get_db()  # PG204 here

        with pytest.warns(ProtocolWarning, match=r"\[PG204\]") as caught:
            drop()
        gc.collect()
        assert caught[0].lineno == line_of(__file__, "# PG204 here")

    def test_dropped_generator(self, providers) -> None:
        """get_gen() called and dropped is reported too."""
        protoguard.configure(action="log")
        _, get_gen, _ = providers
        get_gen()
        gc.collect()
        assert _codes() == [("PG204", 1)]

    def test_generators_closed_before_they_started(self, run, providers, sync_maker) -> None:
        """A generator closed by hand before its first step (a program that gives up on
        the sessions it was about to take) was not forgotten: no PG204."""
        protoguard.configure(action="log")
        _, get_gen, _ = providers

        @protoguard.provider(mode="strict")
        def get_sync_gen() -> Any:
            with sync_maker() as session:
                yield session

        async def give_up() -> None:
            gens = [get_gen(), get_gen()]
            for gen in gens:
                await gen.aclose()

        run(give_up())
        get_sync_gen().close()
        gc.collect()
        assert protoguard.findings() == []

    def test_dropped_coroutine(self, run, async_maker) -> None:
        """A coroutine provider called and never awaited: PG204 naming the call, and the
        coroutine is closed, so Python's own "never awaited" warning does not repeat it."""
        protoguard.configure(action="log")

        @protoguard.provider
        async def make_session() -> AsyncSession:
            return async_maker()

        def drop() -> None:
            make_session()  # PG204 for a coroutine

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            drop()
            gc.collect()
        assert [str(w.message) for w in caught] == []
        assert _codes() == [("PG204", 1)]
        site = protoguard.findings()[0].call_site
        assert site == (__file__, line_of(__file__, "# PG204 for a coroutine"))
        assert "garbage-collected without being awaited" in protoguard.findings()[0].message

    def test_fix_for_a_call_inside_the_line(self, async_maker, providers) -> None:
        """The provider call handed to something else on its line (`pending.append(
        make_session())`): for a coroutine, the line with the call awaited where it is (it
        was `session = await pending.append(make_session())`, which awaits None); for a
        context manager or generator, which the line cannot keep, the provider's
        statement. Each fix is valid Python in an async def."""
        protoguard.configure(action="log")
        get_db, get_gen, _ = providers

        @protoguard.provider
        async def make_session() -> AsyncSession:
            return async_maker()

        class Box:
            def __init__(self, value: Any) -> None:
                self.value = value

        def drop(pending: list[Any]) -> None:
            pending.append(make_session())  # PG204: appended
            pending.extend([make_session() for _ in "ab"])  # PG204: comprehension
            pending.extend(list(make_session() for _ in "ab"))  # PG204: generator expression
            pending.append(Box(make_session()).value)  # PG204: argument
            pending.append(get_db())  # PG204: context manager
            pending.append(get_gen())  # PG204: async generator
            with contextlib.suppress(TypeError):
                make_session()["user"]  # PG204: subscript
            pending.clear()

        expected = {
            "appended": "pending.append(await make_session())",
            "comprehension": 'pending.extend([await make_session() for _ in "ab"])',
            # An await would make it an async generator expression.
            "generator expression": "session = await make_session()",
            "argument": "pending.append(Box(await make_session()).value)",
            "context manager": "async with get_db() as session:",
            "async generator": "async for session in get_gen():",
            "subscript": '(await make_session())["user"]',
        }
        drop([])
        gc.collect()
        found = {f.call_site: f for f in protoguard.findings()}
        assert {f.code for f in found.values()} == {"PG204"}
        for marker, fix in expected.items():
            site = (__file__, line_of(__file__, f"# PG204: {marker}"))
            # drop() is a plain def: an async fix says it needs an async def.
            note = (
                "  # needs an async def; drop() is a plain def"
                if "await" in fix or "async" in fix
                else ""
            )
            assert f"  fix: {fix}{note}" in found[site].message.splitlines(), marker
            body = fix + ("\n        pass" if fix.endswith(":") else "")
            compile(f"async def f():\n    {body}", "fix", "exec", dont_inherit=True)
        assert len(found) == len(expected)

    def test_async_def_note_in_a_lambda(self, run, async_maker, providers) -> None:
        """A call in a lambda's body, or in a comprehension or generator expression there,
        is run by the lambda, a plain function, whatever def it is in: the note says so,
        as PG1xx's does (it said the async def around it was fine, or named the plain def
        around it). A comprehension in the async def itself needs no note."""
        protoguard.configure(action="log")
        get_db, _, _ = providers

        @protoguard.provider
        async def make_session() -> AsyncSession:
            return async_maker()

        async def handler() -> None:
            (lambda: get_db())()  # PG204 note: lambda
            (lambda: [make_session() for _ in "a"])()  # PG204 note: comprehension in a lambda
            (lambda: list(make_session() for _ in "a"))()  # PG204 note: generator in a lambda
            [make_session() for _ in "a"]  # PG204 note: in the async def

        run(handler())
        gc.collect()
        found = {f.call_site: f for f in protoguard.findings()}
        lambda_note = "  # needs an async def; a lambda is a plain function"
        for marker, fix, note in [
            ("lambda", "async with get_db() as session:", lambda_note),
            ("comprehension in a lambda", "session = await make_session()", lambda_note),
            ("generator in a lambda", "session = await make_session()", lambda_note),
            ("in the async def", '[await make_session() for _ in "a"]', ""),
        ]:
            site = (__file__, line_of(__file__, f"# PG204 note: {marker}"))
            assert f"  fix: {fix}{note}" in found[site].message.splitlines(), marker
        assert len(found) == 4

    def test_awaited_coroutine_in_any_way_is_not_reported(self, run, async_maker) -> None:
        """A coroutine provider awaited directly, run as a task or by gather: no PG204.
        One closed by the caller unawaited is not reported either (it was dealt with)."""

        @protoguard.provider
        async def make_session() -> AsyncSession:
            return async_maker()

        async def main() -> int:
            sessions = [await make_session()]
            sessions.append(await asyncio.create_task(make_session()))
            sessions.extend(await asyncio.gather(make_session(), make_session()))
            for session in sessions:
                await session.close()
            make_session().close()
            return len(sessions)

        assert run(main()) == 4
        gc.collect()
        assert protoguard.findings() == []

    def test_misuse_is_not_reported_twice(self, run, providers) -> None:
        """A PG101 already raised for the object is not followed by a PG204."""
        get_db, _, _ = providers

        async def main() -> None:
            async for _ in get_db():
                pass

        with pytest.raises(ProtocolError, match=r"\[PG101\]"):
            run(main())
        gc.collect()
        assert protoguard.findings() == []


class TestPG205:
    """A provider that breaks its own protocol."""

    def test_zero_yields(self, run) -> None:
        """A provider that never yields: PG205, also a RuntimeError."""

        @protoguard.provider
        @contextlib.asynccontextmanager
        async def get_db():
            if False:
                yield

        async def main() -> None:
            async with get_db():
                pass

        with pytest.raises(ProviderRuntimeError, match=r"\[PG205\]") as info:
            run(main())
        assert isinstance(info.value, RuntimeError)

    def test_zero_yields_generator_under_contextlib(self, run) -> None:
        """An async generator provider that never yields, driven by contextlib as
        Depends() drives it: PG205 naming the provider (what needs the fix), raised
        where contextlib raises its own RuntimeError; with action "log", contextlib's
        own error, and the finding counted."""

        @protoguard.provider
        async def get_gen():  # never yields
            if False:
                yield

        async def main() -> None:
            async with contextlib.asynccontextmanager(get_gen)():
                pass

        with pytest.raises(ProviderRuntimeError, match="finished without yielding") as info:
            run(main())
        assert isinstance(info.value, RuntimeError)
        assert info.value.code == "PG205"
        assert info.value.call_site == (__file__, line_of(__file__, "# never yields") - 1)
        assert isinstance(info.value.__cause__, StopAsyncIteration)
        protoguard.configure(action="log")
        with pytest.raises(RuntimeError, match=r"^generator didn't yield$") as plain:
            run(main())
        assert not isinstance(plain.value, ProtocolError)
        assert _codes() == [("PG205", 2)]

    def test_zero_yields_generator_in_async_for(self, run) -> None:
        """The same provider in `async for`: the loop's body would silently never run;
        PG205 at the loop's line. With action "log" the loop ends as Python ends it."""

        @protoguard.provider
        async def get_gen():
            if False:
                yield

        async def main() -> int:
            turns = 0
            async for _ in get_gen():  # a loop that never turns
                turns += 1
            return turns

        with pytest.raises(ProviderRuntimeError, match="finished without yielding") as info:
            run(main())
        assert info.value.call_site == (__file__, line_of(__file__, "# a loop that never turns"))
        assert "make every path of the provider reach its 'yield'" in str(info.value)
        protoguard.configure(action="log")
        assert run(main()) == 0
        assert _codes() == [("PG205", 2)]

    def test_zero_yields_sync_generator(self) -> None:
        """A sync generator provider that never yields: PG205 in a `for` loop and under
        @contextmanager alike."""

        @protoguard.provider
        def get_gen():
            if False:
                yield

        with pytest.raises(ProviderRuntimeError, match="finished without yielding") as info:
            for _ in get_gen():  # sync loop that never turns
                pass
        assert info.value.call_site == (__file__, line_of(__file__, "# sync loop that never turns"))
        with (
            pytest.raises(ProviderRuntimeError, match="finished without yielding"),
            contextlib.contextmanager(get_gen)(),
        ):
            pass
        assert _codes() == [("PG205", 1), ("PG205", 1)]

    def test_two_yields(self, run, async_maker) -> None:
        """A provider that yields twice: PG205 when the block exits."""

        @protoguard.provider
        @contextlib.asynccontextmanager
        async def get_db():
            async with async_maker() as session:
                yield session
                yield session

        async def main() -> None:
            async with get_db() as session:
                await session.execute(COUNT)

        with pytest.raises(ProviderRuntimeError, match="yielded a second time"):
            run(main())

    def test_two_yields_in_async_for_with_each_action(self, run, async_maker) -> None:
        """In an `async for` loop: PG205 at the second yield. Raised, the generator is
        closed first (its cleanup runs); with action "log" the loop goes on as Python
        runs it, a second turn with what the second yield handed out."""
        closed = []

        @protoguard.provider
        async def get_gen():
            async with async_maker() as session:
                try:
                    yield session
                    yield session  # yields again in a loop
                finally:
                    closed.append(True)

        async def main() -> int:
            turns = 0
            async for db in get_gen():
                turns += 1
                await db.execute(COUNT)
            return turns

        with pytest.raises(ProviderRuntimeError, match="yielded a second time") as info:
            run(main())
        assert info.value.call_site == (__file__, line_of(__file__, "# yields again in a loop"))
        assert closed == [True]
        protoguard.configure(action="log")
        assert run(main()) == 2
        assert closed == [True, True]
        assert _codes() == [("PG205", 2)]

    def test_two_yields_generator_under_contextlib(self, run, async_maker) -> None:
        """An async generator provider that yields twice, driven by contextlib as
        Depends() drives it: PG205 at its second yield, and the generator is closed."""
        closed: list[bool] = []

        @protoguard.provider
        async def get_gen():
            async with async_maker() as session:
                try:
                    yield session
                    yield session  # second yield
                finally:
                    closed.append(True)

        async def main() -> int:
            async with contextlib.asynccontextmanager(get_gen)() as session:
                return (await session.execute(COUNT)).scalar_one()

        with pytest.raises(ProviderRuntimeError, match="yielded a second time") as info:
            run(main())
        error = info.value
        assert error.code == "PG205"
        assert error.call_site is not None
        assert error.call_site.lineno == line_of(__file__, "# second yield")
        if sys.version_info >= (3, 11):
            # contextlib closes a generator that did not stop and protoguard reports
            # there: Python's own error is the context.
            assert str(error.__context__) == "generator didn't stop"
        assert closed == [True]
        assert _codes() == [("PG205", 1)]

    def test_two_yields_generator_in_async_for(self, run, async_maker) -> None:
        """The same provider in `async for`: PG205 at the loop's second step."""

        @protoguard.provider
        async def get_gen():
            async with async_maker() as session:
                yield session
                yield session  # yields again

        async def main() -> None:
            async for session in get_gen():
                assert isinstance(session, AsyncSession)

        with pytest.raises(ProviderRuntimeError, match="yielded a second time") as info:
            run(main())
        assert info.value.call_site is not None
        assert info.value.call_site.lineno == line_of(__file__, "# yields again")
        assert _codes() == [("PG205", 1)]

    def test_generator_left_by_contextlib_then_collected(self, run, providers) -> None:
        """An async generator provider that contextlib drove to its end: no finding at
        collection, and the session's scope ended with the block."""
        _, get_gen, log = providers

        async def main() -> Any:
            async with contextlib.asynccontextmanager(get_gen)() as session:
                await session.execute(COUNT)
            return session

        session = run(main())
        gc.collect()
        assert log == ["gen closed"]
        assert protoguard.findings() == []
        with pytest.raises(ProtocolError, match=r"\[PG203\]"):
            run(session.execute(COUNT))

    def test_wrong_type(self, run, sync_maker) -> None:
        """A provider declared to yield an AsyncSession that yields a Session: PG205."""

        @protoguard.provider(yields=AsyncSession)
        @contextlib.asynccontextmanager
        async def get_db():
            with sync_maker() as session:
                yield session

        async def main() -> None:
            async with get_db():
                pass

        with pytest.raises(ProviderRuntimeError, match="yields AsyncSession but handed out"):
            run(main())

    def test_annotation_is_the_declaration(self, run, sync_maker) -> None:
        """Without yields=, the return annotation declares the type."""

        @protoguard.provider
        async def get_db() -> Any:
            yield 1

        async def get_typed():
            yield 1

        get_typed.__annotations__["return"] = "AsyncIterator[Session]"
        get_typed.__globals__["AsyncIterator"] = __import__("typing").AsyncIterator
        typed = protoguard.provider(get_typed)

        async def main(provider) -> None:
            async for _ in provider():
                pass

        run(main(get_db))  # Any declares nothing
        with pytest.raises(ProviderRuntimeError, match="yields Session"):
            run(main(typed))
        assert Session  # the annotation names it


class TestPG206:
    """A session used from a task that was not started inside its provider's block."""

    def test_blocks_that_end_out_of_order(self, run, providers) -> None:
        """Blocks need not end in the order they began (FastAPI ends a function-scoped
        dependency before a request-scoped one that began earlier): a task started after
        the first block ended, inside the second, still open, may use its session."""
        get_db, _, _ = providers

        async def main() -> int:
            first, second = get_db(), get_db()
            await first.__aenter__()
            session = await second.__aenter__()
            await first.__aexit__(None, None, None)  # the first block ends first
            result = await asyncio.create_task(session.execute(COUNT))
            await second.__aexit__(None, None, None)
            return int(result.scalar_one())

        assert run(main()) == 2
        assert protoguard.findings() == []

    def test_a_long_lived_task_keeps_no_closed_blocks(self, run, providers) -> None:
        """A task that opens a block per message (a websocket handler) holds no more
        than its open blocks: a block's exit leaves its entry behind, closed, and the
        next block opened in that task drops it. A task started after a block closed
        and using its session is PG203 (used after the block), not PG206."""
        get_db, _, _ = providers

        async def handler() -> tuple[int, list[int], str]:
            held = []
            for _ in range(200):
                async with get_db() as session:
                    await session.execute(COUNT)
                    held.append(len(_lifecycle._scopes.get()))
            async with get_db() as outer:
                async with get_db() as inner:
                    await inner.execute(COUNT)
                await outer.execute(COUNT)  # the inner block ended first: still fine
                held.append(len(_lifecycle._scopes.get()))
            with pytest.raises(ProtocolError) as info:
                await asyncio.create_task(session.execute(COUNT))
            return max(held[:200]), held[200:], info.value.code

        assert run(handler()) == (1, [2], "PG203")

    def test_session_escaping_its_request(self, run, providers) -> None:
        """Request A's session used by request B's task is PG206 naming both tasks."""
        get_db, _, _ = providers
        with pytest.raises(ProtocolError) as info:
            run(_two_requests(get_db, lambda session: session.execute(COUNT)))
        assert info.value.code == "PG206"
        assert "task 'request-b'" in str(info.value)
        assert "task 'request-a'" in str(info.value)

    @pytest.mark.parametrize(
        "how", ["asynccontextmanager", "async generator", "Depends", "sessionmaker", "coroutine"]
    )
    def test_a_block_in_an_async_generator_belongs_to_it(self, providers, async_maker, how) -> None:
        """A session whose block an async generator (a pytest-asyncio fixture) opened
        and keeps open after the task that ran its first step has ended goes where the
        generator's steps go: pytest-asyncio before 0.25 runs the fixture's setup, the
        test and the teardown each in a task of its own, with no context in common. No
        finding, whichever way the fixture opens the session; used after the fixture's
        block it is still PG203."""
        get_db, get_gen, log = providers
        session_maker = protoguard.provider(async_maker)

        @protoguard.provider
        async def make_session() -> Any:
            return async_maker()

        async def fixture() -> Any:
            if how == "asynccontextmanager":
                async with get_db() as db:
                    yield db
            elif how == "async generator":
                async for db in get_gen():
                    yield db
            elif how == "Depends":
                async with contextlib.asynccontextmanager(get_gen)() as db:
                    yield db
            elif how == "sessionmaker":
                async with session_maker() as db:
                    yield db
            else:
                async with await make_session() as db:
                    yield db

        async def the_test(db: Any) -> int:
            return int((await db.execute(COUNT)).scalar_one())

        loop = asyncio.new_event_loop()
        try:
            steps = fixture()
            db = loop.run_until_complete(steps.__anext__())  # setup: one task
            assert loop.run_until_complete(the_test(db)) == 2  # the test: another
            with pytest.raises(StopAsyncIteration):
                loop.run_until_complete(steps.__anext__())  # teardown: a third
            assert protoguard.findings() == []
            cleanup = {"asynccontextmanager": "cm closed", "async generator": "gen closed"}
            cleanup["Depends"] = "gen closed"
            assert log == ([cleanup[how]] if how in cleanup else [])  # the provider's cleanup ran
            with pytest.raises(ProtocolError) as info:
                loop.run_until_complete(the_test(db))
            assert info.value.code == "PG203"
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def test_first_steps_run_as_tasks_of_their_own(self, run, providers) -> None:
        """Two generator providers' first steps gathered (each runs in a task of its own,
        which ends with the step): the sessions are the awaiting task's to use, held open
        by their suspended generators. No finding; the cleanups run."""
        _, get_gen, log = providers

        async def main() -> list[int]:
            first, second = get_gen(), get_gen()
            sessions = await asyncio.gather(first.__anext__(), second.__anext__())
            counts = [int((await db.execute(COUNT)).scalar_one()) for db in sessions]
            for steps in (first, second):
                with pytest.raises(StopAsyncIteration):
                    await steps.__anext__()
            return counts

        assert run(main()) == [2, 2]
        assert protoguard.findings() == []
        assert log == ["gen closed", "gen closed"]

    @pytest.mark.parametrize("entry", ["shield", "wait_for"])
    @pytest.mark.parametrize("kind", ["@asynccontextmanager", "maker", "maker inside"])
    def test_a_block_entered_in_a_task_of_its_own(
        self, run, providers, async_maker, kind: str, entry: str
    ) -> None:
        """A block entered by hand in a task of its own (shield, and wait_for before
        3.12, run the entry so), kept by an AsyncExitStack and used and left by the task
        that awaited the entry: correct code, no finding; the cleanup runs."""
        get_db, _, log = providers
        maker = protoguard.provider(mode="strict")(async_maker)

        @protoguard.provider
        @contextlib.asynccontextmanager
        async def get_made() -> Any:  # a guarded maker's session, in a guarded provider
            async with maker() as session:
                yield session

        block = {"@asynccontextmanager": get_db, "maker": maker, "maker inside": get_made}[kind]

        async def main() -> int:
            async with contextlib.AsyncExitStack() as stack:
                enter = stack.enter_async_context(block())
                if entry == "shield":
                    db = await asyncio.shield(enter)
                else:
                    db = await asyncio.wait_for(enter, timeout=10)
                return int((await db.execute(COUNT)).scalar_one())

        assert run(main()) == 2
        assert protoguard.findings() == []
        assert log == (["cm closed"] if kind == "@asynccontextmanager" else [])

    @pytest.mark.parametrize("kind", ["@asynccontextmanager", "maker"])
    def test_a_block_entered_by_hand_and_kept_past_its_request(
        self, run, providers, async_maker, kind: str
    ) -> None:
        """Request A enters a block by hand (an AsyncExitStack kept for later), keeps
        the session in a shared place and ends; request B uses it: PG206, an escape."""
        get_db, _, _ = providers
        block = get_db if kind == "@asynccontextmanager" else protoguard.provider(async_maker)
        kept: dict[str, Any] = {}

        async def request_a() -> None:
            kept["stack"] = stack = contextlib.AsyncExitStack()
            kept["db"] = await stack.enter_async_context(block())

        async def request_b() -> None:
            await kept["db"].execute(COUNT)  # PG206 kept past its request

        async def main() -> None:
            await asyncio.create_task(request_a(), name="request-a")
            try:
                await asyncio.create_task(request_b(), name="request-b")
            finally:
                await kept["stack"].aclose()

        with pytest.raises(ProtocolError) as info:
            run(main())
        assert info.value.code == "PG206"
        assert info.value.call_site == (
            __file__,
            line_of(__file__, "# PG206 kept past its request"),
        )
        assert "task 'request-a'" in str(info.value)

    def test_a_coroutine_session_kept_past_its_task(self, run, async_maker) -> None:
        """A coroutine provider's session made in a request's task, kept after that task
        ended and used by another: PG206 (no generator holds it; it escaped)."""

        @protoguard.provider
        async def make_session() -> Any:
            return async_maker()

        kept: dict[str, Any] = {}

        async def request_one() -> None:
            kept["db"] = await make_session()

        async def request_two() -> None:
            await kept["db"].execute(COUNT)

        async def main() -> None:
            await asyncio.create_task(request_one(), name="request-1")
            try:
                await asyncio.create_task(request_two(), name="request-2")
            finally:
                await kept["db"].close()

        with pytest.raises(ProtocolError) as info:
            run(main())
        assert info.value.code == "PG206"
        assert "task 'request-1'" in str(info.value)

    def test_a_generator_block_whose_task_runs_keeps_pg206(self, run, providers) -> None:
        """Opened inside an async generator (FastAPI's usual dependency shape) by a task
        that is still running: another task's use is PG206 as for any other block."""
        get_db, _, _ = providers
        kept: dict[str, Any] = {}

        async def dependency() -> Any:
            async with get_db() as session:
                yield session

        async def request_one(kept_it: asyncio.Event, used: asyncio.Event) -> None:
            steps = dependency()
            kept["db"] = await steps.__anext__()
            kept_it.set()
            await used.wait()
            await steps.aclose()

        async def request_two(kept_it: asyncio.Event, used: asyncio.Event) -> None:
            await kept_it.wait()
            try:
                await kept["db"].execute(COUNT)  # PG206 generator's block
            finally:
                used.set()

        async def main() -> None:
            kept_it, used = asyncio.Event(), asyncio.Event()
            await asyncio.gather(request_one(kept_it, used), request_two(kept_it, used))

        with pytest.raises(ProtocolError) as info:
            run(main())
        assert info.value.code == "PG206"
        assert info.value.call_site == (__file__, line_of(__file__, "# PG206 generator's block"))


class TestSampleRate:
    """configure(sample_rate=...): strict mode watches a random share of provider uses and
    runs the others as mode "on"; an override() block watches every use."""

    @staticmethod
    def _use_after_block(provider: Any, how: str) -> Any:
        """One provider use that uses the session after its block (PG203 if watched)."""

        async def use() -> None:
            # Each way has its own line for the misuse, so each is counted apart.
            if how == "async with":
                async with provider() as db:
                    pass
                used = db.execute(COUNT)  # PG203 if watched
            elif how == "async for":
                async for db in provider():  # noqa: B007 - used after the loop: the misuse
                    pass
                used = db.execute(COUNT)  # PG203 if watched
            else:  # as Depends() enters a generator provider
                async with contextlib.asynccontextmanager(provider)() as db:
                    pass
                used = db.execute(COUNT)  # PG203 if watched
            try:
                await used
            finally:
                await db.close()

        return use

    @staticmethod
    def _pg203_counts(run: Any, *uses: Any, rounds: int) -> list[int]:
        """Run the uses in turn ``rounds`` times; the PG203 count of each (by its line)."""
        protoguard.configure(action="log")
        logger = logging.getLogger("protoguard")
        logger.disabled = True

        async def main() -> None:
            for _ in range(rounds):
                for use in uses:
                    await use()

        try:
            run(main())
        finally:
            logger.disabled = False
        by_line: dict[Any, int] = {}
        for finding in protoguard.findings():
            assert finding.code == "PG203", finding.message
            by_line[finding.call_site] = finding.count
        assert len(by_line) <= len(uses)
        return sorted(by_line.values())

    @pytest.mark.parametrize("rate", [0, 0.5, 1])
    @pytest.mark.parametrize(
        "kind",
        ["asynccontextmanager", "partial", "async generator", "Depends", "async_sessionmaker"],
    )
    def test_every_kind_follows_the_rate(self, run, providers, async_maker, kind, rate) -> None:
        """At 1 every use is watched, at 0 none is, at 0.5 some are: the same misuse is
        found each time, never, or some of the times, whichever way the provider is
        entered."""
        get_db, get_gen, _ = providers

        @contextlib.asynccontextmanager
        async def scope(maker: Any) -> Any:
            async with maker() as session:
                yield session

        provider, how = {
            "asynccontextmanager": (get_db, "async with"),
            "partial": (protoguard.provider(functools.partial(scope, async_maker)), "async with"),
            "async generator": (get_gen, "async for"),
            "Depends": (get_gen, "Depends"),
            "async_sessionmaker": (protoguard.provider(async_maker), "async with"),
        }[kind]
        protoguard.configure(sample_rate=rate)
        counts = self._pg203_counts(run, self._use_after_block(provider, how), rounds=40)
        if rate == 0.5:  # none or all of 40 watched at 0.5: 1 chance in 2**39
            assert len(counts) == 1
            assert 0 < counts[0] < 40, counts
        else:
            assert counts == ([40] if rate else [])

    def test_a_random_share_of_uses(self, run, providers) -> None:
        """At 0.5, about half of the uses are watched, and uses that alternate between two
        providers are each watched about half the time (the sample has no rhythm that
        could always miss one of them)."""
        get_db, get_gen, _ = providers
        protoguard.configure(sample_rate=0.5)
        counts = self._pg203_counts(
            run,
            self._use_after_block(get_db, "async with"),
            self._use_after_block(get_gen, "Depends"),
            rounds=200,
        )
        # 200 uses each, each watched with probability 0.5: a count outside 60-140 is
        # more than 5.6 standard deviations (7.1) from 100.
        assert len(counts) == 2
        assert all(60 <= count <= 140 for count in counts), counts

    def test_protocol_misuse_is_still_an_error(self, run, providers) -> None:
        """A use left out of the sample is mode "on": the wrong protocol still raises."""
        get_db, _, _ = providers
        protoguard.configure(sample_rate=0)

        async def main() -> None:
            async for _ in get_db():  # PG101 sampled-out
                pass  # pragma: no cover

        with pytest.raises(ProtocolError) as info:
            run(main())
        assert info.value.code == "PG101"
        assert info.value.call_site == (__file__, line_of(__file__, "# PG101 sampled-out"))

    def test_override_watches_every_use(self, run, providers) -> None:
        """Inside override(mode="strict") the rate does not apply: tests do not depend
        on chance."""
        get_db, get_gen, _ = providers
        protoguard.configure(sample_rate=0)
        with protoguard.override(mode="strict"):
            counts = self._pg203_counts(
                run,
                self._use_after_block(get_db, "async with"),
                self._use_after_block(get_gen, "Depends"),
                rounds=3,
            )
        assert counts == [3, 3]


async def _three_uses_after_the_block(get_db: Any) -> None:
    """The session used three times at one line after its provider's block: PG203 each."""
    async with get_db() as session:
        pass
    for _ in range(3):
        await session.execute(COUNT)  # used after the block, three times
    await session.close()  # closing is never a finding


class TestActions:
    """What a finding does is set by the action; every finding is counted."""

    def test_warn(self, run, providers) -> None:
        """action="warn": a ProtocolWarning at the user's line, and the use goes on."""
        protoguard.configure(action="warn")
        get_db, _, _ = providers

        async def main() -> int:
            async with get_db() as session:
                pass
            try:
                return (await session.execute(COUNT)).scalar_one()  # warned here
            finally:
                await session.close()  # the use above checked out a new connection

        with pytest.warns(ProtocolWarning, match=r"\[PG203\]") as caught:
            assert run(main()) == 2
        assert caught[0].lineno == line_of(__file__, "# warned here")

    def test_warn_is_filtered_by_module_and_shown_once_per_line(self, run, providers) -> None:
        """The warning carries the user's module, as warnings.warn at that line would
        (``filterwarnings(module=...)``, ``-W ...:module``), and its registry: the
        default filters show one per line, not one per occurrence."""
        protoguard.configure(action="warn")
        get_db, _, _ = providers

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("ignore")
            warnings.filterwarnings("default", category=ProtocolWarning, module=__name__)
            run(_three_uses_after_the_block(get_db))
        assert [(w.category, w.lineno) for w in caught] == [
            (ProtocolWarning, line_of(__file__, "# used after the block, three times"))
        ]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.filterwarnings("ignore", category=ProtocolWarning, module=__name__)
            run(_three_uses_after_the_block(get_db))
        assert caught == []
        assert _codes() == [("PG203", 6)]

    def test_warn_once_per_line_in_every_task(self, run, providers) -> None:
        """A PG206 names the tasks involved, so its text is new in each task that makes it
        (each request, under a server): the default filters still show one per line, and
        "always" shows each. New filters (a catch_warnings block) show it again."""
        protoguard.configure(action="warn")
        get_db, _, _ = providers

        async def main() -> None:
            kept: dict[str, Any] = {}
            opened, done = asyncio.Event(), asyncio.Event()

            async def holder() -> None:  # a lifespan, say, keeping its session open
                async with get_db() as session:
                    kept["db"] = session
                    opened.set()
                    await done.wait()

            async def request() -> None:
                await kept["db"].execute(COUNT)  # PG206, from a task of its own each time

            held = asyncio.create_task(holder())
            await opened.wait()
            for _ in range(3):
                await asyncio.create_task(request())
            done.set()
            await held

        line = line_of(__file__, "# PG206, from a task of its own each time")
        # Each in warnings.catch_warnings() of its own, as pytest runs each test: the
        # second "default" shows it again, as Python would (new filters, a new registry).
        for action, shown in (("default", 1), ("default", 1), ("always", 3)):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("ignore")
                warnings.filterwarnings(action, category=ProtocolWarning, module=__name__)
                run(main())
            assert [(w.category, w.lineno) for w in caught] == [(ProtocolWarning, line)] * shown
            assert len({str(w.message) for w in caught}) == shown  # each names its task
        assert _codes() == [("PG206", 9)]

    def test_warn_made_an_error_where_nothing_can_raise(
        self, run, providers, async_engine, monkeypatch
    ) -> None:
        """-W error with action "warn": a finding made in a task's done callback (PG201)
        goes to sys.unraisablehook as the error the filters made of it, and the
        abandoned generator is still closed, its connection back in the pool."""
        protoguard.configure(action="warn")
        _, get_gen, log = providers
        seen: list[Any] = []
        monkeypatch.setattr(sys, "unraisablehook", seen.append)
        kept: list[Any] = []

        async def handler() -> None:
            sessions = get_gen()
            kept.append(sessions)  # still referenced: PG201 comes from the task's end
            async for session in sessions:  # the loop pytest names
                await session.execute(COUNT)
                break

        async def main() -> None:
            await asyncio.create_task(handler())
            for _ in range(400):  # the provider's cleanup is scheduled on the loop
                await asyncio.sleep(0.005)
                if log and async_engine.pool.checkedout() == 0:
                    break

        with warnings.catch_warnings():
            warnings.simplefilter("error", ProtocolWarning)
            run(main())
        assert log == ["gen closed"]
        assert async_engine.pool.checkedout() == 0
        assert [type(args.exc_value) for args in seen] == [ProtocolWarning]
        assert str(seen[0].exc_value).startswith("[PG201]")
        assert seen[0].err_msg == (
            "protoguard strict-mode finding PG201, made when the task that began the loop ended"
        )
        # What the hook prints after the message (pytest prints it whatever it is).
        line = line_of(__file__, "# the loop pytest names")
        assert repr(seen[0].object) == f"get_gen() at {__file__}:{line}"
        assert _codes() == [("PG201", 1)]

    def test_log(self, run, providers, caplog) -> None:
        """action="log": the protoguard logger, and a count per call site."""
        protoguard.configure(action="log")
        get_db, _, _ = providers

        with caplog.at_level(logging.WARNING, logger="protoguard"):
            run(_three_uses_after_the_block(get_db))
        assert [r.getMessage()[:7] for r in caplog.records] == ["[PG203]"] * 3
        assert _codes() == [("PG203", 3)]

    def test_invalid_action(self) -> None:
        """An unknown action is one clear ConfigurationError and changes nothing."""
        with pytest.raises(protoguard.ConfigurationError, match="use one of: raise, warn, log"):
            protoguard.configure(mode="off", action="shout")
        assert protoguard.current_mode() == "strict"


class _BrokenDir(type):
    def __dir__(cls) -> Any:
        raise RuntimeError("dir() is broken")


class _Unhashable(type):
    def __eq__(cls, other: object) -> bool:  # and so no __hash__: the class is unhashable
        return cls is other


# A provider result never entered, kept in a reference cycle so that only the collector
# frees it (PG204 from its finaliser), collected at each allocation count in turn up to
# the collector's threshold: one of them lands while the thread holds the findings
# table's lock, copying it for findings() or counting a logged PG203.
_COLLECTED_UNDER_THE_LOCK = """
import gc, logging, sys
from contextlib import contextmanager
from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker
import protoguard

protoguard.configure(mode="strict", action="log")
logging.getLogger("protoguard").disabled = True
Session = sessionmaker(create_engine("sqlite://"))

@protoguard.provider
@contextmanager
def get_db():
    with Session() as session:
        yield session

def forgotten_in_a_cycle():
    cycle = [get_db()]
    cycle.append(cycle)

with get_db() as db:
    pass
THRESHOLD = 100
gc.set_threshold(THRESHOLD)
for use in (protoguard.findings, lambda: db.execute(text("SELECT 1"))):
    for offset in range(1, THRESHOLD):
        gc.disable()
        forgotten_in_a_cycle()
        filler = []
        gc.enable()
        while gc.get_count()[0] < THRESHOLD - offset:
            filler.append([])
        use()
        del filler
gc.collect()
print(sorted((f.code, f.count) for f in protoguard.findings()))
"""


def test_a_finding_the_collector_makes_under_the_findings_lock() -> None:
    """The collector can run a finaliser that makes a finding (PG204) while the same
    thread holds the findings table's lock: it is counted, and the thread goes on (it
    used to wait for that lock for ever). In a child process, with a time limit."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", _COLLECTED_UNDER_THE_LOCK],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    # Every provider result was reported, and every use after the block.
    assert done.stdout.strip() == "[('PG203', 99), ('PG204', 198)]"


class TestSessionsStrictModeCannotWatch:
    """An internal failure to watch a session (its class breaks dir()): one
    ProtocolWarning at the user's line, and the session handed out as it is; the user's
    code goes on, also where warnings are errors."""

    def test_a_session_class_that_cannot_be_hashed_is_watched(self, run) -> None:
        """Classes are remembered by id(), so one that cannot be hashed is watched."""

        class Odd(metaclass=_Unhashable):
            async def execute(self) -> int:
                return 1

        @protoguard.provider
        async def get_db():
            yield Odd()

        async def main() -> Any:
            async for db in get_db():
                assert isinstance(db, Odd)
                assert type(db) is not Odd  # watched
                assert await db.execute() == 1
            return db

        db = run(main())
        with pytest.raises(ProtocolError) as info:
            run(db.execute())
        assert info.value.code == "PG203"

    @pytest.mark.parametrize("metaclass", [_BrokenDir])
    @pytest.mark.parametrize("warnings_are_errors", [False, True])
    def test_the_session_is_handed_out_as_it_is(self, run, metaclass, warnings_are_errors) -> None:
        class Odd(metaclass=metaclass):
            async def execute(self) -> int:
                return 1

        log: list[str] = []

        @protoguard.provider
        async def get_db():
            try:
                yield Odd()
            finally:
                log.append("closed")

        async def main() -> list[Any]:
            results = []
            for _ in range(2):
                async for db in get_db():  # cannot watch: warned here
                    results.append((type(db) is Odd, await db.execute()))
            return results

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("error" if warnings_are_errors else "always")
            assert run(main()) == [(True, 1), (True, 1)]
        assert log == ["closed", "closed"]
        assert protoguard.findings() == []
        if warnings_are_errors:
            assert caught == []  # the warning could not be shown, and did not raise
        else:
            assert [w.category for w in caught] == [ProtocolWarning]  # once per class
            assert (caught[0].filename, caught[0].lineno) == (
                __file__,
                line_of(__file__, "# cannot watch: warned here"),
            )
            message = str(caught[0].message)
            assert message.startswith("protoguard could not watch sessions of class ")
            assert "Odd" in message
            assert "are handed out as they are" in message

    def test_the_class_is_kept_so_its_id_stays_its_own(self) -> None:
        """The classes that could not be watched are remembered by id() (some cannot be
        hashed) and kept alive: a class made later at the same address (sessionmaker
        makes a Session subclass per maker) must not be taken for one of them and left
        unwatched."""

        def use_once() -> weakref.ref[type]:
            odd = _BrokenDir("Odd", (), {"execute": lambda self: 1})

            @protoguard.provider
            def get_db():
                yield odd()

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for _ in get_db():
                    pass
            return weakref.ref(odd)

        kept = use_once()
        gc.collect()
        assert kept() is not None


class TestRecordedLines:
    """Strict mode records a place as (code, instruction offset) and works out its line
    only when it reports; that line must be the one ``frame.f_lineno`` gives."""

    @staticmethod
    def _pairs(frame: Any) -> list[tuple[int, int]]:
        from protoguard._lifecycle import resolve

        pairs = []
        while frame is not None:
            site = resolve((frame.f_code, frame.f_lasti))
            assert site is not None
            assert site.filename == frame.f_code.co_filename
            pairs.append((frame.f_lineno, site.lineno))
            frame = frame.f_back
        return pairs

    def test_every_frame_of_a_real_stack(self) -> None:
        """Every frame under pytest, pluggy and this test, multi-line calls included."""
        pairs = self._pairs(sys._getframe())
        pairs += self._pairs(sys._getframe(0))
        assert len(pairs) > 20
        assert [lineno for lineno, _ in pairs] == [line for _, line in pairs]

    def test_frames_inside_sqlalchemy_and_asyncio(self, run, providers) -> None:
        """Frames of SQLAlchemy, greenlet and asyncio code, seen from a session event."""
        from sqlalchemy import event

        seen: list[tuple[int, int]] = []

        def listener(*args: Any) -> None:
            seen.extend(self._pairs(sys._getframe()))

        event.listen(Session, "after_begin", listener)
        try:

            async def main() -> None:
                async with providers[0]() as session:
                    await session.execute(text("SELECT 1"))

            run(main())
        finally:
            event.remove(Session, "after_begin", listener)
        assert len(seen) >= 5  # the greenlet SQLAlchemy runs the sync session in
        assert [lineno for lineno, _ in seen] == [line for _, line in seen]


class TestDrivenByContextlib:
    """A generator provider that contextlib drives (``asynccontextmanager(provider)()``,
    ``contextmanager(provider)()``; FastAPI's Depends() on every request) gets a plain
    object instead of the transparent proxy: every way out of the block still reaches
    the provider as it would unguarded, and the session is still watched."""

    def test_the_wrong_contextlib_helper_fails_as_unguarded(self, run) -> None:
        """contextmanager() around an async generator provider, asynccontextmanager()
        around a sync one: Python's own error, naming the generator (not protoguard's
        object), as it is without protoguard."""

        async def agen():
            yield "session"

        def sgen():
            yield "session"

        def sync_block(provider: Any) -> None:
            with contextlib.contextmanager(provider)():
                pass

        async def async_block(provider: Any) -> None:
            async with contextlib.asynccontextmanager(provider)():
                pass

        def outcome(call: Any) -> tuple[type, str]:
            with pytest.raises((TypeError, AttributeError)) as info:
                call()
            return type(info.value), str(info.value)

        for bare, use in (
            (agen, sync_block),
            (sgen, lambda provider: run(async_block(provider))),
        ):
            guarded = protoguard.provider(bare)
            assert outcome(lambda: use(guarded)) == outcome(lambda: use(bare))  # noqa: B023
        assert protoguard.findings() == []

    @staticmethod
    def _logged_async(async_maker: Any, log: list[Any]) -> Any:
        @protoguard.provider
        async def get_gen():
            async with async_maker() as session:
                try:
                    yield session
                except BaseException as exc:
                    log.append(("rolled back", type(exc).__name__))
                    raise
                finally:
                    log.append("closed")

        return get_gen

    @staticmethod
    def _logged_sync(sync_maker: Any, log: list[Any]) -> Any:
        @protoguard.provider
        def get_gen():
            with sync_maker() as session:
                try:
                    yield session
                except BaseException as exc:
                    log.append(("rolled back", type(exc).__name__))
                    raise
                finally:
                    log.append("closed")

        return get_gen

    def test_async_error_in_the_block_reaches_the_provider(self, run, async_maker) -> None:
        log: list[Any] = []
        get_gen = self._logged_async(async_maker, log)
        failure = LookupError("in the block")

        async def main() -> Any:
            try:
                async with contextlib.asynccontextmanager(get_gen)() as session:
                    await session.execute(COUNT)
                    raise failure
            except LookupError as exc:
                return exc, session

        caught, session = run(main())
        assert caught is failure
        assert log == [("rolled back", "LookupError"), "closed"]
        assert protoguard.findings() == []
        with pytest.raises(ProtocolError, match=r"\[PG203\]"):
            run(session.execute(COUNT))

    def test_async_yield_after_the_error(self, run, async_maker) -> None:
        """A provider that yields again when the block raised: PG205 at the second
        yield, and the generator is closed (its cleanup run)."""
        log: list[Any] = []

        @protoguard.provider
        async def get_gen():
            async with async_maker() as session:
                try:
                    yield session
                except LookupError:
                    yield session  # yields again after the error
                finally:
                    log.append("closed")

        async def main() -> None:
            async with contextlib.asynccontextmanager(get_gen)():
                raise LookupError("in the block")

        with pytest.raises(ProviderRuntimeError, match="yielded a second time") as info:
            run(main())
        assert info.value.code == "PG205"
        line = line_of(__file__, "# yields again after the error")
        assert info.value.call_site == (__file__, line)
        if sys.version_info >= (3, 11):  # found as contextlib closes the generator
            assert "didn't stop after athrow" in str(info.value.__context__)
        else:  # found as the error's throw returns
            assert isinstance(info.value.__context__, LookupError)
        assert log == ["closed"]

    @pytest.mark.parametrize("fails", [False, True], ids=["exit", "error"])
    def test_async_two_yields_and_a_failing_cleanup(self, run, async_maker, fails) -> None:
        """A second yield is PG205 also when the cleanup that closing it runs raises:
        the cleanup's error is in PG205's context, not in its place."""

        @protoguard.provider
        async def get_gen():
            session = async_maker()
            with contextlib.suppress(LookupError):
                yield session
            try:
                yield session  # the second yield
            finally:
                await session.close()
                raise ValueError("cleanup failed")

        async def main() -> None:
            async with contextlib.asynccontextmanager(get_gen)():
                if fails:
                    raise LookupError("in the block")

        with pytest.raises(ProviderRuntimeError, match="yielded a second time") as info:
            run(main())
        assert info.value.call_site == (__file__, line_of(__file__, "# the second yield"))
        assert isinstance(info.value.__context__, ValueError)

    def test_sync_generator_under_contextmanager(self, sync_maker) -> None:
        log: list[Any] = []
        get_gen = self._logged_sync(sync_maker, log)
        with contextlib.contextmanager(get_gen)() as session:
            count = session.execute(COUNT).scalar_one()
            assert isinstance(session, Session)
        assert (count, log) == (2, ["closed"])
        assert protoguard.findings() == []
        with pytest.raises(ProtocolError, match=r"\[PG203\]"):
            session.execute(COUNT)

    def test_sync_error_in_the_block_reaches_the_provider(self, sync_maker) -> None:
        log: list[Any] = []
        get_gen = self._logged_sync(sync_maker, log)
        failure = LookupError("in the block")

        def block() -> None:
            with contextlib.contextmanager(get_gen)() as session:
                session.execute(COUNT)
                raise failure

        with pytest.raises(LookupError) as info:
            block()
        assert info.value is failure
        assert log == [("rolled back", "LookupError"), "closed"]
        assert protoguard.findings() == []

    @pytest.mark.parametrize("fails", [False, True], ids=["exit", "error"])
    def test_sync_two_yields(self, sync_maker, fails: bool) -> None:
        """A sync provider that yields again where contextlib leaves the block (its
        exit, or the block's error thrown in): PG205 at that yield, the generator closed
        first, the block's error as its context."""
        log: list[Any] = []

        @protoguard.provider
        def get_gen():
            with sync_maker() as session:
                try:
                    yield session
                except LookupError:
                    pass
                finally:
                    log.append("left")
                try:
                    yield session  # yields a second time
                finally:
                    log.append("closed")

        def block() -> None:
            with contextlib.contextmanager(get_gen)() as session:
                session.execute(COUNT)
                if fails:
                    raise LookupError("in the block")

        with pytest.raises(ProviderRuntimeError, match="yielded a second time") as info:
            block()
        assert info.value.code == "PG205"
        line = line_of(__file__, "# yields a second time")
        assert info.value.call_site == (__file__, line)
        assert isinstance(info.value.__context__, LookupError if fails else type(None))
        assert log == ["left", "closed"]

    def test_sync_two_yields_logged(self, sync_maker) -> None:
        """With action "log", the finding is counted and contextlib's own error goes on."""
        protoguard.configure(action="log")

        @protoguard.provider
        def get_gen():
            with sync_maker() as session:
                yield session
                yield session

        with pytest.raises(RuntimeError, match="didn't stop"), contextlib.contextmanager(get_gen)():
            pass
        assert _codes() == [("PG205", 1)]

    @pytest.mark.skipif(sys.version_info < (3, 10), reason="a decorator from 3.10 on")
    def test_recreated_as_a_decorator(self, run, async_maker) -> None:
        """contextlib makes a new context manager (and calls the provider again) on
        each call of a function it decorates: each call runs the provider's cleanup."""
        log: list[Any] = []
        get_gen = self._logged_async(async_maker, log)

        @contextlib.asynccontextmanager(get_gen)()
        async def job() -> int:
            return len(log)

        async def main() -> list[int]:
            return [await job(), await job()]

        assert run(main()) == [0, 1]
        assert log == ["closed", "closed"]
        assert protoguard.findings() == []

    def test_sync_provider_fails_before_its_yield(self) -> None:
        failure = ConnectionError("database down")

        @protoguard.provider
        def get_gen():
            raise failure
            yield  # pragma: no cover

        with pytest.raises(ConnectionError) as info, contextlib.contextmanager(get_gen)():
            pass  # pragma: no cover
        assert info.value is failure
        assert protoguard.findings() == []

    def test_sync_wrong_type(self, sync_maker) -> None:
        @protoguard.provider(yields=AsyncSession)
        def get_gen():
            with sync_maker() as session:
                yield session

        with (
            pytest.raises(ProviderRuntimeError, match="yields AsyncSession but handed out"),
            contextlib.contextmanager(get_gen)(),
        ):
            pass  # pragma: no cover
        assert _codes() == [("PG205", 1)]


class TestLessCommonCorrectUse:
    """Correct code that real services write, each once reported wrongly or not watched
    by strict mode: no finding, the real behaviour, and the scope still ends where it
    should."""

    def test_a_helper_that_enters_the_session_inside_the_block(self, sync_maker) -> None:
        """`with session:` in a helper (closing the session after its unit of work, as
        SQLAlchemy allows, which reopens on next use) does not end the provider's block:
        a second call inside the block is no PG203; a call after the block is."""

        @protoguard.provider
        @contextlib.contextmanager
        def get_db():
            session = sync_maker()
            try:
                yield session
            finally:
                session.close()

        def count(session: Any) -> int:
            with session:
                return session.execute(COUNT).scalar_one()

        with get_db() as db:
            assert (count(db), count(db)) == (2, 2)
        assert protoguard.findings() == []
        with pytest.raises(ProtocolError) as info:
            count(db)
        assert info.value.code == "PG203"

    def test_an_async_helper_that_enters_the_session_inside_the_block(self, run, providers) -> None:
        """The same with `async with session:` on an AsyncSession from a generator
        provider under contextlib, as Depends() runs it."""
        _, get_gen, log = providers

        async def count(session: Any) -> int:
            async with session:
                return (await session.execute(COUNT)).scalar_one()

        async def main() -> Any:
            async with contextlib.asynccontextmanager(get_gen)() as db:
                assert (await count(db), await count(db)) == (2, 2)
            return db

        db = run(main())
        assert log == ["gen closed"]
        assert protoguard.findings() == []
        with pytest.raises(ProtocolError) as info:
            run(count(db))
        assert info.value.code == "PG203"

    def test_a_coroutine_providers_session_entered_again(self, run, async_maker) -> None:
        """A coroutine provider's session is scoped by its own `async with`: its end is
        the scope's end (PG203 after it), and entering it again opens a new scope."""

        @protoguard.provider
        async def make_session():
            return async_maker()

        async def main() -> Any:
            db = await make_session()
            async with db:
                await db.execute(COUNT)
            with pytest.raises(ProtocolError) as info:
                await db.execute(COUNT)
            assert info.value.code == "PG203"
            async with db:  # again, as SQLAlchemy allows
                return (await db.execute(COUNT)).scalar_one()

        assert run(main()) == 2
        assert _codes() == [("PG203", 1)]

    def test_a_context_manager_provider_used_as_a_decorator(self, sync_maker) -> None:
        """contextlib lets a @contextmanager result decorate a function, and enters a
        fresh copy at each call: the decorating one is never entered itself, and that is
        no PG204 when it is collected."""
        done: list[str] = []

        @protoguard.provider
        @contextlib.contextmanager
        def transaction():
            with sync_maker() as session:
                yield session
                done.append("committed")

        def main() -> None:
            @transaction()
            def add() -> None:
                pass

            add()
            add()

        main()
        gc.collect()
        assert done == ["committed", "committed"]
        assert protoguard.findings() == []

    def test_callable_as_unguarded(self, providers, sync_maker) -> None:
        """A strict context manager is callable (a decorator) exactly where contextlib's
        is: an async one from Python 3.10 on."""
        get_db, _, _ = providers
        protoguard.configure(action="log")  # the ones made here are never entered: PG204

        @contextlib.contextmanager
        def plain():
            yield "session"

        assert callable(get_db()) == callable(get_db.__wrapped__())
        assert callable(protoguard.provider(plain)()) == callable(plain()) is True

    @pytest.mark.skipif(sys.version_info < (3, 10), reason="AsyncContextDecorator: 3.10+")
    def test_an_async_context_manager_provider_used_as_a_decorator(self, run, providers) -> None:
        get_db, _, log = providers

        @get_db()
        async def use() -> None:
            pass

        run(use())
        run(use())
        del use
        gc.collect()
        assert log == ["cm closed", "cm closed"]
        assert protoguard.findings() == []

    def test_a_generator_stepped_with_send(self, sync_maker) -> None:
        """gen.send(None), as some drivers step a generator, is next(): the session is
        watched (PG203 after the provider finished), and the generator is no PG204."""

        @protoguard.provider
        def get_db():
            session = sync_maker()
            try:
                yield session
            finally:
                session.close()

        def main() -> Any:
            gen = get_db()
            db = gen.send(None)
            assert db.execute(COUNT).scalar_one() == 2
            gen.close()
            return db

        db = main()
        gc.collect()
        assert protoguard.findings() == []
        with pytest.raises(ProtocolError) as info:
            db.execute(COUNT)
        assert info.value.code == "PG203"

    def test_an_async_generator_stepped_with_asend(self, run, providers) -> None:
        _, get_gen, log = providers

        async def main() -> Any:
            gen = get_gen()
            db = await gen.asend(None)
            assert (await db.execute(COUNT)).scalar_one() == 2
            await gen.aclose()
            return db

        db = run(main())
        gc.collect()
        assert log == ["gen closed"]
        assert protoguard.findings() == []
        with pytest.raises(ProtocolError) as info:
            run(db.execute(COUNT))
        assert info.value.code == "PG203"

    def test_an_async_generator_sent_a_value(self, run, async_maker) -> None:
        """gen.asend(value) after the session was handed out is the step anext() would
        be, with the value sent in: the provider gets it and finishes, and the session
        is PG203 after that, as after anext()."""
        got = []

        @protoguard.provider
        async def get_gen():
            async with async_maker() as session:
                got.append((yield session))

        async def main() -> None:
            gen = get_gen()
            db = await gen.asend(None)
            with pytest.raises(StopAsyncIteration):
                await gen.asend("done")
            assert got == ["done"]
            with pytest.raises(ProtocolError) as info:
                await db.execute(COUNT)  # after the provider finished
            assert info.value.code == "PG203"

        run(main())
        assert _codes() == [("PG203", 1)]

    def test_an_async_generator_sent_a_value_in_a_loop_yields_again(self, run, async_maker) -> None:
        """In an `async for` loop, gen.asend(value) that makes the provider yield a
        second time is PG205, as the loop's own second step would be."""
        closed = []

        @protoguard.provider
        async def get_gen():
            async with async_maker() as session:
                try:
                    while (yield session) is not None:
                        pass
                finally:
                    closed.append(True)

        async def main() -> None:
            gen = get_gen()
            async for db in gen:
                await db.execute(COUNT)
                await gen.asend("again")

        with pytest.raises(ProviderRuntimeError, match="yielded a second time"):
            run(main())
        assert closed == [True]

    def test_a_scoped_session_registry_handed_out(self, sync_maker) -> None:
        """A provider that hands out a scoped_session registry: not a session (it makes
        them), so it is handed out as it is, callable, by every kind of provider."""
        from sqlalchemy.orm import scoped_session

        registry = scoped_session(sync_maker)

        @protoguard.provider
        @contextlib.contextmanager
        def get_registry():
            try:
                yield registry
            finally:
                registry.remove()

        @protoguard.provider
        def plain_registry():
            return registry

        with get_registry() as db:
            assert db is registry
            assert db().execute(COUNT).scalar_one() == 2
        assert plain_registry() is registry
        assert plain_registry()().execute(COUNT).scalar_one() == 2
        registry.remove()
        assert protoguard.findings() == []

    def test_a_session_maker_made_per_use_is_not_kept(self, sync_maker) -> None:
        """sessionmaker() makes a Session subclass of its own: a provider that makes a
        maker per use must not leave each class (and strict mode's watched class for
        it) alive."""
        bind = sync_maker.kw["bind"]

        @protoguard.provider
        @contextlib.contextmanager
        def get_db():
            with type(sync_maker)(bind)() as session:
                yield session

        def use() -> weakref.ref[type]:
            with get_db() as db:
                assert db.execute(COUNT).scalar_one() == 2
                return weakref.ref(type(db.__wrapped__))

        classes = [use() for _ in range(3)]
        gc.collect()
        assert [cls() for cls in classes] == [None, None, None]
        assert protoguard.findings() == []

    @pytest.mark.parametrize("kind", ["@contextmanager", "generator"])
    def test_pg203s_fix_names_a_sync_providers_block(self, sync_maker, kind: str) -> None:
        """PG203's fix names the block of the provider's kind: 'with' for a sync one."""

        def get_db():
            with sync_maker() as session:
                yield session

        if kind == "@contextmanager":
            provider = protoguard.provider(contextlib.contextmanager(get_db))
            block = "'with' block"
        else:
            provider = contextlib.contextmanager(protoguard.provider(get_db))
            block = "'for' loop or 'with' block"
        with provider() as db:
            pass
        with pytest.raises(ProtocolError) as info:
            db.execute(COUNT)
        assert info.value.code == "PG203"
        assert info.value.fix == f"use the session only inside the {block} that gave it"

    def test_a_providers_other_arguments_are_not_kept(self, sync_maker) -> None:
        """Strict mode keeps a generator provider's session arguments (to tell a session
        it was handed from its own), never the others: they go when the provider lets
        go of them."""

        class Big:
            pass

        freed: list[bool] = []

        @protoguard.provider
        def get_db(big: Any):
            alive = weakref.ref(big)
            del big
            with sync_maker() as session:
                yield session
            gc.collect()
            freed.append(alive() is None)

        for session in get_db(Big()):
            assert session.execute(COUNT).scalar_one() == 2
        assert freed == [True]
        assert protoguard.findings() == []

    def test_a_watched_sessions_methods_show_the_sessions_own(self, sync_maker) -> None:
        """inspect.signature() and help() of a watched session's method show the
        session's own method (IDEs, debuggers and FastAPI read them)."""

        @protoguard.provider
        @contextlib.contextmanager
        def get_db():
            with sync_maker() as session:
                yield session

        plain = sync_maker()
        with get_db() as db:
            assert type(db) is not type(plain)  # watched
            for name in ("get", "execute", "commit", "add"):
                assert inspect.signature(getattr(db, name)) == inspect.signature(
                    getattr(plain, name)
                )
                assert getattr(db, name).__doc__ == getattr(plain, name).__doc__
        plain.close()

    def test_a_plain_function_that_returns_a_context_manager(
        self, run, async_maker, sync_maker
    ) -> None:
        """A plain function that returns what hands out a session (`return
        Session.begin()`, the result of an @asynccontextmanager function) gives the
        session in `async with`/`with`, as in mode "on": strict mode took the context
        manager for the session and handed it out itself ('..._AsyncSessionContextManager'
        object has no attribute 'execute')."""

        @contextlib.asynccontextmanager
        async def session_block():
            async with async_maker() as session:
                yield session

        @protoguard.provider
        def begin_async():
            return async_maker.begin()

        @protoguard.provider
        def enter_async():
            return session_block()

        @protoguard.provider
        def begin_sync():
            return sync_maker.begin()

        async def count(provider: Any) -> int:
            async with provider() as db:
                assert isinstance(db, AsyncSession)
                return (await db.execute(COUNT)).scalar_one()

        assert run(count(begin_async)) == 2
        assert run(count(enter_async)) == 2
        with begin_sync() as db:
            assert isinstance(db, Session)
            assert db.execute(COUNT).scalar_one() == 2
        assert protoguard.findings() == []

    def test_a_plain_function_that_returns_a_guarded_makers_session(
        self, run, async_maker, sync_maker
    ) -> None:
        """A strict plain function that returns a session of a maker guarded in mode "on"
        (a library's `SessionLocal`) watches it: the session comes wrapped in the maker's
        proxy, which is no session class, and was guarded as a context manager is, in
        mode "on", so its use after the block was silent."""
        SyncLocal = protoguard.provider(sync_maker, mode="on")
        AsyncLocal = protoguard.provider(async_maker, mode="on")

        @protoguard.provider
        def get_sync():
            return SyncLocal()

        @protoguard.provider
        def get_async():
            return AsyncLocal()

        with get_sync() as db:
            assert db.execute(COUNT).scalar_one() == 2
        with pytest.raises(ProtocolError) as error:
            db.execute(COUNT)  # the sync session after its block
        assert error.value.code == "PG203"
        assert error.value.call_site == (
            __file__,
            line_of(__file__, "# the sync session after its block"),
        )
        assert error.value.fix == (
            "use the session only inside the 'with' or 'async with' block that gave it"
        )

        async def after_the_block() -> None:
            async with get_async() as db:
                assert (await db.execute(COUNT)).scalar_one() == 2
            try:
                await db.execute(COUNT)  # the async session after its block
            finally:
                await db.close()

        with pytest.raises(ProtocolError) as error:
            run(after_the_block())
        assert error.value.code == "PG203"
        assert error.value.call_site == (
            __file__,
            line_of(__file__, "# the async session after its block"),
        )
        assert error.value.fix == (
            "use the session only inside the 'with' or 'async with' block that gave it"
        )
