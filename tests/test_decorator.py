"""@provider itself: what it accepts, what it refuses, and what it keeps."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import protoguard
from protoguard import ProtocolError


@contextlib.asynccontextmanager
async def get_db(dsn: str, *, echo: bool = False):
    """Hand out one session."""
    yield (dsn, echo)


async def agen_provider():
    yield "session"


def gen_provider():
    yield "session"


async def coro_provider():
    return "session"


def plain_provider():
    return "session"


class TestAccepts:
    """Every provider kind is recognised at decoration."""

    @pytest.mark.parametrize(
        ("func", "kind"),
        [
            (get_db, "async context manager"),
            (contextlib.contextmanager(gen_provider), "context manager"),
            (agen_provider, "async generator"),
            (gen_provider, "generator"),
            (coro_provider, "coroutine function"),
            (plain_provider, "function"),
            (functools.partial(get_db, "sqlite://"), "async context manager"),
            (lambda: None, "function"),
        ],
    )
    def test_kind(self, func, kind: str) -> None:
        """The guarded provider records its kind in __protoguard_provider__."""
        guarded = protoguard.provider(func)
        assert guarded.__protoguard_provider__.kind == kind

    def test_async_sessionmaker(self, async_engine) -> None:
        """An async_sessionmaker is guarded and named after the variable it is assigned to."""
        Session = protoguard.provider(async_sessionmaker(async_engine))
        info = Session.__protoguard_provider__
        assert (info.name, info.kind) == ("Session", "async_sessionmaker")
        assert info.filename == __file__
        assert isinstance(Session, async_sessionmaker)
        session = Session()
        assert isinstance(session, AsyncSession)

    def test_name_option(self) -> None:
        """@provider(name=...) replaces the name used in messages."""
        guarded = protoguard.provider(name="primary_db")(get_db)
        assert guarded.__protoguard_provider__.name == "primary_db"

    def test_methods(self) -> None:
        """Methods, classmethods and staticmethods keep binding as they did."""

        class Repo:
            @protoguard.provider
            @contextlib.asynccontextmanager
            async def session(self):
                yield self

            @protoguard.provider
            @classmethod
            @contextlib.asynccontextmanager
            async def cls_session(cls):
                yield cls

            @protoguard.provider
            @staticmethod
            @contextlib.asynccontextmanager
            async def static_session():
                yield "static"

        repo = Repo()

        async def main() -> list[object]:
            got = []
            for cm in (repo.session(), Repo.cls_session(), Repo.static_session()):
                async with cm as value:
                    got.append(value)
            return got

        assert asyncio.run(main()) == [repo, Repo, "static"]

        async def misuse() -> None:
            async for _ in Repo.cls_session():
                pass

        with pytest.raises(ProtocolError, match="PG101"):
            asyncio.run(misuse())

    def test_bound_method_of_unguarded_provider(self) -> None:
        """provider(obj.method) guards that bound method."""

        class Repo:
            @contextlib.asynccontextmanager
            async def session(self):
                yield self

        repo = Repo()
        guarded = protoguard.provider(repo.session)
        assert (
            guarded.__protoguard_provider__.name
            == "TestAccepts.test_bound_method_of_unguarded_provider.<locals>.Repo.session"
        )
        assert isinstance(guarded(), contextlib._AsyncGeneratorContextManager)


class TestKeeps:
    """The guarded provider keeps what the unguarded one had."""

    def test_metadata(self) -> None:
        """Name, qualname, docstring, module, signature and __wrapped__ are kept."""
        guarded = protoguard.provider(get_db)
        assert guarded.__name__ == "get_db"
        assert guarded.__qualname__ == "get_db"
        assert guarded.__doc__ == "Hand out one session."
        assert guarded.__module__ == __name__
        assert guarded.__wrapped__ is get_db
        assert inspect.signature(guarded) == inspect.signature(get_db)

    @pytest.mark.parametrize("func", [agen_provider, gen_provider, coro_provider])
    def test_inspect_predicates(self, func) -> None:
        """inspect's kind predicates answer as for the unguarded function."""
        guarded = protoguard.provider(func)
        for predicate in (
            inspect.isasyncgenfunction,
            inspect.isgeneratorfunction,
            inspect.iscoroutinefunction,
            inspect.isfunction,
        ):
            assert predicate(guarded) == predicate(func), predicate.__name__

    @pytest.mark.parametrize("func", [get_db, agen_provider, gen_provider, coro_provider])
    def test_idempotent(self, func) -> None:
        """Decorating a guarded provider again returns it as it is."""
        guarded = protoguard.provider(func)
        assert protoguard.provider(guarded) is guarded

    def test_idempotent_sessionmaker(self, async_engine) -> None:
        """Guarding a guarded session maker again returns it as it is."""
        maker = protoguard.provider(async_sessionmaker(async_engine))
        assert protoguard.provider(maker) is maker


class TestRefuses:
    """Anything that is not a provider gets one clear TypeError at decoration."""

    @pytest.mark.parametrize(
        ("value", "described"),
        [
            ("postgresql://user:hunter2@db/prod", "an instance of str"),
            (42, "an instance of int"),
            (None, "an instance of NoneType"),
            (AsyncSession, "the class sqlalchemy.ext.asyncio.session.AsyncSession"),
            (print, "an instance of builtin_function_or_method"),
        ],
    )
    def test_not_a_provider(self, value: object, described: str) -> None:
        """The message names the type of what was passed, never its value."""
        with pytest.raises(TypeError) as info:
            protoguard.provider(value)  # type: ignore[call-overload]
        message = str(info.value)
        assert message.startswith(f"protoguard.provider() cannot guard {described}:")
        assert "It accepts an @asynccontextmanager" in message
        assert "hunter2" not in message

    def test_result_instead_of_provider(self) -> None:
        """Passing what a provider returned says to decorate the provider itself."""
        cm = get_db("sqlite://")
        with pytest.raises(TypeError, match="decorate the provider itself"):
            protoguard.provider(cm)  # type: ignore[call-overload]

    def test_bad_name(self) -> None:
        """name= must be a string."""
        with pytest.raises(TypeError, match=r"name=\.\.\.\) takes a str"):
            protoguard.provider(name=3)  # type: ignore[call-overload]
