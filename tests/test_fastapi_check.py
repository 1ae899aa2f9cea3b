"""protoguard.fastapi.check_app(): the dependencies that cannot give a session, at startup.

No `from __future__ import annotations` here: FastAPI and check_app read the annotations
at run time.
"""

import ast
import contextlib
import functools
import gc
import importlib
import sys
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from pathlib import Path
from typing import Annotated, Any, Optional

import fastapi
import pytest
from fastapi import APIRouter, Depends, FastAPI, Security, WebSocket, WebSocketDisconnect
from fastapi.security import OAuth2PasswordBearer
from fastapi.staticfiles import StaticFiles
from fastapi.testclient import TestClient
from sqlalchemy.ext.asyncio import AsyncSession, AsyncSessionTransaction, async_sessionmaker
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Host, Mount, Route, Router

import protoguard
import protoguard.fastapi
from protoguard import ProviderInfo, _decorator
from protoguard.fastapi import DependencyProblem, check_app

from .conftest import COUNT, FASTAPI_UNWRAPS, traced

HERE = str(Path(__file__))
SOURCE = Path(__file__).read_text().splitlines()
# FastAPI >= 0.123.5 fails with a TypeError ("... is not an async iterator"), or on older
# Pythons and FastAPIs with an AttributeError ("... has no attribute '__anext__'").
FAILS_TO_ITERATE = (TypeError, AttributeError)
# FastAPI 0.123.4 and earlier inject what a context-manager function returns.
INJECTS = not FASTAPI_UNWRAPS
DOCS = "https://protoguard.readthedocs.io/en/latest/errors/#pg103"


def line_of(marker: str) -> int:
    """The line of this file that ends with the comment ``# <marker>``."""
    return next(i for i, line in enumerate(SOURCE, 1) if line.endswith(f"# {marker}"))


# --- the app under test: each provider as a user would write it ----------------------


