"""Guarded providers behind FastAPI's Depends(), through a real app and its TestClient.

No `from __future__ import annotations` here: FastAPI reads the endpoints' annotations at
run time, and the providers are local to a fixture.
"""

import ast
import asyncio
import contextlib
import functools
import inspect
import linecache
import textwrap
from typing import Annotated, Any

import pytest
from fastapi import BackgroundTasks, Depends, FastAPI, WebSocket
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient
from sqlalchemy.ext.asyncio import AsyncSession

import protoguard

from .conftest import COUNT, FASTAPI_UNWRAPS, line_of, traced


class _Auth:
    def session(self) -> str:
        """A login session's user, not a database session."""
        return "ada"


auth = _Auth()


@pytest.fixture
def app_and_log(async_maker, sync_maker):
    """An app whose endpoints take sessions from guarded providers of each Depends() kind."""
    log: list[str] = []

    @protoguard.provider
    async def get_db():
        async with async_maker() as session:
            log.append("agen: open")
            try:
                yield session
            finally:
                log.append("agen: closed")

    @protoguard.provider
    def get_sync_db():
        with sync_maker() as session:
            log.append("gen: open")
            try:
                yield session
            finally:
                log.append("gen: closed")

    @protoguard.provider
    async def make_session() -> AsyncSession:
        log.append("coroutine: made")
        return async_maker()

    @protoguard.provider
    @contextlib.asynccontextmanager
    async def get_request_scoped_db_session():
        async with async_maker() as session:
            log.append("acm: open")
            try:
                yield session
            finally:
                log.append("acm: closed")

    @protoguard.provider
    @contextlib.contextmanager
    def sync_session_scope():
        with sync_maker() as session:
            log.append("cm: open")
            try:
                yield session
            except LookupError:
                log.append("cm: rolled back")
                raise
            finally:
                log.append("cm: closed")

    app = FastAPI()

    @app.get("/acm")
    async def acm_route(
        db: Annotated[AsyncSession, Depends(get_request_scoped_db_session)],
    ) -> dict[str, Any]:
        # The incidents' report 003: Depends() on an @asynccontextmanager provider.
        return {"count": (await db.execute(COUNT)).scalar_one(), "type": db.__class__.__name__}

    @app.get("/cm")
    def cm_route(db=Depends(sync_session_scope)) -> dict[str, Any]:  # noqa: B008
        return {"count": db.execute(COUNT).scalar_one(), "type": db.__class__.__name__}

    @app.get("/cm-raises")
    def cm_raising_route(db=Depends(sync_session_scope)) -> None:  # noqa: B008
        raise LookupError("boom")

    @app.get("/acm-raises")
    async def acm_raising_route(
        db: Annotated[AsyncSession, Depends(get_request_scoped_db_session)],
    ) -> None:
        raise LookupError("boom")

    @app.get("/agen")
    async def agen_route(db: Annotated[AsyncSession, Depends(get_db)]) -> dict[str, Any]:
        return {"count": (await db.execute(COUNT)).scalar_one(), "type": db.__class__.__name__}

    @app.get("/gen")
    def gen_route(db=Depends(get_sync_db)) -> dict[str, Any]:  # noqa: B008
        return {"count": db.execute(COUNT).scalar_one(), "type": db.__class__.__name__}

    @app.get("/coroutine")
    async def coroutine_route(db: AsyncSession = Depends(make_session)) -> dict[str, Any]:  # noqa: B008
        async with db:
            return {"count": (await db.execute(COUNT)).scalar_one(), "type": db.__class__.__name__}

    @app.get("/raises")
    async def raising_route(db: Annotated[AsyncSession, Depends(get_db)]) -> None:
        raise LookupError("boom")

    @app.websocket("/chat")
    async def chat(websocket: WebSocket) -> None:
        # The chat path of the incidents: one session per message, through the
        # @asynccontextmanager provider, used the right way.
        await websocket.accept()
        while True:
            message = await websocket.receive_text()
            if message == "bye":
                break
            async with get_request_scoped_db_session() as db_session:
                count = (await db_session.execute(COUNT)).scalar_one()
            await websocket.send_json({"message": message, "count": count})
        await websocket.close()

    @app.websocket("/chat-wrong")
    async def chat_wrong(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive_text()
        try:
            async for db_session in get_request_scoped_db_session():  # the incident's line
                await db_session.execute(COUNT)
        except protoguard.ProtocolError as exc:
            await websocket.send_json({"code": exc.code, "fix": exc.fix})
        await websocket.close()

    return app, log


class TestDepends:
    """Depends() on a guarded provider behaves as on the unguarded one."""

    @pytest.mark.parametrize(
        ("path", "kind"),
        [
            ("/agen", "agen"),
            ("/gen", "gen"),
            ("/coroutine", "coroutine"),
            ("/acm", "acm"),
            ("/cm", "cm"),
        ],
    )
    def test_endpoint_gets_a_real_session(self, app_and_log, path: str, kind: str) -> None:
        """The endpoint receives the real session and the provider's cleanup runs."""
        app, log = app_and_log
        if kind in ("acm", "cm") and not FASTAPI_UNWRAPS:
            pytest.skip("this FastAPI injects the context manager: see test_old_fastapi_*")
        with TestClient(app) as client:
            response = client.get(path)
        assert response.status_code == 200
        body = response.json()
        assert body["count"] == 2
        assert body["type"] in ("AsyncSession", "Session")
        if kind == "coroutine":
            assert log == ["coroutine: made"]
        else:
            assert log == [f"{kind}: open", f"{kind}: closed"]

    def test_exception_in_endpoint_reaches_provider(self, app_and_log) -> None:
        """An exception in the endpoint reaches the provider (its finally runs) and the app."""
        app, log = app_and_log
        with TestClient(app, raise_server_exceptions=True) as client, pytest.raises(LookupError):
            client.get("/raises")
        assert log == ["agen: open", "agen: closed"]

    @pytest.mark.parametrize(
        ("path", "expected"),
        [
            ("/acm-raises", ["acm: open", "acm: closed"]),
            ("/cm-raises", ["cm: open", "cm: rolled back", "cm: closed"]),
        ],
    )
    def test_exception_reaches_context_manager_provider(
        self, app_and_log, path: str, expected: list[str]
    ) -> None:
        """Through Depends(), the endpoint's exception reaches a context-manager provider."""
        if not FASTAPI_UNWRAPS:
            pytest.skip("this FastAPI injects the context manager: see test_old_fastapi_*")
        app, log = app_and_log
        with TestClient(app) as client, pytest.raises(LookupError):
            client.get(path)
        assert log == expected

    @pytest.mark.parametrize(("path", "kind"), [("/acm", "acm"), ("/cm", "cm")])
    def test_mode_off_at_run_time(self, app_and_log, path: str, kind: str) -> None:
        """Mode "off" set after the provider was guarded (override() in a test,
        configure()): a context-manager provider still works through Depends(), which
        found the generator function inside it; the provider's code runs unguarded."""
        if not FASTAPI_UNWRAPS:
            pytest.skip("this FastAPI injects the context manager: see test_old_fastapi_*")
        app, log = app_and_log
        with TestClient(app) as client, protoguard.override(mode="off"):
            response = client.get(path)
        assert response.status_code == 200
        assert response.json()["count"] == 2
        assert log == [f"{kind}: open", f"{kind}: closed"]

    def test_mode_off_at_decoration(self, async_maker, sync_maker) -> None:
        """PROTOGUARD_MODE=off in production, the providers decorated in it: a guarded
        context-manager provider keeps its guard, so Depends() still drives it (returned
        unchanged, the bare @asynccontextmanager function failed every request), and
        check_app finds nothing to say."""
        if not FASTAPI_UNWRAPS:
            pytest.skip("this FastAPI injects the context manager: see test_old_fastapi_*")
        from protoguard.fastapi import check_app

        protoguard.configure(mode="off")  # the test's fixture restores the mode
        log: list[str] = []

        @protoguard.provider
        @contextlib.asynccontextmanager
        async def get_db():
            async with async_maker() as session:
                log.append("acm: open")
                yield session
                log.append("acm: closed")

        @protoguard.provider
        @contextlib.contextmanager
        def get_sync_db():
            with sync_maker() as session:
                log.append("cm: open")
                yield session
                log.append("cm: closed")

        app = FastAPI()

        @app.get("/acm")
        async def acm_route(db: Annotated[AsyncSession, Depends(get_db)]) -> int:
            return (await db.execute(COUNT)).scalar_one()

        @app.get("/cm")
        def cm_route(db: Annotated[Any, Depends(get_sync_db)]) -> int:
            return db.execute(COUNT).scalar_one()

        assert check_app(app) == []
        with TestClient(app) as client:
            assert [client.get(path).json() for path in ("/acm", "/cm")] == [2, 2]
        assert log == ["acm: open", "acm: closed", "cm: open", "cm: closed"]

    @pytest.mark.parametrize("mode", ["on", "off", "strict"])
    def test_a_partial_of_a_context_manager_provider(self, async_maker, mode: str) -> None:
        """protoguard.provider(functools.partial(tenant_db, "acme")) through Depends():
        FastAPI finds the generator function with the partial's arguments, and the
        endpoint gets the session the provider made with them."""
        import functools

        log: list[str] = []

        @contextlib.asynccontextmanager
        async def tenant_db(tenant: str):
            async with async_maker(info={"tenant": tenant}) as session:
                yield session
            log.append(f"{tenant}: closed")

        acme_db = protoguard.provider(functools.partial(tenant_db, "acme"))
        assert inspect.signature(acme_db) == inspect.signature(functools.partial(tenant_db, "acme"))
        app = FastAPI()

        @app.get("/")
        async def endpoint(db: Annotated[AsyncSession, Depends(acme_db)]) -> dict[str, Any]:
            return {"count": (await db.execute(COUNT)).scalar_one(), "tenant": db.info["tenant"]}

        if not FASTAPI_UNWRAPS:
            pytest.skip("this FastAPI injects the context manager: see test_old_fastapi_*")
        with TestClient(app) as client, protoguard.override(mode=mode):
            response = client.get("/")
        assert response.json() == {"count": 2, "tenant": "acme"}
        assert log == ["acme: closed"]
        assert protoguard.findings() == []

    @pytest.mark.parametrize(
        ("path", "provider"),
        [("/acm", "get_request_scoped_db_session"), ("/cm", "sync_session_scope")],
    )
    def test_old_fastapi_names_depends(self, app_and_log, path: str, provider: str) -> None:
        """On FastAPI < 0.123.5 the endpoint's first use is PG103 naming Depends and the fix."""
        if FASTAPI_UNWRAPS:
            pytest.skip("this FastAPI gives the endpoint the session")
        app, log = app_and_log
        with TestClient(app) as client, pytest.raises(protoguard.ProtocolAttributeError) as info:
            client.get(path)
        error = info.value
        assert error.code == "PG103"
        assert error.call_site is not None
        assert error.call_site.filename == __file__
        assert "db.execute(COUNT)" in linecache.getline(__file__, error.call_site.lineno)
        assert f"on what Depends({provider}) injected" in str(error)
        assert error.fix.startswith("upgrade FastAPI to 0.123.5 or later")
        # The dependency to write instead, spelled out for this provider: valid Python,
        # async for an async provider, sync for a sync one.
        advice, definition = error.fix.split("\n", 1)
        assert advice.endswith("generator:")
        tree = ast.parse(definition)
        dependency = tree.body[0]
        assert dependency.name == f"{provider}_dependency"
        assert isinstance(dependency, ast.AsyncFunctionDef) == (path == "/acm")
        header = ("async def" if path == "/acm" else "def") + f" {provider}_dependency():"
        assert f"\n        {header}\n" in str(error)  # indented under "fix:"
        assert log == []

    @pytest.mark.parametrize(
        ("how", "spelled", "header"),
        [
            ("method", "repo.session", "async def session_dependency():"),
            ("sync method", "repo.sync_session", "def sync_session_dependency():"),
            ("classmethod", "Repo.shared", "async def shared_dependency():"),
            ("function", "get_db", "async def get_db_dependency():"),
        ],
    )
    def test_old_fastapi_fix_for_a_method(
        self, async_maker, sync_maker, how: str, spelled: str, header: str
    ) -> None:
        """What FastAPI before 0.123.5 does with Depends(repo.session), a guarded
        context-manager method: it calls the endpoint with what repo.session() returned.
        The dependency to write instead calls the method as Depends() spells it, and is
        valid Python (a method's qualified name made `async def Repo.session_dependency():`)."""
        import asyncio

        @protoguard.provider
        @contextlib.asynccontextmanager
        async def get_db():
            async with async_maker() as session:
                yield session

        class Repo:
            @protoguard.provider
            @contextlib.asynccontextmanager
            async def session(self):
                async with async_maker() as session:
                    yield session

            @protoguard.provider
            @contextlib.contextmanager
            def sync_session(self):
                with sync_maker() as session:
                    yield session

            @protoguard.provider
            @classmethod
            @contextlib.asynccontextmanager
            async def shared(cls):
                async with async_maker() as session:
                    yield session

        repo = Repo()

        async def endpoint(db: Annotated[AsyncSession, Depends(repo.session)]) -> Any:
            return (await db.execute(COUNT)).scalar_one()

        def sync_endpoint(db: Annotated[Any, Depends(repo.sync_session)]) -> Any:
            return db.execute(COUNT).scalar_one()

        async def shared_endpoint(db: Annotated[AsyncSession, Depends(Repo.shared)]) -> Any:
            return (await db.execute(COUNT)).scalar_one()

        async def function_endpoint(db: Annotated[AsyncSession, Depends(get_db)]) -> Any:
            return (await db.execute(COUNT)).scalar_one()

        calls = {  # as FastAPI 0.123.4 calls each endpoint
            "method": lambda: asyncio.run(endpoint(repo.session())),
            "sync method": lambda: sync_endpoint(repo.sync_session()),
            "classmethod": lambda: asyncio.run(shared_endpoint(Repo.shared())),
            "function": lambda: asyncio.run(function_endpoint(get_db())),
        }
        with pytest.raises(protoguard.ProtocolAttributeError) as info:
            calls[how]()
        error = info.value
        assert error.code == "PG103"
        block = "async with" if header.startswith("async") else "with"
        generator = "an async generator" if block == "async with" else "a generator"
        definition = f"{header}\n    {block} {spelled}() as session:\n        yield session"
        assert error.fix == (
            f"upgrade FastAPI to 0.123.5 or later, or give Depends() {generator}:\n{definition}"
        )
        ast.parse(definition)  # valid Python as it stands

    def test_old_fastapi_names_the_dependency_as_written(self, async_maker) -> None:
        """`from app.db import get_request_scoped_db_session as get_db`, `Depends(get_db)`:
        the message names the dependency as the endpoint writes it, as its fix does, and
        as PG101 names an alias (the definition line gives the provider's own name)."""
        import asyncio

        @protoguard.provider
        @contextlib.asynccontextmanager
        async def get_request_scoped_db_session():
            async with async_maker() as session:
                yield session

        get_db = get_request_scoped_db_session

        async def endpoint(db: Annotated[AsyncSession, Depends(get_db)]) -> Any:
            return (await db.execute(COUNT)).scalar_one()

        with pytest.raises(protoguard.ProtocolAttributeError) as info:
            asyncio.run(endpoint(get_db()))  # as FastAPI 0.123.4 calls it
        error = info.value
        assert error.code == "PG103"
        headline, *rest = str(error).splitlines()
        assert headline == (
            "[PG103] '.execute' on what Depends(get_db) injected: the object get_db() "
            "returned, which is an async context manager, not the session"
        )
        assert any(
            line.startswith("  get_request_scoped_db_session: an @asynccontextmanager function")
            for line in rest
        )
        assert "    async with get_db() as session:" in error.fix.splitlines()


class TestWebSocket:
    """A websocket handler that takes a session per message, like the incidents' chat."""

    def test_session_per_message(self, app_and_log) -> None:
        """Each message opens and closes its own session through the guarded provider."""
        app, log = app_and_log
        with TestClient(app) as client, client.websocket_connect("/chat") as ws:
            for text in ("hello", "again"):
                ws.send_text(text)
                assert ws.receive_json() == {"message": text, "count": 2}
            ws.send_text("bye")
        assert log == ["acm: open", "acm: closed"] * 2

    def test_incident_line_is_named(self, app_and_log) -> None:
        """The incidents' `async for` over the @asynccontextmanager provider is PG101, fixed."""
        app, _ = app_and_log
        with TestClient(app) as client, client.websocket_connect("/chat-wrong") as ws:
            ws.send_text("hi")
            assert ws.receive_json() == {
                "code": "PG101",
                "fix": "async with get_request_scoped_db_session() as db_session:",
            }


def test_unguarded_asynccontextmanager_fails_in_depends(async_maker) -> None:
    """Without protoguard, the same Depends() fails inside FastAPI (what the guard fixes)."""

    @contextlib.asynccontextmanager
    async def get_db():
        async with async_maker() as session:
            yield session

    app = FastAPI()

    @app.get("/")
    async def route(db=Depends(get_db)) -> None:  # noqa: B008
        await db.execute(COUNT)

    with TestClient(app) as client, pytest.raises((TypeError, AttributeError)) as info:
        client.get("/")
    # FastAPI >= 0.123.5 fails resolving the dependency; older ones inject the context
    # manager and the endpoint fails on .execute: either way, nothing names the user's line.
    assert "_AsyncGeneratorContextManager" in str(info.value)


def test_dependency_that_never_yields_is_pg205_in_strict_mode() -> None:
    """A Depends() provider with a path that skips its 'yield': unguarded, FastAPI fails
    with contextlib's bare "generator didn't yield"; in strict mode, PG205 names the
    provider, and is still a RuntimeError."""

    async def get_db(ready: bool = False):
        if ready:
            yield "session"

    guarded = protoguard.provider(mode="strict")(get_db)
    for provider, expected in ((get_db, RuntimeError), (guarded, protoguard.ProviderRuntimeError)):
        app = FastAPI()

        @app.get("/")
        async def route(db=Depends(provider)) -> None:  # noqa: B008
            pass

        with TestClient(app) as client, pytest.raises(RuntimeError) as info:
            client.get("/")
        assert type(info.value) is expected
    assert info.value.code == "PG205"
    assert "finished without yielding" in str(info.value)
    assert info.value.call_site is not None
    assert info.value.call_site.lineno == get_db.__code__.co_firstlineno
    assert protoguard.findings()[0].code == "PG205"


@pytest.mark.parametrize("mode", ["on", "strict"])
def test_a_class_dependency_with_a_guarded_call(async_maker, mode: str) -> None:
    """Depends(Database()), a FastAPI class dependency whose __call__ is the guarded
    provider (what protoguard.provider() on the instance says to do): the endpoint gets
    a real session, the provider's cleanup runs, and there is no finding."""
    closed = []

    class Database:
        @protoguard.provider(mode=mode)
        async def __call__(self):
            async with async_maker() as session:
                try:
                    yield session
                finally:
                    closed.append(True)

    app = FastAPI()

    @app.get("/")
    async def route(db: AsyncSession = Depends(Database())) -> int:  # noqa: B008
        return (await db.execute(COUNT)).scalar_one()

    with TestClient(app) as client:
        assert client.get("/").json() == 2  # the two users conftest's database holds
    assert closed == [True]
    assert protoguard.findings() == []


class TestStrictPG206:
    """PG206 through a real app: a session that escapes the request that opened it."""

    @pytest.fixture(autouse=True)
    def _strict_log(self) -> None:
        protoguard.configure(mode="strict", action="log")

    @pytest.mark.parametrize("dependency", ["guarded generator", "generator over a guarded maker"])
    def test_a_dependency_session_used_by_another_request(self, async_maker, dependency) -> None:
        """Request one's session, kept in a global and used by request two while request
        one is still running: PG206, through the guarded generator itself or through
        FastAPI's usual unguarded generator over a guarded sessionmaker (whose block is
        opened inside that generator)."""
        import asyncio

        import httpx

        guarded_maker = protoguard.provider(async_maker)

        @protoguard.provider
        async def get_db():
            async with async_maker() as session:
                yield session

        async def get_db_from_maker():
            async with guarded_maker() as session:
                yield session

        provider = get_db if dependency == "guarded generator" else get_db_from_maker
        app, kept, events = FastAPI(), {}, {}

        @app.get("/one")
        async def one(db: Annotated[AsyncSession, Depends(provider)]) -> None:
            kept["db"] = db
            events["kept"].set()
            await events["used"].wait()

        @app.get("/two")
        async def two() -> int:
            await events["kept"].wait()
            try:
                return int((await kept["db"].execute(COUNT)).scalar_one())
            finally:
                events["used"].set()

        async def main() -> list[int]:
            events["kept"], events["used"] = asyncio.Event(), asyncio.Event()
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                responses = await asyncio.gather(client.get("/one"), client.get("/two"))
            return [response.status_code for response in responses]

        assert asyncio.run(main()) == [200, 200]  # action "log": the requests go on
        assert [finding.code for finding in protoguard.findings()] == ["PG206"]
        # Where the block was opened: Depends() itself for the guarded generator (the
        # line would be FastAPI's own), the 'async with' line for the guarded maker.
        opened = (
            "by FastAPI's Depends(get_db) and"
            if dependency == "guarded generator"
            else f"at {__file__}:{get_db_from_maker.__code__.co_firstlineno + 1} and"
        )
        assert opened in protoguard.findings()[0].message

    def test_a_session_held_by_the_lifespan(self, async_maker) -> None:
        """One session opened in the app's lifespan and used by every request: PG206 (the
        lifespan's task is running; the session is not the request's)."""

        @protoguard.provider
        @contextlib.asynccontextmanager
        async def session_scope():
            async with async_maker() as session:
                yield session

        @contextlib.asynccontextmanager
        async def lifespan(app: FastAPI) -> Any:
            async with session_scope() as session:
                app.state.db = session
                yield

        app = FastAPI(lifespan=lifespan)

        @app.get("/count")
        async def count() -> int:
            return int((await app.state.db.execute(COUNT)).scalar_one())

        with TestClient(app) as client:
            assert client.get("/count").json() == 2
        assert [finding.code for finding in protoguard.findings()] == ["PG206"]


# FastAPI 0.121 added Depends(scope=...): "function" ends a dependency's block when the
# endpoint returns, "request" (the default) once the response has been sent.
DEPENDS_HAS_SCOPE = "scope" in inspect.signature(Depends).parameters


@pytest.mark.skipif(not DEPENDS_HAS_SCOPE, reason="Depends(scope=...) needs FastAPI 0.121+")
class TestStrictAfterTheDependency:
    """PG203 through a real app: work that runs after FastAPI ended the dependency's block
    (a streaming response's body, a background task) using the session it gave."""

    @pytest.fixture(autouse=True)
    def _strict_log(self) -> None:
        protoguard.configure(mode="strict", action="log")

    @staticmethod
    def _app(async_maker, sync_maker, scope: str) -> tuple[FastAPI, dict[str, int]]:
        @protoguard.provider
        async def get_db():
            async with async_maker() as session:
                yield session

        @protoguard.provider
        def get_sync_db():
            with sync_maker() as session:
                yield session

        @protoguard.provider
        async def get_tenant_db(tenant: str = "main"):  # a query parameter, to FastAPI
            async with async_maker() as session:
                yield session

        app, lines = FastAPI(), {}

        @app.get("/stream")
        async def stream(db: Annotated[AsyncSession, Depends(get_db, scope=scope)]) -> Any:
            async def body() -> Any:
                try:
                    yield str((await db.execute(COUNT)).scalar_one())
                finally:
                    await db.close()  # after its block, the use took a connection of its own

            lines["stream"] = body.__code__.co_firstlineno + 2
            return StreamingResponse(body())

        @app.get("/tenant-stream")
        async def tenant_stream(
            db: Annotated[AsyncSession, Depends(get_tenant_db, scope=scope)],
        ) -> Any:
            async def body() -> Any:
                try:
                    yield str((await db.execute(COUNT)).scalar_one())
                finally:
                    await db.close()

            lines["tenant-stream"] = body.__code__.co_firstlineno + 2
            return StreamingResponse(body())

        @app.get("/sync-stream")
        def sync_stream(db: Annotated[Any, Depends(get_sync_db, scope=scope)]) -> Any:
            def body() -> Any:
                try:
                    yield str(db.execute(COUNT).scalar_one())
                finally:
                    db.close()

            lines["sync-stream"] = body.__code__.co_firstlineno + 2
            return StreamingResponse(body())

        @app.get("/background")
        async def background(
            tasks: BackgroundTasks, db: Annotated[AsyncSession, Depends(get_db, scope=scope)]
        ) -> None:
            async def later() -> None:
                try:
                    (await db.execute(COUNT)).scalar_one()
                finally:
                    await db.close()

            lines["background"] = later.__code__.co_firstlineno + 2
            tasks.add_task(later)

        return app, lines

    @pytest.mark.parametrize(
        ("path", "fix"),
        [
            ("/stream", "async with contextlib.asynccontextmanager(get_db)() as db:"),
            ("/sync-stream", "with contextlib.contextmanager(get_sync_db)() as db:"),
            (
                "/tenant-stream",
                "async with contextlib.asynccontextmanager(get_tenant_db)(...) as db:",
            ),
            ("/background", "async with contextlib.asynccontextmanager(get_db)() as db:"),
        ],
    )
    def test_function_scope_ends_before_the_late_work(
        self, async_maker, sync_maker, path: str, fix: str
    ) -> None:
        """With scope="function" the block ends when the endpoint returns: the late use
        is PG203 at its own line, naming Depends() (not a line of FastAPI's) and the
        provider entered where the work runs."""
        app, lines = self._app(async_maker, sync_maker, "function")
        with TestClient(app) as client:
            assert client.get(path).status_code == 200  # action "log": it goes on
        (finding,) = protoguard.findings()
        assert finding.code == "PG203"
        assert finding.call_site.filename == __file__
        assert finding.call_site.lineno == lines[path.strip("/")]
        provider = fix.split("manager(")[1].split(")")[0]
        assert f"(the block opened by FastAPI's Depends({provider}) has exited)" in finding.message
        assert "dependencies/utils.py" not in finding.message  # no line of FastAPI's
        assert finding.message.split("  fix: ")[1].splitlines()[0] == (
            f"use the session only while FastAPI keeps {provider}'s block open (until the "
            "endpoint returns, or until the response has been sent, depending on "
            "Depends(scope=...) and the FastAPI version); for work that runs later (a "
            "streaming response's body, a background task), open a session where it runs: "
            f"{fix}"
        )

    def test_function_scope_with_a_guarded_maker_inside(self, async_maker) -> None:
        """The provider's session comes from a guarded maker: the same finding and fix,
        naming the provider and Depends()."""
        maker = protoguard.provider(async_maker)

        @protoguard.provider
        async def get_db():
            async with maker() as session:
                yield session

        app = FastAPI()

        @app.get("/stream")
        async def stream(db: Annotated[AsyncSession, Depends(get_db, scope="function")]) -> Any:
            async def body() -> Any:
                try:
                    yield str((await db.execute(COUNT)).scalar_one())  # PG203 maker stream
                finally:
                    await db.close()

            return StreamingResponse(body())

        with TestClient(app) as client:
            assert client.get("/stream").status_code == 200
        (finding,) = protoguard.findings()
        assert finding.code == "PG203"
        assert finding.call_site == (__file__, line_of(__file__, "# PG203 maker stream"))
        assert "(the block opened by FastAPI's Depends(get_db) has exited)" in finding.message
        assert (
            finding.message.split("  fix: ")[1]
            .splitlines()[0]
            .endswith(
                "open a session where it runs: "
                "async with contextlib.asynccontextmanager(get_db)() as db:"
            )
        )

    @pytest.mark.parametrize(
        ("kind", "fix"),
        [
            ("@asynccontextmanager", "async with get_db() as db:"),
            ("@contextmanager", "with get_sync_db() as db:"),
            ("@asynccontextmanager with a parameter", "async with get_tenant_db(...) as db:"),
            ("@asynccontextmanager method", "async with repo.opened() as db:"),
            (
                "bound-method generator",
                "async with contextlib.asynccontextmanager(repo.session)() as db:",
            ),
        ],
    )
    def test_function_scope_of_other_providers(
        self, async_maker, sync_maker, kind: str, fix: str
    ) -> None:
        """The same finding and fix for a context-manager provider and a method under
        Depends(): the block FastAPI keeps open, and the provider entered where the late
        work runs, as the user writes it (a context manager as it is; a method by its
        instance, as Depends() has it)."""
        if "contextmanager" in kind and not FASTAPI_UNWRAPS:
            pytest.skip("this FastAPI injects what a context-manager provider returns (PG103)")

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

        @protoguard.provider
        @contextlib.asynccontextmanager
        async def get_tenant_db(tenant: str = "main"):  # a query parameter, to FastAPI
            async with async_maker() as session:
                yield session

        class Repo:
            @protoguard.provider
            async def session(self):
                async with async_maker() as session:
                    yield session

            @protoguard.provider
            @contextlib.asynccontextmanager
            async def opened(self):
                async with async_maker() as session:
                    yield session

        repo = Repo()
        app = FastAPI()

        @app.get("/@asynccontextmanager")
        async def acm(
            tasks: BackgroundTasks, db: Annotated[AsyncSession, Depends(get_db, scope="function")]
        ) -> None:
            async def later() -> None:
                try:
                    (await db.execute(COUNT)).scalar_one()  # PG203 late @asynccontextmanager
                finally:
                    await db.close()

            tasks.add_task(later)

        @app.get("/@contextmanager")
        def cm(tasks: BackgroundTasks, db: Annotated[Any, Depends(get_sync_db, scope="function")]):
            def later() -> None:
                try:
                    db.execute(COUNT).scalar_one()  # PG203 late @contextmanager
                finally:
                    db.close()

            tasks.add_task(later)

        @app.get("/@asynccontextmanager with a parameter")
        async def tenant(
            tasks: BackgroundTasks,
            db: Annotated[AsyncSession, Depends(get_tenant_db, scope="function")],
        ) -> None:
            async def later() -> None:
                try:
                    (await db.execute(COUNT)).scalar_one()  # PG203 late with a parameter
                finally:
                    await db.close()

            tasks.add_task(later)

        @app.get("/@asynccontextmanager method")
        async def method_cm(
            tasks: BackgroundTasks,
            db: Annotated[AsyncSession, Depends(repo.opened, scope="function")],
        ) -> None:
            async def later() -> None:
                try:
                    (await db.execute(COUNT)).scalar_one()  # PG203 late method
                finally:
                    await db.close()

            tasks.add_task(later)

        @app.get("/bound-method generator")
        async def method_gen(
            tasks: BackgroundTasks,
            db: Annotated[AsyncSession, Depends(repo.session, scope="function")],
        ) -> None:
            async def later() -> None:
                try:
                    (await db.execute(COUNT)).scalar_one()  # PG203 late bound-method generator
                finally:
                    await db.close()

            tasks.add_task(later)

        @app.get("/user")
        async def user(name: Annotated[str, Depends(auth.session)]) -> str:
            # Another object's method named as the provider's: not the spelling to use.
            return name

        with TestClient(app) as client:
            assert client.get(f"/{kind}").status_code == 200  # action "log": it goes on
        (finding,) = protoguard.findings()
        assert finding.code == "PG203"
        marker = {
            "@asynccontextmanager with a parameter": "with a parameter",
            "@asynccontextmanager method": "method",
        }.get(kind, kind)
        assert finding.call_site == (__file__, line_of(__file__, f"# PG203 late {marker}"))
        provider = {
            "@asynccontextmanager method": "Repo.opened",
            "bound-method generator": "Repo.session",
        }.get(kind, fix.split("with ", 1)[1].split("(")[0])
        assert f"(the block opened by FastAPI's Depends({provider}) has exited)" in finding.message
        assert finding.message.split("  fix: ")[1].splitlines()[0] == (
            f"use the session only while FastAPI keeps {provider}'s block open (until the "
            "endpoint returns, or until the response has been sent, depending on "
            "Depends(scope=...) and the FastAPI version); for work that runs later (a "
            "streaming response's body, a background task), open a session where it runs: "
            f"{fix}"
        )

    @pytest.mark.parametrize("path", ["/stream", "/tenant-stream", "/sync-stream", "/background"])
    def test_request_scope_lasts_through_the_response(
        self, async_maker, sync_maker, path: str
    ) -> None:
        """With the default scope the block lasts until the response has been sent:
        the same work is no finding."""
        app, _ = self._app(async_maker, sync_maker, "request")
        with TestClient(app) as client:
            response = client.get(path)
        assert response.status_code == 200
        if path != "/background":
            assert response.text == "2"
        assert protoguard.findings() == []

    @pytest.mark.parametrize(
        ("decorator", "fix"),
        [
            (
                "",
                "async with contextlib.asynccontextmanager(tenant_repository.session)() as db:"
                "  # tenant_repository: the TenantRepository instance whose .session Depends()"
                " was given",
            ),
            (
                "@classmethod",
                "async with contextlib.asynccontextmanager(TenantRepository.session)() as db:",
            ),
        ],
        ids=["method", "classmethod"],
    )
    def test_a_method_no_depends_of_the_module_spells(
        self, async_maker, tmp_path, decorator: str, fix: str
    ) -> None:
        """A method provider given to Depends() by an expression that is no dotted name
        (`Depends(repos[0].session)`): the fix names the instance, for the user to put
        theirs in (it named `TenantRepository.session`, the unbound function, which
        called as written is a TypeError); a classmethod stays called by its class."""
        source = tmp_path / "tenant_routes.py"
        source.write_text(
            textwrap.dedent(
                f"""
                from typing import Annotated, Any

                from fastapi import BackgroundTasks, Depends, FastAPI

                import protoguard


                def make_app(async_maker, count):
                    class TenantRepository:
                        {decorator}
                        @protoguard.provider
                        async def session(self):
                            async with async_maker() as session:
                                yield session

                    repos = [TenantRepository()]
                    app = FastAPI()

                    @app.get("/late")
                    async def late(
                        tasks: BackgroundTasks,
                        db: Annotated[Any, Depends(repos[0].session, scope="function")],
                    ) -> None:
                        async def later() -> None:
                            try:
                                (await db.execute(count)).scalar_one()
                            finally:
                                await db.close()

                        tasks.add_task(later)

                    return app, repos[0]
                """
            ),
            encoding="utf-8",
        )
        namespace: dict[str, Any] = {}
        exec(compile(source.read_text(encoding="utf-8"), str(source), "exec"), namespace)
        app, repository = namespace["make_app"](async_maker, COUNT)
        with TestClient(app) as client:
            assert client.get("/late").status_code == 200
        (finding,) = protoguard.findings()
        assert finding.code == "PG203"
        lines = source.read_text(encoding="utf-8").splitlines()
        late = next(i for i, line in enumerate(lines, 1) if "await db.execute(count)" in line)
        assert finding.call_site == (str(source), late)
        said = finding.message.split("  fix: ")[1].splitlines()[0]
        assert said.endswith(f"open a session where it runs: {fix}")
        # The fix as written, the instance named as the note says, runs: no finding.
        protoguard.clear_findings()
        pasted = {
            "contextlib": contextlib,
            "tenant_repository": repository,
            "TenantRepository": type(repository),
            "COUNT": COUNT,
        }
        code = f"async def later():\n    {fix}\n        return (await db.execute(COUNT)).scalar()"
        exec(compile(code, "fix", "exec"), pasted)
        assert asyncio.run(pasted["later"]()) == 2
        assert protoguard.findings() == []

    def test_the_fix_opens_a_block_of_its_own(self, async_maker) -> None:
        """The fix, as written: the streaming body enters the provider itself. No
        finding, and the provider's cleanup runs."""
        closed = []

        @protoguard.provider
        async def get_db():
            async with async_maker() as session:
                yield session
            closed.append(True)

        app = FastAPI()

        @app.get("/stream")
        async def stream() -> Any:
            async def body() -> Any:
                async with contextlib.asynccontextmanager(get_db)() as db:
                    yield str((await db.execute(COUNT)).scalar_one())

            return StreamingResponse(body())

        with TestClient(app) as client:
            assert client.get("/stream").text == "2"
        assert protoguard.findings() == []
        assert closed == [True]


@pytest.mark.skipif(not FASTAPI_UNWRAPS, reason="this FastAPI injects what a wrapper returns")
class TestStrictThroughAWrapper:
    """@protoguard.provider above a functools.wraps wrapper of a generator provider, which
    FastAPI drives as the generator beneath: strict mode watches the session it yields,
    as it does a guarded generator provider's."""

    @pytest.fixture(autouse=True)
    def _strict_log(self) -> None:
        protoguard.configure(mode="strict", action="log")

    @pytest.mark.parametrize("kind", ["async", "sync"])
    def test_a_late_use_is_pg203_and_the_cleanup_runs(
        self, async_maker, sync_maker, kind: str
    ) -> None:
        closed = []

        @protoguard.provider
        @traced
        async def get_db():
            async with async_maker() as session:
                yield session
            closed.append("async")

        @protoguard.provider
        @traced
        def get_sync_db():
            with sync_maker() as session:
                yield session
            closed.append("sync")

        app = FastAPI()

        @app.get("/async")
        async def late(
            tasks: BackgroundTasks, db: Annotated[AsyncSession, Depends(get_db, scope="function")]
        ) -> int:
            async def later() -> None:
                try:
                    await db.execute(COUNT)  # PG203 through a wrapper
                finally:
                    await db.close()

            tasks.add_task(later)
            return int((await db.execute(COUNT)).scalar_one())

        @app.get("/sync")
        def late_sync(
            tasks: BackgroundTasks, db: Annotated[Any, Depends(get_sync_db, scope="function")]
        ) -> int:
            def later() -> None:
                try:
                    db.execute(COUNT)  # PG203 through a sync wrapper
                finally:
                    db.close()

            tasks.add_task(later)
            return int(db.execute(COUNT).scalar_one())

        with TestClient(app) as client:
            assert client.get(f"/{kind}").json() == 2
        assert closed == [kind]
        (finding,) = protoguard.findings()
        assert finding.code == "PG203"
        marker = f"# PG203 through a {'sync ' if kind == 'sync' else ''}wrapper"
        assert finding.call_site == (__file__, line_of(__file__, marker))
        name = "get_db" if kind == "async" else "get_sync_db"
        assert f"(the block opened by FastAPI's Depends({name}) has exited)" in finding.message
        opened = (
            "async with contextlib.asynccontextmanager(get_db)() as db:"
            if kind == "async"
            else "with contextlib.contextmanager(get_sync_db)() as db:"
        )
        assert (
            finding.message.split("  fix: ")[1]
            .splitlines()[0]
            .endswith(f"open a session where it runs: {opened}")
        )

    def test_a_wrapper_of_a_generator_that_never_yields_is_pg205(self) -> None:
        protoguard.configure(action="raise")

        @protoguard.provider
        @traced
        async def get_db(ready: bool = False):
            if ready:
                yield "session"

        app = FastAPI()

        @app.get("/")
        async def route(db=Depends(get_db)) -> None:  # noqa: B008
            pass

        with TestClient(app) as client, pytest.raises(protoguard.ProviderRuntimeError) as info:
            client.get("/")
        assert info.value.code == "PG205"
        assert "finished without yielding" in str(info.value)

    def test_mode_on_hands_contextlib_the_generator(self, async_maker) -> None:
        protoguard.configure(mode="on")
        made = []

        async def sessions():
            async with async_maker() as session:
                yield session

        @protoguard.provider
        @functools.wraps(sessions)
        def get_db():
            made.append(sessions())
            return made[-1]

        app = FastAPI()

        @app.get("/")
        async def route(db: Annotated[AsyncSession, Depends(get_db)]) -> bool:
            return type(db) is AsyncSession

        with TestClient(app) as client:
            assert client.get("/").json() is True
        assert len(made) == 1