def make_app(async_maker: Any, sync_maker: Any) -> FastAPI:
    """An app with HTTP and websocket routes, routers and nested dependencies, some of
    whose dependencies cannot give a session."""

    async def verify_key() -> None:
        """A clean app-level dependency that is no session provider at all."""

    @contextlib.asynccontextmanager  # get_db
    async def get_db():
        async with async_maker() as session:
            yield session

    @contextlib.contextmanager  # get_sync_db
    def get_sync_db():
        with sync_maker() as session:
            yield session

    async def open_db() -> AbstractAsyncContextManager[AsyncSession]:  # open_db
        return async_maker.begin()

    async def begin_transaction() -> AsyncSessionTransaction:  # begin_transaction
        return async_maker().begin()

    def sync_scope() -> AbstractContextManager[Session]:  # sync_scope
        return sync_maker.begin()

    async def get_user(db=Depends(get_db)) -> str:  # noqa: B008
        await db.execute(COUNT)
        return "ada"

    class DbFactory:
        @contextlib.asynccontextmanager  # DbFactory.__call__
        async def __call__(self):
            async with async_maker() as session:
                yield session

    app = FastAPI(dependencies=[Depends(verify_key)])

    @app.get("/items")
    async def list_items(db: Annotated[AsyncSession, Depends(get_db)]) -> int:
        return (await db.execute(COUNT)).scalar_one()  # type: ignore[no-any-return]

    @app.post("/items")
    async def add_item(db=Depends(open_db)) -> int:  # noqa: B008
        return (await db.execute(COUNT)).scalar_one()  # type: ignore[no-any-return]

    @app.get("/me")
    async def me(user: Annotated[str, Depends(get_user)]) -> str:
        return user

    @app.api_route("/sync", methods=["GET", "PUT"])
    def sync_route(db=Depends(sync_scope), other=Depends(get_sync_db)) -> int:  # noqa: B008
        return db.execute(COUNT).scalar_one()  # type: ignore[no-any-return]

    @app.delete("/items")
    def delete_items(db=Depends(sync_scope)) -> int:  # noqa: B008
        return db.execute(COUNT).scalar_one()  # type: ignore[no-any-return]

    @app.websocket("/chat")
    async def chat(websocket: WebSocket, db=Depends(get_db)) -> None:  # noqa: B008
        await websocket.accept()
        await websocket.send_json((await db.execute(COUNT)).scalar_one())
        await websocket.close()

    admin = APIRouter(prefix="/admin", dependencies=[Depends(begin_transaction)])

    @admin.get("/stats", dependencies=[Depends(verify_key)])
    async def stats(db=Security(functools.partial(get_db))) -> None:  # noqa: B008
        pass

    @admin.websocket("/feed")
    async def feed(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.close()

    reports = APIRouter(prefix="/reports")

    @reports.get("/daily")
    async def daily(db=Depends(DbFactory())) -> None:  # noqa: B008
        pass

    admin.include_router(reports)
    app.include_router(admin)
    return app


def _short(name: str) -> str:
    return name.rpartition("<locals>.")[2]


def outcome(returned: str) -> str:
    """What the installed FastAPI does with a context manager a dependency returns."""
    if INJECTS:
        return (
            f"and injects the {returned} it returns, so the endpoint's first use of it as a "
            "session fails with AttributeError."
        )
    return f"and then fails to iterate the {returned} it returns, before the endpoint runs."


def acm_problem(path: str, methods: tuple[str, ...], parameter: str, name: str) -> Any:
    short = name.rpartition("<locals>.")[2]
    # A callable instance's __call__ is written as the method it is.
    owner, _, own = short.rpartition(".")
    defined = f"{own}(self)" if owner else f"{short}()"
    return DependencyProblem(
        path=path,
        methods=methods,
        parameter=parameter,
        provider=ProviderInfo(name, "async context manager", HERE, line_of(short)),
        code="PG103",
        message=(
            f"{short} is an unguarded @asynccontextmanager function: FastAPI calls {short}() "
            + outcome("_AsyncGeneratorContextManager")
        ),
        fix=(
            f"decorate {short} with @protoguard.provider (above @asynccontextmanager), or "
            f"make it an async generator:\nasync def {defined}:\n    async with ... as session:"
            "\n        yield session"
        ),
    )


def cm_problem(path: str, methods: tuple[str, ...], parameter: str) -> Any:
    return DependencyProblem(
        path=path,
        methods=methods,
        parameter=parameter,
        provider=ProviderInfo(
            "make_app.<locals>.get_sync_db", "context manager", HERE, line_of("get_sync_db")
        ),
        code="PG103",
        message=(
            "get_sync_db is an unguarded @contextmanager function: FastAPI calls get_sync_db() "
            + outcome("_GeneratorContextManager")
        ),
        fix=(
            "decorate get_sync_db with @protoguard.provider (above @contextmanager), or make "
            "it a generator:\ndef get_sync_db():\n    with ... as session:\n        yield session"
        ),
    )


def sync_scope_problem(path: str, methods: tuple[str, ...]) -> Any:
    return DependencyProblem(
        path=path,
        methods=methods,
        parameter="db",
        provider=ProviderInfo(
            "make_app.<locals>.sync_scope", "function", HERE, line_of("sync_scope")
        ),
        code="PG103",
        message=(
            "sync_scope is a function that returns a context manager "
            "(AbstractContextManager of Session): Depends() calls it and injects the "
            "context manager, not a session."
        ),
        fix=(
            "make sync_scope a generator that yields the session:\n"
            "def sync_scope():\n    with ... as session:\n        yield session"
        ),
    )


def begin_transaction_problem(path: str, methods: tuple[str, ...]) -> Any:
    return DependencyProblem(
        path=path,
        methods=methods,
        parameter="dependencies[1]",
        provider=ProviderInfo(
            "make_app.<locals>.begin_transaction",
            "coroutine function",
            HERE,
            line_of("begin_transaction"),
        ),
        code="PG103",
        message=(
            "begin_transaction is a coroutine function that returns a context manager "
            "(AsyncSessionTransaction): Depends() awaits it and injects the context manager, "
            "not a session."
        ),
        fix=(
            "make begin_transaction an async generator that yields the session:\n"
            "async def begin_transaction():\n    async with ... as session:\n        yield session"
        ),
    )


@pytest.fixture
def app(async_maker: Any, sync_maker: Any) -> FastAPI:
    return make_app(async_maker, sync_maker)


class TestFindings:
    """Each dependency that cannot give a session is reported, once per route and parameter."""

    def test_every_record(self, app: FastAPI) -> None:
        """The exact records, in route order, then in parameter order within a route."""
        get_db = "make_app.<locals>.get_db"
        assert check_app(app) == [
            acm_problem("/items", ("GET",), "db", get_db),
            DependencyProblem(
                path="/items",
                methods=("POST",),
                parameter="db",
                provider=ProviderInfo(
                    "make_app.<locals>.open_db", "coroutine function", HERE, line_of("open_db")
                ),
                code="PG103",
                message=(
                    "open_db is a coroutine function that returns a context manager "
                    "(AbstractAsyncContextManager of AsyncSession): Depends() awaits it and "
                    "injects the context manager, not a session."
                ),
                fix=(
                    "make open_db an async generator that yields the session:\n"
                    "async def open_db():\n    async with ... as session:\n        yield session"
                ),
            ),
            acm_problem("/me", ("GET",), "user.db", get_db),
            sync_scope_problem("/sync", ("GET", "PUT")),
            cm_problem("/sync", ("GET", "PUT"), "other"),
            sync_scope_problem("/items", ("DELETE",)),
            acm_problem("/chat", ("websocket",), "db", get_db),
            begin_transaction_problem("/admin/stats", ("GET",)),
            acm_problem("/admin/stats", ("GET",), "db", get_db),
            begin_transaction_problem("/admin/feed", ("websocket",)),
            begin_transaction_problem("/admin/reports/daily", ("GET",)),
            acm_problem(
                "/admin/reports/daily",
                ("GET",),
                "db",
                "make_app.<locals>.DbFactory.__call__",
            ),
        ]

    def test_str(self, app: FastAPI) -> None:
        """A record reads as the code, the route and parameter, the why, the site and the fix."""
        problem = check_app(app)[2]
        if INJECTS:
            pytest.skip("the wording for FastAPI >= 0.123.5")
        assert str(problem) == (
            "[PG103] GET /me, parameter user.db: get_db is an unguarded @asynccontextmanager "
            "function: FastAPI calls get_db() and then fails to iterate the "
            "_AsyncGeneratorContextManager it returns, before the endpoint runs.\n"
            f"  get_db: an @asynccontextmanager function, defined at {HERE}:{line_of('get_db')}\n"
            "  fix: decorate get_db with @protoguard.provider (above @asynccontextmanager), "
            "or make it an async generator:\n"
            "        async def get_db():\n"
            "            async with ... as session:\n"
            "                yield session\n"
            f"  docs: {DOCS}"
        )
        assert problem.route == "GET /me"
        assert str(check_app(app)[7]).startswith(
            "[PG103] GET /admin/stats, dependencies[1]: begin_transaction is"
        )

    def test_app_level_dependency_is_reported_per_route(self, sync_maker: Any) -> None:
        """A bad app-level dependency gives one record per route, websockets included."""

        @contextlib.contextmanager  # get_sync_db
        def get_sync_db():
            with sync_maker() as session:
                yield session

        async def verify_key() -> None:
            pass

        app = FastAPI(dependencies=[Depends(verify_key), Depends(get_sync_db)])

        @app.get("/a")
        def a() -> None:
            pass

        @app.websocket("/ws")
        async def ws(websocket: WebSocket) -> None:
            pass

        router = APIRouter(prefix="/r")

        @router.delete("/b")
        def b() -> None:
            pass

        app.include_router(router)
        found = check_app(app)
        assert [(p.route, p.parameter, p.provider.name) for p in found] == [
            ("GET /a", "dependencies[1]", get_sync_db.__qualname__),
            ("websocket /ws", "dependencies[1]", get_sync_db.__qualname__),
            ("DELETE /r/b", "dependencies[1]", get_sync_db.__qualname__),
        ]

    def test_router_included_twice_is_reported_at_each_prefix(self, sync_maker: Any) -> None:
        """A router included at two prefixes gives a record at each; at one prefix, one."""

        @contextlib.contextmanager
        def get_sync_db():
            yield sync_maker()

        router = APIRouter()

        @router.get("/x")
        def x(db=Depends(get_sync_db)) -> None:  # noqa: B008
            pass

        app = FastAPI()
        app.include_router(router, prefix="/v1")
        app.include_router(router, prefix="/v2")
        assert [p.route for p in check_app(app)] == ["GET /v1/x", "GET /v2/x"]

    def test_mounted_app(self, sync_maker: Any) -> None:
        """Routes of a mounted FastAPI sub-application are checked under the mount's path."""

        @contextlib.contextmanager
        def get_sync_db():
            yield sync_maker()

        sub = FastAPI()

        @sub.get("/x")
        def x(db=Depends(get_sync_db)) -> None:  # noqa: B008
            pass

        app = FastAPI()
        app.mount("/sub", sub)
        assert [(p.route, p.parameter) for p in check_app(app)] == [("GET /sub/x", "db")]

    def test_an_apirouter_can_be_checked(self, sync_maker: Any) -> None:
        """check_app() also takes an APIRouter on its own."""

        @contextlib.contextmanager
        def get_sync_db():
            yield sync_maker()

        router = APIRouter(prefix="/r")

        @router.get("/x")
        def x(db=Depends(get_sync_db)) -> None:  # noqa: B008
            pass

        assert [(p.route, p.parameter) for p in check_app(router)] == [("GET /r/x", "db")]

    def test_bound_method(self, sync_maker: Any) -> None:
        """An unguarded @contextmanager method, given bound to Depends(), is reported."""

        class Repo:
            @contextlib.contextmanager
            def session(self):
                with sync_maker() as session:
                    yield session

        app = FastAPI()

        @app.get("/x")
        def x(db=Depends(Repo().session)) -> None:  # noqa: B008
            pass

        (problem,) = check_app(app)
        assert problem.provider.name.endswith("<locals>.Repo.session")
        assert problem.fix.startswith("decorate Repo.session with @protoguard.provider")

    @pytest.mark.parametrize(
        ("how", "named", "code"),
        [
            ("method", "Database.session", "async def session(self):"),
            ("classmethod", "Database.session", "@classmethod\nasync def session(cls):"),
            ("staticmethod", "Database.session", "@staticmethod\nasync def session():"),
            ("callable instance", "Holder.__call__", "async def __call__(self):"),
        ],
    )
    def test_method_fix_is_valid_python(
        self, async_maker: Any, how: str, named: str, code: str
    ) -> None:
        """The generator a method dependency's fix writes out is the method as it is
        written in its class (its own name, with self or cls), Python that parses; the
        prose names it by its qualified name."""

        class Database:
            if how == "method":

                @contextlib.asynccontextmanager
                async def session(self):
                    async with async_maker() as session:
                        yield session

            elif how == "classmethod":

                @classmethod  # type: ignore[misc]
                @contextlib.asynccontextmanager
                async def session(cls):
                    async with async_maker() as session:
                        yield session

            else:

                @staticmethod  # type: ignore[misc]
                @contextlib.asynccontextmanager
                async def session():
                    async with async_maker() as session:
                        yield session

        class Holder:
            @contextlib.asynccontextmanager
            async def __call__(self):
                async with async_maker() as session:
                    yield session

        dependency = Holder() if how == "callable instance" else Database().session
        app = FastAPI()

        @app.get("/users")
        async def users(session: Annotated[AsyncSession, Depends(dependency)]) -> None:
            pass

        (problem,) = check_app(app)
        generator = f"{code}\n    async with ... as session:\n        yield session"
        assert problem.fix == (
            f"decorate {named} with @protoguard.provider (above @asynccontextmanager), or "
            f"make it an async generator:\n{generator}"
        )
        ast.parse(generator)  # valid Python as it stands
        assert f"\n        {code.splitlines()[-1]}\n" in str(problem)  # under "fix:"

    @pytest.mark.parametrize("how", ["method", "classmethod"])
    def test_guarded_method_fix_on_older_fastapi(
        self, sync_maker: Any, monkeypatch: pytest.MonkeyPatch, how: str
    ) -> None:
        """A guarded @contextmanager method that FastAPI 0.123.4 would inject: the
        generator to write instead is the method (self or cls), valid Python."""

        class Database:
            if how == "method":

                @protoguard.provider
                @contextlib.contextmanager
                def session(self):
                    with sync_maker() as session:
                        yield session

            else:

                @protoguard.provider  # type: ignore[misc]
                @classmethod
                @contextlib.contextmanager
                def session(cls):
                    with sync_maker() as session:
                        yield session

        app = FastAPI()

        @app.get("/")
        def count(db: Annotated[Session, Depends(Database().session)]) -> None:
            pass

        monkeypatch.setattr(fastapi, "__version__", "0.123.4")
        (problem,) = check_app(app)
        header = "def session(self):" if how == "method" else "@classmethod\ndef session(cls):"
        generator = f"{header}\n    with ... as session:\n        yield session"
        assert problem.fix == (
            "upgrade FastAPI to 0.123.5 or later, or make Database.session a generator:\n"
            f"{generator}"
        )
        ast.parse(generator)

    def test_method_returning_a_context_manager(self, async_maker: Any) -> None:
        """A coroutine method annotated to return a session's context manager: the
        generator to write is the method, valid Python."""

        class Database:
            async def session(self) -> AbstractAsyncContextManager[AsyncSession]:
                return async_maker.begin()  # type: ignore[no-any-return]

        app = FastAPI()

        @app.get("/")
        async def count(db: Annotated[AsyncSession, Depends(Database().session)]) -> None:
            pass

        (problem,) = check_app(app)
        assert problem.fix == (
            "make Database.session an async generator that yields the session:\n"
            "async def session(self):\n    async with ... as session:\n        yield session"
        )

    def test_older_fastapi_wording(self, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
        """On FastAPI 0.123.4 and earlier, the message says the context manager is injected."""
        monkeypatch.setattr(fastapi, "__version__", "0.123.4")
        assert check_app(app)[0].message == (
            "get_db is an unguarded @asynccontextmanager function: FastAPI calls get_db() and "
            "injects the _AsyncGeneratorContextManager it returns, so the endpoint's first use "
            "of it as a session fails with AttributeError."
        )

    def test_what_a_function_returns(self, async_maker: Any) -> None:
        """Return annotations: a session's iterator or context manager is reported, guarded
        or not, and through a functools.wraps wrapper; a session is not."""

        async def sessions() -> AsyncIterator[AsyncSession]:
            async with async_maker() as session:
                yield session

        async def iterate() -> AsyncIterator[AsyncSession]:
            return sessions()

        @protoguard.provider
        async def guarded() -> AbstractAsyncContextManager[AsyncSession]:
            return async_maker.begin()  # type: ignore[no-any-return]

        @contextlib.asynccontextmanager
        async def get_db():
            async with async_maker() as session:
                yield session

        @functools.wraps(get_db)
        def logged(*args: Any, **kwargs: Any) -> Any:
            return get_db(*args, **kwargs)

        async def make_session() -> AsyncSession:
            return async_maker()  # type: ignore[no-any-return]

        app = FastAPI()

        @app.get("/")
        async def route(
            one=Depends(iterate),  # noqa: B008
            two=Depends(guarded),  # noqa: B008
            three=Depends(logged),  # noqa: B008
            four=Depends(make_session),  # noqa: B008
        ) -> None:
            pass

        found = [(p.parameter, _short(p.provider.name), p.provider.kind) for p in check_app(app)]
        assert found == [
            ("one", "iterate", "coroutine function"),
            ("two", "guarded", "coroutine function"),
            ("three", "get_db", "async context manager"),
        ]
        assert check_app(app)[0].message == (
            "iterate is a coroutine function that returns an iterator (AsyncIterator of "
            "AsyncSession): Depends() awaits it and injects the iterator, not a session."
        )


class TestFindingsAreTrue:
    """What check_app() reports is what FastAPI really does with those dependencies."""

    def test_reported_http_routes_fail(self, app: FastAPI) -> None:
        """The context-manager functions fail inside FastAPI; the injected context manager
        is not a session."""
        with TestClient(app) as client:
            with pytest.raises(FAILS_TO_ITERATE, match="_AsyncGeneratorContextManager"):
                client.get("/items")
            with pytest.raises(FAILS_TO_ITERATE, match="_AsyncGeneratorContextManager"):
                client.get("/me")
            with pytest.raises(AttributeError, match="_AsyncSessionContextManager"):
                client.post("/items")
            with pytest.raises(AttributeError, match="_GeneratorContextManager"):
                client.delete("/items")
            with pytest.raises(FAILS_TO_ITERATE, match="_GeneratorContextManager"):
                client.get("/sync")

    def test_reported_websocket_route_fails(self, app: FastAPI) -> None:
        """The websocket route fails while FastAPI resolves its dependency."""
        client, fails = (
            TestClient(app),
            pytest.raises(FAILS_TO_ITERATE, match="_AsyncGeneratorContextManager"),
        )
        with client, fails, client.websocket_connect("/chat"):
            pass  # pragma: no cover - the connection fails before it opens


def assert_maker_record(
    problem: DependencyProblem, name: str, message: str, does: str, entered: Optional[str]
) -> None:
    """The record of an async_sessionmaker dependency of ``GET /a``'s ``db``: its
    ``message``, and the async generator that ``does`` what the fix says, entering
    ``entered`` (a guarded maker's ``maker()``), or ``...`` for an unguarded maker, which
    ``does`` then explains."""
    assert (problem.route, problem.parameter, problem.code) == ("GET /a", "db", "PG103")
    assert (problem.provider.name, problem.provider.kind) == (name, "async_sessionmaker")
    assert problem.message == message
    assert problem.fix == (
        f"depend on an async generator that {does}:\n"
        f"async def get_db():\n    async with {entered or '...'} as session:\n"
        "        yield session"
    )


class TestSessionMakers:
    """A session maker given to Depends() itself: FastAPI reads its ``**local_kw`` as a
    required query parameter and refuses every request to the route."""

    @staticmethod
    def _app(maker: Any) -> FastAPI:
        app = FastAPI()

        @app.get("/a")
        async def a(db: Annotated[AsyncSession, Depends(maker)]) -> None:
            pass  # pragma: no cover - FastAPI refuses the request first

        return app

    @pytest.mark.parametrize(
        ("how", "name", "shown"),
        [
            ("unguarded", "async_sessionmaker", "an async_sessionmaker"),
            ("guarded", "maker", f"an async_sessionmaker, guarded at {HERE}:"),
            ("partial", "async_sessionmaker", "an async_sessionmaker"),
        ],
    )
    def test_is_reported(self, async_maker: Any, how: str, name: str, shown: str) -> None:
        if how == "guarded":
            maker = protoguard.provider(async_maker)  # guarded maker
        elif how == "partial":
            maker = functools.partial(async_maker, info={"tenant": "a"})
        else:
            maker = async_maker
        (problem,) = check_app(self._app(maker))
        assert_maker_record(
            problem,
            name,
            (
                "maker is an async_sessionmaker: Depends()"
                if how == "guarded"
                else "this async_sessionmaker is given to Depends(), which"
            )
            + " reads its **local_kw as a query parameter the request must send, so FastAPI "
            "refuses every request to the route before the endpoint runs (422, or a websocket "
            "closed with 1008: "
            "local_kw missing).",
            "opens a session from it and yields it"
            + ("" if how == "guarded" else " (... being Session() for a maker named Session)"),
            "maker()" if how == "guarded" else None,
        )
        assert str(problem).splitlines()[1].startswith(f"  {name}: {shown}")
        if how == "guarded":
            assert problem.provider.lineno == line_of("guarded maker")

    def test_sync_maker_is_reported(self, sync_maker: Any) -> None:
        (problem,) = check_app(self._app(sync_maker))
        assert problem.provider.kind == "sessionmaker"
        assert problem.message.startswith("this sessionmaker is given to Depends(), which reads")
        assert problem.fix == (
            "depend on a generator that opens a session from it and yields it (... being "
            "Session() for a maker named Session):\n"
            "def get_db():\n    with ... as session:\n        yield session"
        )

    @pytest.mark.parametrize("guarded", [False, True])
    def test_the_route_really_refuses_every_request(self, async_maker: Any, guarded: bool) -> None:
        maker = protoguard.provider(async_maker) if guarded else async_maker
        app = self._app(maker)

        @app.websocket("/ws")
        async def ws(websocket: WebSocket, db=Depends(maker)) -> None:  # noqa: B008
            await websocket.accept()  # pragma: no cover - FastAPI closes it first

        with TestClient(app) as client:
            response = client.get("/a")
            with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect("/ws"):
                pass  # pragma: no cover - the connection is closed before it opens
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", "local_kw"]
        assert closed.value.code == 1008
        assert [p.route for p in check_app(app)] == ["GET /a", "websocket /ws"]


class NoArgMaker(async_sessionmaker[AsyncSession]):
    """A maker whose __call__ takes no parameter: FastAPI calls it and injects the session."""

    def __call__(self) -> AsyncSession:  # type: ignore[override]
        return super().__call__()


class TenantMaker(async_sessionmaker[AsyncSession]):
    """A maker whose __call__ takes one required parameter."""

    def __call__(self, tenant: str) -> AsyncSession:  # type: ignore[override]
        return super().__call__(info={"tenant": tenant})  # pragma: no cover - refused first


class GeneratorBegin(async_sessionmaker[AsyncSession]):
    """A maker whose begin is an async generator: FastAPI drives it and injects the
    session it yields."""

    async def begin(self) -> AsyncIterator[AsyncSession]:  # type: ignore[override]
        async with super().begin() as session:
            yield session


class TestSessionMakerSubclasses:
    """A maker subclass is judged by the signature and the begin FastAPI really reads."""

    def test_call_without_parameters_is_clean(self, async_engine: Any) -> None:
        maker = NoArgMaker(async_engine)
        app = TestSessionMakers._app(maker)

        @app.get("/b")
        async def b(db: Annotated[AsyncSession, Depends(maker)]) -> int:
            async with db:  # FastAPI injects the session and leaves it open
                return (await db.execute(COUNT)).scalar_one()  # type: ignore[no-any-return]

        with TestClient(app) as client:
            assert client.get("/b").status_code == 200
        assert check_app(app) == []

    def test_required_parameter_is_named(self, async_engine: Any) -> None:
        maker = TenantMaker(async_engine)
        app = TestSessionMakers._app(maker)
        with TestClient(app) as client:
            response = client.get("/a")
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", "tenant"]
        (problem,) = check_app(app)
        assert (problem.code, problem.provider.name) == ("PG103", "TenantMaker")
        assert "reads its tenant as a query parameter" in problem.message
        assert problem.message.endswith("(422, or a websocket closed with 1008: tenant missing).")

    def test_generator_begin_is_clean(self, async_engine: Any) -> None:
        maker = GeneratorBegin(async_engine)
        app = FastAPI()

        @app.get("/a")
        async def a(db: Annotated[AsyncSession, Depends(maker.begin)]) -> int:
            return (await db.execute(COUNT)).scalar_one()  # type: ignore[no-any-return]

        with TestClient(app) as client:
            assert client.get("/a").status_code == 200
        assert check_app(app) == []


# A maker the endpoints below name from their module (never called: it has no engine),
# and a module-level name that is not a maker, which a guarded maker's name may collide with.
SessionLocal = async_sessionmaker()
makers: dict[str, Any] = {}


class TestMakerNamesInFixes:
    """A fix names the maker in code only by a name that is code and that means it in the
    endpoint's module; otherwise ``...``, explained."""

    @staticmethod
    def _fix(entered: str, call: str, does: str) -> str:
        explained = (
            "" if entered != "..." else f" (... being Session{call} for a maker named Session)"
        )
        return (
            f"depend on an async generator that {does}{explained}:\n"
            f"async def get_db():\n    async with {entered} as session:\n        yield session"
        )

    def test_guarded_name_that_is_not_code(self, async_maker: Any) -> None:
        named = protoguard.provider(async_maker, name="primary database")
        (problem,) = check_app(TestSessionMakers._app(named))
        assert problem.message.startswith("primary database is an async_sessionmaker:")
        assert problem.fix == self._fix("...", "()", "opens a session from it and yields it")

    def test_guarded_name_that_means_something_else(self, async_maker: Any) -> None:
        makers = {"a": protoguard.provider(async_maker)}  # the module's makers is another
        app = FastAPI()

        @app.get("/a")
        async def a(db: Annotated[AsyncSession, Depends(makers["a"].begin)]) -> None:
            pass  # pragma: no cover - never requested

        (problem,) = check_app(app)
        assert problem.provider.name == "makers.begin"
        assert problem.fix == self._fix(
            "...", ".begin()", "enters its block and yields the session"
        )

    def test_unguarded_maker_named_from_the_endpoint_module(self) -> None:
        app = TestSessionMakers._app(SessionLocal)

        @app.get("/b")
        async def b(db: Annotated[AsyncSession, Depends(SessionLocal.begin)]) -> None:
            pass  # pragma: no cover - never requested

        called, begun = check_app(app)
        assert called.provider == ProviderInfo("SessionLocal", "async_sessionmaker", None, None)
        assert called.message.startswith("SessionLocal is an async_sessionmaker: Depends() reads")
        assert called.fix == self._fix(
            "SessionLocal()", "()", "opens a session from it and yields it"
        )
        assert begun.provider.name == "SessionLocal.begin"
        assert begun.message.startswith(
            "SessionLocal.begin is the begin() of an async_sessionmaker: Depends() calls it"
        )
        assert begun.fix == self._fix(
            "SessionLocal.begin()", ".begin()", "enters its block and yields the session"
        )


class TestSessionMakerBegin:
    """``Depends(Session.begin)``: FastAPI calls the maker's begin() and injects the
    context manager it returns, which is not a session."""

    @pytest.mark.parametrize(
        ("guarded", "name", "shown"),
        [
            (False, "async_sessionmaker.begin", "an async_sessionmaker"),
            (True, "maker.begin", f"an async_sessionmaker, guarded at {HERE}:"),
        ],
    )
    def test_async(self, async_maker: Any, guarded: bool, name: str, shown: str) -> None:
        maker = protoguard.provider(async_maker) if guarded else async_maker  # begin maker
        app = FastAPI()

        @app.get("/a")
        async def a(db: Annotated[AsyncSession, Depends(maker.begin)]) -> int:
            return (await db.execute(COUNT)).scalar_one()  # type: ignore[no-any-return]

        with TestClient(app) as client, pytest.raises(AttributeError, match="execute"):
            client.get("/a")
        (problem,) = check_app(app)
        assert_maker_record(
            problem,
            name,
            (
                "maker.begin is the begin() of an async_sessionmaker: Depends() calls"
                if guarded
                else "the begin() of this async_sessionmaker is given to Depends(), which calls"
            )
            + " it and injects the context manager it returns, not a session.",
            "enters its block and yields the session"
            + ("" if guarded else " (... being Session.begin() for a maker named Session)"),
            "maker.begin()" if guarded else None,
        )
        assert str(problem).splitlines()[1].startswith(f"  {name}: {shown}")
        if guarded:
            assert problem.provider.lineno == line_of("begin maker")

    @pytest.mark.parametrize("guarded", [False, True])
    def test_sync(self, sync_maker: Any, guarded: bool) -> None:
        maker = protoguard.provider(sync_maker) if guarded else sync_maker
        app = FastAPI()

        @app.get("/a")
        def a(db: Session = Depends(functools.partial(maker.begin))) -> int:  # noqa: B008
            return db.execute(COUNT).scalar_one()  # type: ignore[no-any-return]

        with TestClient(app) as client, pytest.raises(AttributeError, match="execute"):
            client.get("/a")
        (problem,) = check_app(app)
        assert (
            problem.message
            == (
                "maker.begin is the begin() of a sessionmaker: Depends() calls"
                if guarded
                else "the begin() of this sessionmaker is given to Depends(), which calls"
            )
            + " it and injects the context manager it returns, not a session."
        )
        assert problem.fix == (
            "depend on a generator that enters its block and yields the session"
            + ("" if guarded else " (... being Session.begin() for a maker named Session)")
            + ":\ndef get_db():\n    with "
            + ("maker.begin()" if guarded else "...")
            + " as session:\n        yield session"
        )


# --- routes behind Starlette's Host and Mount -------------------------------------------


def users_api(async_maker: Any) -> FastAPI:
    """A sub-application whose HTTP and websocket routes depend on an unguarded
    @asynccontextmanager function, to be served behind a Host or a Mount."""

    @contextlib.asynccontextmanager  # users_api.get_db
    async def get_db():
        async with async_maker() as session:
            yield session

    api = FastAPI()

    @api.get("/users")
    async def users(db=Depends(get_db)) -> int:  # noqa: B008
        return (await db.execute(COUNT)).scalar_one()  # type: ignore[no-any-return]

    @api.websocket("/feed")
    async def feed(websocket: WebSocket, db=Depends(get_db)) -> None:  # noqa: B008
        await websocket.accept()
        await websocket.close()

    return api


def where(found: list[DependencyProblem]) -> list[tuple[str, Any, str, str]]:
    """(route, host, path, parameter) of each record."""
    return [(p.route, p.host, p.path, p.parameter) for p in found]


def fails_as_reported(app: Any, base_url: str, path: str) -> None:
    """A request for ``path`` on the host of ``base_url`` reaches the route and fails in
    its dependency, as check_app() reported."""
    client = TestClient(app, base_url=base_url)
    with client, pytest.raises(FAILS_TO_ITERATE, match="_AsyncGeneratorContextManager"):
        client.get(path)


class TestHostsAndMounts:
    """Routes behind Starlette's Host and Mount, in any nesting, around a FastAPI app, a
    Starlette app or a Router, are checked; a record of a route behind a Host names it."""

    def test_hosted_app(self, async_maker: Any) -> None:
        """app.host(): each record names the host, its route reads as a URL without the
        scheme, and the same path behind two hosts is two records. A request for that
        host fails as reported; another host's is not served."""
        api = users_api(async_maker)
        app = FastAPI()
        app.host("api.example.com", api)
        app.host("{tenant}.example.org", api)
        found = check_app(app)
        assert where(found) == [
            ("GET api.example.com/users", "api.example.com", "/users", "db"),
            ("websocket api.example.com/feed", "api.example.com", "/feed", "db"),
            ("GET {tenant}.example.org/users", "{tenant}.example.org", "/users", "db"),
            ("websocket {tenant}.example.org/feed", "{tenant}.example.org", "/feed", "db"),
        ]
        assert found[0].provider == ProviderInfo(
            "users_api.<locals>.get_db",
            "async context manager",
            HERE,
            line_of("users_api.get_db"),
        )
        assert str(found[0]).startswith(
            "[PG103] GET api.example.com/users, parameter db: get_db is an unguarded "
            "@asynccontextmanager function"
        )
        fails_as_reported(app, "http://api.example.com", "/users")
        fails_as_reported(app, "http://acme.example.org", "/users")
        with TestClient(app, base_url="http://www.example.com") as client:
            assert client.get("/users").status_code == 404

    def test_nested_hosts_and_mounts(self, async_maker: Any, tmp_path: Path) -> None:
        """A Host inside a Mount, a Mount inside a Host, around a Router or a Starlette
        app: the record shows the host the request must name and the full path. Apps
        without routes of their own (StaticFiles) and Starlette's own routes give none."""

        def plain(request: Request) -> PlainTextResponse:
            return PlainTextResponse("plain")

        api = users_api(async_maker)
        app = FastAPI()
        app.mount("/static", StaticFiles(directory=tmp_path))
        admin = Host("admin.example.com", app=Router([Mount("/v1", app=api)]))
        app.mount("/r", Router([admin, Mount("/api", routes=[Mount("/v2", app=api)])]))
        app.mount(
            "/tenants",
            Starlette(routes=[Route("/plain", plain), Host("{tenant}.example.com", app=api)]),
        )
        tenant = "{tenant}.example.com"
        assert where(check_app(app)) == [
            ("GET admin.example.com/r/v1/users", "admin.example.com", "/r/v1/users", "db"),
            ("websocket admin.example.com/r/v1/feed", "admin.example.com", "/r/v1/feed", "db"),
            ("GET /r/api/v2/users", None, "/r/api/v2/users", "db"),
            ("websocket /r/api/v2/feed", None, "/r/api/v2/feed", "db"),
            (f"GET {tenant}/tenants/users", tenant, "/tenants/users", "db"),
            (f"websocket {tenant}/tenants/feed", tenant, "/tenants/feed", "db"),
        ]
        fails_as_reported(app, "http://admin.example.com", "/r/v1/users")
        fails_as_reported(app, "http://acme.example.com", "/tenants/users")
        fails_as_reported(app, "http://testserver", "/r/api/v2/users")
        with TestClient(app, base_url="http://acme.example.com") as client:
            assert client.get("/tenants/plain").text == "plain"

    def test_host_in_an_included_router(self, async_maker: Any) -> None:
        """A Host in a router included with a prefix is reported where FastAPI serves it:
        beneath the prefix, on FastAPI versions that keep an included router as one node.
        Those that copy an included router's routes leave a Host out, and serve nothing."""
        router = APIRouter()
        router.host("api.example.com", users_api(async_maker))
        app = FastAPI()
        app.include_router(router, prefix="/v2")
        found = check_app(app)
        with TestClient(app, base_url="http://api.example.com") as client:
            try:
                served = client.get("/v2/users").status_code != 404
            except FAILS_TO_ITERATE:
                served = True
        if served:
            assert where(found) == [
                ("GET api.example.com/v2/users", "api.example.com", "/v2/users", "db"),
                ("websocket api.example.com/v2/feed", "api.example.com", "/v2/feed", "db"),
            ]
        else:
            assert found == []

    def test_app_mounted_in_itself(self, async_maker: Any) -> None:
        """An app mounted (or hosted) inside itself is walked once, not without end."""
        app = users_api(async_maker)
        app.mount("/again", app)
        app.host("again.example.com", app)
        assert [p.route for p in check_app(app)] == ["GET /users", "websocket /feed"]


# --- a clean app: every kind that gives a session --------------------------------------


def make_clean_app(async_maker: Any, sync_maker: Any) -> FastAPI:
    """Guarded providers of every kind, plain generators, and what is no evidence."""

    @protoguard.provider
    @contextlib.asynccontextmanager
    async def guarded_acm():
        async with async_maker() as session:
            yield session

    @protoguard.provider
    @contextlib.contextmanager
    def guarded_cm():
        with sync_maker() as session:
            yield session

    @protoguard.provider
    async def guarded_agen():
        async with async_maker() as session:
            yield session

    @protoguard.provider
    def guarded_gen():
        with sync_maker() as session:
            yield session

    @protoguard.provider
    async def guarded_coroutine() -> AsyncSession:
        return async_maker()

    async def get_db() -> AsyncIterator[AsyncSession]:
        async with async_maker() as session:
            yield session

    def get_sync_db() -> Iterator[Session]:
        with sync_maker() as session:
            yield session

    async def make_session() -> AsyncSession:
        return async_maker()  # type: ignore[no-any-return]

    def make_sync_session() -> Session:
        return sync_maker()  # type: ignore[no-any-return]

    class Throttle:
        async def __aenter__(self) -> None:
            pass

        async def __aexit__(self, *exc_info: object) -> None:
            pass

    async def get_lock() -> AbstractAsyncContextManager[None]:
        # A context manager that is no session's: not evidence of anything.
        return Throttle()

    async def unannotated():
        # Returns a context manager, but nothing says so before it runs.
        return async_maker.begin()

    class Repo:
        @protoguard.provider
        @contextlib.asynccontextmanager
        async def session(self):
            async with async_maker() as session:
                yield session

    class Settings:
        def __init__(self, debug: bool = False) -> None:
            self.debug = debug

    oauth2 = OAuth2PasswordBearer(tokenUrl="token")

    app = FastAPI(dependencies=[Depends(guarded_cm)])

    @app.get("/a")
    async def a(
        one: Annotated[AsyncSession, Depends(guarded_acm)],
        two: Annotated[AsyncSession, Depends(guarded_agen)],
        three: Annotated[AsyncSession, Depends(guarded_coroutine)],
        four: Annotated[AsyncSession, Depends(get_db)],
        five: Annotated[AsyncSession, Depends(make_session)],
        eight: Annotated[AsyncSession, Depends(Repo().session)],
        nine: Annotated[AsyncSession, Depends(functools.partial(guarded_acm))],
    ) -> None:
        pass

    @app.get("/b")
    def b(
        one: Session = Depends(guarded_gen),  # noqa: B008
        two: Session = Depends(get_sync_db),  # noqa: B008
        three: Session = Depends(make_sync_session),  # noqa: B008
        settings: Settings = Depends(),  # noqa: B008
        token: str = Security(oauth2),
    ) -> None:
        pass

    @app.websocket("/ws")
    async def ws(
        websocket: WebSocket,
        lock: Any = Depends(get_lock),  # noqa: B008
        other: Any = Depends(unannotated),  # noqa: B008
    ) -> None:
        pass

    router = APIRouter(prefix="/r", dependencies=[Depends(guarded_acm)])

    @router.get("/c")
    async def c(db=Depends(guarded_agen)) -> None:  # noqa: B008
        pass

    app.include_router(router)
    return app


class TestClean:
    """Dependencies that give a session, or where there is no evidence, give no record."""

    def test_clean_app(self, async_maker: Any, sync_maker: Any) -> None:
        """Guarded providers of every kind and plain (async) generators give []."""
        found = check_app(make_clean_app(async_maker, sync_maker))
        if INJECTS:
            # Only FastAPI >= 0.123.5 looks beneath @protoguard.provider.
            assert {_short(p.provider.name) for p in found} == {
                "guarded_cm",
                "guarded_acm",
                "Repo.session",
            }
        else:
            assert found == []

    def test_guarded_on_older_fastapi(
        self, async_maker: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """FastAPI 0.123.4 and earlier inject what a guarded context-manager provider
        returns, and the record says so."""

        @protoguard.provider
        @contextlib.asynccontextmanager
        async def get_db():
            async with async_maker() as session:
                yield session

        app = FastAPI()

        @app.get("/")
        async def count(db: Annotated[AsyncSession, Depends(get_db)]) -> None:
            pass

        monkeypatch.setattr(fastapi, "__version__", "0.123.4")
        (problem,) = check_app(app)
        assert (problem.route, problem.parameter, problem.code) == ("GET /", "db", "PG103")
        assert problem.message == (
            "get_db is a guarded async context manager, but FastAPI 0.123.4 does not look "
            "beneath @protoguard.provider: Depends() calls get_db() and injects the context "
            "manager it returns, so the endpoint's first use of it as a session raises PG103 "
            "(AttributeError where protoguard is off)."
        )
        assert problem.fix == (
            "upgrade FastAPI to 0.123.5 or later, or make get_db an async generator:\n"
            "async def get_db():\n    async with ... as session:\n        yield session"
        )

    def test_clean_app_really_serves_sessions(self, async_maker: Any, sync_maker: Any) -> None:
        """The guarded context-manager providers give the endpoint a real session."""
        if INJECTS:
            pytest.skip("FastAPI 0.123.4 and earlier inject the context manager")
        app = FastAPI()

        @protoguard.provider
        @contextlib.asynccontextmanager
        async def get_db():
            async with async_maker() as session:
                yield session

        @app.get("/")
        async def count(db: Annotated[AsyncSession, Depends(get_db)]) -> int:
            return (await db.execute(COUNT)).scalar_one()  # type: ignore[no-any-return]

        assert check_app(app) == []
        with TestClient(app) as client:
            assert client.get("/").json() == 2

    def test_empty_app(self) -> None:
        """An app without routes of its own has nothing to report."""
        assert check_app(FastAPI()) == []


def traced_async(func: Any) -> Any:
    """The same wrapper written as a coroutine function: calling it gives a coroutine."""

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper


def wrapped_generators_app(async_maker: Any, sync_maker: Any) -> FastAPI:
    """An async and a sync generator provider behind a functools.wraps wrapper, which
    copies their return annotations (a session's iterator) onto a plain function."""

    @traced
    async def get_db() -> AsyncIterator[AsyncSession]:
        async with async_maker() as session:
            yield session

    @traced
    def get_sync_db() -> Iterator[Session]:
        with sync_maker() as session:
            yield session

    app = FastAPI()

    @app.get("/async")
    async def count(db: Annotated[AsyncSession, Depends(get_db)]) -> int:
        return (await db.execute(COUNT)).scalar_one()  # type: ignore[no-any-return]

    @app.get("/sync")
    def sync_count(db: Annotated[Session, Depends(functools.partial(get_sync_db))]) -> int:
        return db.execute(COUNT).scalar_one()  # type: ignore[no-any-return]

    return app


def injected_iterators(found: list[DependencyProblem]) -> list[tuple[str, str]]:
    """What FastAPI 0.123.4 and earlier do with wrapped_generators_app's providers."""
    assert [(p.route, p.parameter, p.provider.kind) for p in found] == [
        ("GET /async", "db", "function"),
        ("GET /sync", "db", "function"),
    ]
    return [(_short(p.provider.name), p.message) for p in found]


INJECTED_ITERATORS = [
    (
        "get_db",
        "get_db is a function that returns an iterator (AsyncIterator of AsyncSession): "
        "Depends() calls it and injects the iterator, not a session.",
    ),
    (
        "get_sync_db",
        "get_sync_db is a function that returns an iterator (Iterator of Session): "
        "Depends() calls it and injects the iterator, not a session.",
    ),
]


class TestWrappers:
    """A functools.wraps wrapper is classified as FastAPI classifies it: 0.123.5 and later
    by the function beneath (through __wrapped__), earlier ones by the wrapper itself."""

    def test_wrapped_generators_give_a_session(self, async_maker: Any, sync_maker: Any) -> None:
        """FastAPI drives a wrapped (async) generator as the generator it is, so the return
        annotation the wrapper copied is no evidence: no record, and the endpoint gets the
        session. FastAPI 0.123.4 and earlier inject the generator, and the records say so."""
        app = wrapped_generators_app(async_maker, sync_maker)
        found = check_app(app)
        with TestClient(app) as client:
            if INJECTS:
                assert injected_iterators(found) == INJECTED_ITERATORS
                with pytest.raises(AttributeError, match="'async_generator' object has no"):
                    client.get("/async")
                with pytest.raises(AttributeError, match="'generator' object has no"):
                    client.get("/sync")
            else:
                assert found == []
                assert client.get("/async").json() == 2
                assert client.get("/sync").json() == 2

    def test_wrapped_generators_on_older_fastapi(
        self, async_maker: Any, sync_maker: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """On FastAPI 0.123.4 and earlier, which do not look beneath the wrapper, the
        copied annotation is what FastAPI injects: both providers are reported."""
        monkeypatch.setattr(fastapi, "__version__", "0.123.4")
        found = check_app(wrapped_generators_app(async_maker, sync_maker))
        assert injected_iterators(found) == INJECTED_ITERATORS

    def test_no_generator_beneath(self, async_maker: Any) -> None:
        """A plain function annotated to return a session's iterator or context manager,
        wrapped or not, with no generator function beneath it, is injected as it is:
        reported, and the endpoint's first use of it fails."""

        async def sessions() -> AsyncIterator[AsyncSession]:
            async with async_maker() as session:
                yield session

        def iterate() -> AsyncIterator[AsyncSession]:
            return sessions()

        @traced
        def scope() -> AbstractAsyncContextManager[AsyncSession]:
            return async_maker.begin()  # type: ignore[no-any-return]

        app = FastAPI()

        @app.get("/iterate")
        async def one(db: Annotated[AsyncSession, Depends(iterate)]) -> int:
            return (await db.execute(COUNT)).scalar_one()  # type: ignore[no-any-return]

        @app.get("/scope")
        async def two(db: Annotated[AsyncSession, Depends(scope)]) -> int:
            return (await db.execute(COUNT)).scalar_one()  # type: ignore[no-any-return]

        assert [(p.route, p.message) for p in check_app(app)] == [
            (
                "GET /iterate",
                "iterate is a function that returns an iterator (AsyncIterator of "
                "AsyncSession): Depends() calls it and injects the iterator, not a session.",
            ),
            (
                "GET /scope",
                "scope is a function that returns a context manager (AbstractAsyncContextManager"
                " of AsyncSession): Depends() calls it and injects the context manager, not a "
                "session.",
            ),
        ]
        with TestClient(app) as client:
            with pytest.raises(AttributeError, match="'async_generator' object has no"):
                client.get("/iterate")
            with pytest.raises(AttributeError, match="'_AsyncSessionContextManager' object"):
                client.get("/scope")

    def test_guard_above_or_beneath_the_wrapper(self, async_maker: Any) -> None:
        """@protoguard.provider above a functools.wraps wrapper of an async generator
        guards a plain function; FastAPI 0.123.5 and later drive it as the generator
        beneath, and contextlib gets that generator: it works, as the unguarded wrapper
        does, and so does the guard beneath the wrapper, on the generator itself."""

        async def get_db() -> AsyncIterator[AsyncSession]:
            async with async_maker() as session:
                yield session

        app = FastAPI()

        @app.get("/above")
        async def above(db=Depends(protoguard.provider(traced(get_db)))) -> int:  # noqa: B008
            return (await db.execute(COUNT)).scalar_one()  # type: ignore[no-any-return]

        @app.get("/beneath")
        async def beneath(db=Depends(traced(protoguard.provider(get_db)))) -> int:  # noqa: B008
            return (await db.execute(COUNT)).scalar_one()  # type: ignore[no-any-return]

        found = check_app(app)
        with TestClient(app) as client:
            if INJECTS:
                # Neither is driven as a generator: both inject what they return.
                assert [(p.route, p.provider.kind) for p in found] == [
                    ("GET /above", "function"),
                    ("GET /beneath", "function"),
                ]
                for path in ("/above", "/beneath"):
                    with pytest.raises(AttributeError, match=r"async.generator"):
                        client.get(path)
                return
            assert found == []
            assert client.get("/above").json() == 2
            assert client.get("/beneath").json() == 2

    def test_a_wrapper_of_a_guarded_context_manager_is_judged_as_itself(
        self, async_maker: Any
    ) -> None:
        """functools.wraps copies a guarded provider's mark onto its wrapper: the wrapper
        is judged as what it is, not taken for the guarded provider. A coroutine
        function around a guarded @asynccontextmanager fails in Depends() and is reported;
        a plain one works."""

        @protoguard.provider
        @contextlib.asynccontextmanager
        async def get_db() -> AsyncIterator[AsyncSession]:
            async with async_maker() as session:
                yield session

        app = FastAPI()

        @app.get("/plain")
        async def plain(db=Depends(traced(get_db))) -> int:  # noqa: B008
            return (await db.execute(COUNT)).scalar_one()  # type: ignore[no-any-return]

        @app.get("/async")
        async def coroutine(db=Depends(traced_async(get_db))) -> int:  # noqa: B008
            return (await db.execute(COUNT)).scalar_one()  # type: ignore[no-any-return]

        found = check_app(app)
        if INJECTS:
            pytest.skip("this FastAPI injects what a dependency returns: see TestDepends")
        assert [(p.route, p.provider.kind) for p in found] == [("GET /async", "coroutine function")]
        with TestClient(app) as client, warnings.catch_warnings():
            assert client.get("/plain").json() == 2
            # The coroutine FastAPI calls for but cannot iterate is never awaited.
            warnings.simplefilter("ignore", RuntimeWarning)
            with pytest.raises(FAILS_TO_ITERATE, match="coroutine"):
                client.get("/async")
            gc.collect()  # its warning, while it is ignored

    def test_a_guarded_wrapper_method(self, sync_maker: Any) -> None:
        """@protoguard.provider on a functools.wraps wrapper method of a generator, bound
        to an instance: FastAPI drives it as the generator, through the bound method,
        and contextlib gets that generator; a coroutine wrapper method is reported as the
        guarded function it is."""

        class Repo:
            def _sessions(self):
                with sync_maker() as session:
                    yield session

            @protoguard.provider
            @functools.wraps(_sessions)
            def sessions(self):
                return self._sessions()

            @protoguard.provider
            @functools.wraps(_sessions)
            async def broken(self):
                return self._sessions()

        repo = Repo()
        assert protoguard.provider(repo.sessions) is not None
        assert _decorator._guarded_info(repo.sessions) is not None  # bound, still guarded
        app = FastAPI()

        @app.get("/")
        def count(db=Depends(repo.sessions)) -> int:  # noqa: B008
            return db.execute(COUNT).scalar_one()  # type: ignore[no-any-return]

        @app.get("/broken")
        async def broken(db=Depends(repo.broken)) -> None:  # noqa: B008
            pass

        if INJECTS:
            pytest.skip("this FastAPI injects what a dependency returns: see TestDepends")
        found = check_app(app)
        assert [(p.route, p.provider.kind) for p in found] == [
            ("GET /broken", "coroutine function")
        ]
        assert found[0].message.startswith("Repo._sessions is a guarded coroutine function")
        with TestClient(app) as client:
            assert client.get("/").json() == 2

    def test_coroutine_wrapper_of_a_generator(self, async_maker: Any) -> None:
        """A wrapper written as a coroutine function around an async generator fails either
        way: FastAPI 0.123.5 and later classify it by the generator beneath, then cannot
        iterate the coroutine it returns; earlier ones await it and inject the generator."""

        @traced_async
        async def get_db() -> AsyncIterator[AsyncSession]:
            async with async_maker() as session:
                yield session

        app = FastAPI()

        @app.get("/")
        async def count(db: Annotated[AsyncSession, Depends(get_db)]) -> int:
            return (await db.execute(COUNT)).scalar_one()  # type: ignore[no-any-return]

        (problem,) = check_app(app)
        assert (problem.route, problem.parameter, problem.provider.kind) == (
            "GET /",
            "db",
            "coroutine function",
        )
        with TestClient(app) as client:
            if INJECTS:
                assert problem.message == (
                    "get_db is a coroutine function that returns an iterator (AsyncIterator "
                    "of AsyncSession): Depends() awaits it and injects the iterator, not a "
                    "session."
                )
                with pytest.raises(AttributeError, match="'async_generator' object has no"):
                    client.get("/")
                return
            assert problem.message == (
                "get_db is a coroutine function that wraps a generator function: FastAPI "
                "sees the generator function beneath (through __wrapped__), calls get_db() "
                "and then fails to iterate the coroutine it returns, before the endpoint runs."
            )
            assert problem.fix == (
                "make the wrapper of get_db a plain function (def, not async def) that "
                "returns what the function beneath returns"
            )
            with warnings.catch_warnings():
                # The coroutine FastAPI calls for but cannot iterate is never awaited.
                warnings.simplefilter("ignore", RuntimeWarning)
                with pytest.raises(FAILS_TO_ITERATE, match="coroutine"):
                    client.get("/")
                gc.collect()


class TestDocs:
    """The example in docs/fastapi-check.md runs and prints what the page shows."""

    def test_example(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The page's first Python block, run as app.py, prints its first text block."""
        if INJECTS:
            pytest.skip("the page shows the output of FastAPI >= 0.123.5")
        page = (Path(__file__).parents[1] / "docs" / "fastapi-check.md").read_text()
        code = page.split("```python\n", 1)[1].split("```", 1)[0]
        shown = page.split("```text\n", 1)[1].split("```", 1)[0]
        exec(compile(code, "app.py", "exec"), {"__name__": "app"})
        assert capsys.readouterr().out == shown

    def test_no_record_list_leaves_out_what_is_reported(self) -> None:
        """The page's list of what gives no record does not take in guarded session makers
        or guarded coroutines and functions, which its table (and check_app) report."""
        page = (Path(__file__).parents[1] / "docs" / "fastapi-check.md").read_text()
        sentence = page.split("Guarded providers of every kind", 1)[1].split("no record", 1)[0]
        assert sentence.startswith(" but session makers and the coroutines and functions")


class TestModule:
    """The public module: its surface, its argument check, its missing-FastAPI error."""

    def test_public_surface(self) -> None:
        """protoguard.fastapi exports check_app and DependencyProblem, under its own name."""
        assert protoguard.fastapi.__all__ == ["DependencyProblem", "check_app"]
        assert check_app.__module__ == "protoguard.fastapi"
        assert DependencyProblem.__module__ == "protoguard.fastapi"
        assert not hasattr(protoguard, "DependencyProblem")

    def test_not_an_app(self) -> None:
        """Anything without routes is refused by type, not value."""
        with pytest.raises(
            TypeError, match=r"takes a FastAPI app or an APIRouter, not an instance of str"
        ):
            check_app("secret")

    def test_without_fastapi(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without FastAPI, importing protoguard.fastapi names the extra to install."""
        monkeypatch.setitem(sys.modules, "fastapi", None)
        monkeypatch.delitem(sys.modules, "protoguard.fastapi")
        monkeypatch.delitem(sys.modules, "protoguard._fastapi_check")
        with pytest.raises(ImportError, match=r"pip install 'protoguard\[fastapi\]'"):
            importlib.import_module("protoguard.fastapi")
