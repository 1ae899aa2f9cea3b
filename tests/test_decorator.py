"""@provider itself: what it accepts, what it refuses, and what it keeps."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import sys
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import sessionmaker

import protoguard
from protoguard import ProtocolError

from .conftest import line_of


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


# Guarded at module level, as pickle finds functions: by module and qualified name.
@protoguard.provider
@contextlib.contextmanager
def guarded_cm():
    yield "session"


@protoguard.provider
async def guarded_agen():
    yield "session"


@protoguard.provider
def guarded_gen():
    yield "session"


@protoguard.provider
async def guarded_coro():
    return "session"


@protoguard.provider
def guarded_plain():
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

    def test_a_partial_of_an_async_sessionmaker(self, run, async_engine) -> None:
        """functools.partial of a session maker (one tenant's sessions) is guarded as the
        maker is: it was refused with a TypeError whose list of what is accepted names
        it."""
        TenantSession = protoguard.provider(
            functools.partial(async_sessionmaker(async_engine), info={"tenant": "acme"})
        )
        info = TenantSession.__protoguard_provider__
        assert (info.name, info.kind) == ("TenantSession", "async_sessionmaker")

        async def use() -> tuple[object, int]:
            async with TenantSession() as db:
                assert isinstance(db, AsyncSession)
                return db.info["tenant"], (
                    await db.execute(text("SELECT count(*) FROM users"))
                ).scalar_one()

        assert run(use()) == ("acme", 2)

        async def wrong() -> None:
            db = await TenantSession()  # a partial of a maker awaited
            await db.close()

        with pytest.raises(ProtocolError) as error:
            run(wrong())
        assert error.value.code == "PG104"
        assert error.value.call_site is not None
        assert error.value.call_site.lineno == line_of(__file__, "# a partial of a maker awaited")
        assert error.value.fix == "async with TenantSession() as db:"

    def test_a_partial_of_a_sessionmaker(self, sync_maker) -> None:
        Tenant = protoguard.provider(functools.partial(sync_maker, info={"tenant": "acme"}))
        assert Tenant.__protoguard_provider__.kind == "sessionmaker"
        with Tenant() as db:
            assert db.info == {"tenant": "acme"}
            assert db.execute(text("SELECT count(*) FROM users")).scalar_one() == 2
        with Tenant.begin() as db:  # the maker's own block, as sessionmaker.begin()
            assert db.in_transaction()

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

    @pytest.mark.parametrize("maker_class", [async_sessionmaker, sessionmaker])
    def test_sessionmaker_class(self, maker_class: type, async_engine) -> None:
        """The maker's class instead of a maker: the message says to guard a maker made
        from it, and the line it writes works."""
        with pytest.raises(TypeError) as info:
            protoguard.provider(maker_class)  # type: ignore[call-overload]
        name = maker_class.__name__
        assert str(info.value).endswith(
            f" That is the class; guard the maker made from it: "
            f"protoguard.provider({name}(engine))."
        )
        engine = async_engine if maker_class is async_sessionmaker else None
        assert protoguard.provider(maker_class(engine)) is not None

    def test_class_dependency_instance(self) -> None:
        """An instance whose class's __call__ is a provider (a FastAPI class
        dependency): the message says to decorate that method, and done so, every
        instance's call is guarded."""

        class Database:
            async def __call__(self) -> Any:
                yield "session"

        with pytest.raises(TypeError) as info:
            protoguard.provider(Database())  # type: ignore[call-overload]
        assert str(info.value).endswith(
            " Its class's __call__ is a provider: decorate that method with "
            "@protoguard.provider, in the body of class "
            "TestRefuses.test_class_dependency_instance.<locals>.Database, and every "
            "instance is guarded."
        )
        Database.__call__ = protoguard.provider(Database.__call__)  # type: ignore[method-assign]
        with pytest.raises(TypeError) as again:
            protoguard.provider(Database())  # type: ignore[call-overload]
        assert str(again.value).endswith(
            " Its class's __call__ is guarded already, so every instance is: use the "
            "instance as it is."
        )

        async def right() -> list[Any]:
            return [s async for s in Database()()]

        async def wrong() -> None:
            async with Database()():  # type: ignore[attr-defined]
                pass

        assert asyncio.run(right()) == ["session"]
        with pytest.raises(ProtocolError) as misuse:
            asyncio.run(wrong())
        assert misuse.value.code == "PG102"

    def test_bad_name(self) -> None:
        """name= must be a string."""
        with pytest.raises(TypeError, match=r"name=\.\.\.\) takes a str"):
            protoguard.provider(name=3)  # type: ignore[call-overload]

    @pytest.mark.parametrize("name", ["", "   ", "\t\n"], ids=["empty", "spaces", "whitespace"])
    def test_blank_name(self, name: str) -> None:
        """A blank name= is an error, not a silent fall back to the qualified name."""
        with pytest.raises(TypeError) as error:
            protoguard.provider(name=name)
        assert str(error.value) == (
            "protoguard.provider(name=...) takes a str that is not blank: the name messages "
            "use for the provider (leave name= out for its qualified name)."
        )
        with pytest.raises(TypeError):
            protoguard.provider(get_db, name=name)


class TestTheProviderItself:
    """What is done to the guarded provider itself (not to what it returns) behaves as
    on the unguarded one."""

    @pytest.mark.parametrize(
        "guarded", [guarded_cm, guarded_agen, guarded_gen, guarded_coro, guarded_plain]
    )
    def test_copied_and_pickled_by_reference(self, guarded) -> None:
        """A function is copied as itself and pickled by its module and name; so is
        the guarded function the module holds."""
        import copy
        import pickle

        assert copy.copy(guarded) is guarded
        assert copy.deepcopy({"dependency": guarded})["dependency"] is guarded
        assert pickle.loads(pickle.dumps(guarded)) is guarded

    def test_a_session_maker_copied(self, async_engine) -> None:
        """A guarded maker is copied as the maker is, and stays guarded; pickle fails or
        succeeds as it does for the maker itself, and what it loads is guarded."""
        import copy
        import pickle

        from sqlalchemy.orm import sessionmaker

        maker = protoguard.provider(async_sessionmaker(async_engine))
        copied = copy.copy(maker)
        assert isinstance(copied, type(maker))
        assert copied.__wrapped__ is not maker.__wrapped__
        assert copied.kw == maker.kw
        unbound = protoguard.provider(sessionmaker(), name="Unbound")
        deep = copy.deepcopy(unbound)
        assert isinstance(deep, type(unbound))
        assert deep.__protoguard_provider__ == unbound.__protoguard_provider__
        try:
            pickle.dumps(sessionmaker())
        except Exception as unguarded:
            with pytest.raises(type(unguarded)):
                pickle.dumps(unbound)
        else:  # pragma: no cover - a SQLAlchemy whose sessionmaker pickles
            loaded = pickle.loads(pickle.dumps(unbound))
            assert loaded.__protoguard_provider__.name == "Unbound"

    @pytest.mark.parametrize(
        ("statement", "protocol"),
        [("async with", "asynchronous context manager"), ("with", "context manager")],
    )
    @pytest.mark.parametrize("func", [get_db, agen_provider, gen_provider, coro_provider])
    def test_entered_without_the_call(self, run, func, statement: str, protocol: str) -> None:
        """`async with get_db as db:` (the call forgotten): the TypeError Python raises
        for the function, with the call written out (wrapt's proxy would forward the
        protocol to the function: an AttributeError). A guarded @asynccontextmanager
        function is a plain function: Python's own error, as unguarded."""
        guarded = protoguard.provider(func)
        name = func.__name__

        async def enter(provider) -> None:
            if statement == "async with":
                async with provider:
                    pass
            else:
                with provider:
                    pass

        with pytest.raises((TypeError, AttributeError)) as plain:
            run(enter(func))
        with pytest.raises(type(plain.value)) as info:  # TypeError; before 3.11 AttributeError
            run(enter(guarded))
        assert type(info.value) is type(plain.value)
        if func is get_db:
            assert str(info.value) == str(plain.value)
            return
        right = {
            agen_provider: f"async for session in {name}():",
            gen_provider: f"for session in {name}():",
            coro_provider: f"session = await {name}()",
        }[func]
        message = (
            f"'function' object does not support the {protocol} protocol: {name} is the "
            f"provider, not what it gives; call it: {right}"
        )
        if sys.version_info < (3, 11):  # pragma: no cover - Python's own: "__aenter__"
            message = f"{plain.value.args[0]} ({message})"
        assert str(info.value) == message

    def test_a_session_maker_entered_without_the_call(self, run, async_engine) -> None:
        Session = protoguard.provider(async_sessionmaker(async_engine))

        async def enter() -> None:
            async with Session:
                pass

        with pytest.raises((TypeError, AttributeError)) as info:
            run(enter())
        assert str(info.value).endswith(
            "'async_sessionmaker' object does not support the asynchronous context "
            "manager protocol: Session is the provider, not what it gives; call it: "
            "async with Session() as session:" + ("" if sys.version_info >= (3, 11) else ")")
        )

    def test_a_plain_function_returning_none(self) -> None:
        """None (no session here) comes back as None, which `is None` sees."""

        @protoguard.provider
        def current_session():
            return None

        assert current_session() is None

    def test_a_wrapper_made_with_functools_wraps_is_not_guarded(self) -> None:
        """functools.wraps copies the guarded function's __dict__, and with it the mark
        of a guarded provider, onto the user's own wrapper (an adapter from the
        context manager to a Depends()-style generator): the wrapper is not taken for
        the provider, and guarding it guards it."""
        guarded = protoguard.provider(get_db)

        @functools.wraps(guarded)
        async def as_dependency(dsn: str):
            async with guarded(dsn) as session:
                yield session

        wrapper = protoguard.provider(as_dependency)
        assert wrapper is not as_dependency
        assert wrapper.__protoguard_provider__.kind == "async generator"

        async def loop() -> list[object]:
            return [session async for session in wrapper("sqlite://")]

        assert asyncio.run(loop()) == [("sqlite://", False)]


class TestContextManagerSteppedByHand:
    """A context-manager provider's result speaks as much of the generator protocol as
    Depends() drives (through contextlib); a step by hand is the misuse it is."""

    @pytest.mark.skipif(sys.version_info < (3, 10), reason="the anext() builtin: 3.10+")
    def test_anext_is_pg101(self, run) -> None:
        """`await anext(get_db())` is PG101 at its line, not a session handed out
        with its cleanup left to the garbage collector."""
        guarded = protoguard.provider(get_db)

        async def main() -> object:
            return await anext(guarded("sqlite://"))  # noqa: F821 - 3.10+  # the misuse

        with pytest.raises(TypeError):
            run(_anext_unguarded())
        with pytest.raises(ProtocolError) as info:
            run(main())
        assert info.value.code == "PG101"
        assert info.value.call_site == (__file__, line_of(__file__, "# the misuse"))

    def test_next_is_pg101(self) -> None:
        @protoguard.provider
        @contextlib.contextmanager
        def get_sync_db():
            yield "session"

        with pytest.raises(TypeError):
            next(get_sync_db.__wrapped__())  # what Python says unguarded
        with pytest.raises(ProtocolError) as info:
            next(get_sync_db())
        assert info.value.code == "PG101"

    def test_wrapped_by_contextlib_and_guarded_again(self, run) -> None:
        """A guarded provider wrapped by contextlib again, and that guarded too: the
        outer context manager steps the inner one to enter it, which is no misuse."""

        @protoguard.provider
        @contextlib.contextmanager
        def get_sync_db():
            yield "session"

        again = protoguard.provider(contextlib.contextmanager(get_sync_db))
        with again() as session:
            assert session == "session"
        async_again = protoguard.provider(
            contextlib.asynccontextmanager(protoguard.provider(get_db))
        )

        async def main() -> object:
            async with async_again("sqlite://") as session:
                return session

        assert run(main()) == ("sqlite://", False)

    @pytest.mark.parametrize("bound", ["method", "classmethod"])
    def test_a_partial_of_a_method(self, bound: str) -> None:
        """A partial of a bound method or classmethod context-manager provider keeps the
        partial's signature once guarded (what FastAPI reads for the parameters)."""

        class Repo:
            @contextlib.asynccontextmanager
            async def method(self, tenant: str, limit: int):
                yield (tenant, limit)

            @classmethod
            @contextlib.asynccontextmanager
            async def cls_method(cls, tenant: str, limit: int):
                yield (tenant, limit)

        target = Repo().method if bound == "method" else Repo.cls_method
        partial = functools.partial(target, "acme")
        guarded = protoguard.provider(partial)
        assert inspect.signature(guarded) == inspect.signature(partial)
        assert list(inspect.signature(guarded).parameters) == ["limit"]

        async def main() -> object:
            async with guarded(3) as session:
                return session

        assert asyncio.run(main()) == ("acme", 3)

    def test_a_partial_of_a_guarded_provider_in_strict_mode(self, run, async_maker) -> None:
        """provider(functools.partial(guarded, ...), mode="strict"), one tenant's
        sessions from a library's guarded provider: the guarded @asynccontextmanager
        function is a plain function, so the partial was taken for a plain function
        returning a session, and strict mode watched the context manager as the session
        (`db.info` in the block was PG103). It is the partial of the provider beneath,
        guarded as that is."""

        @protoguard.provider
        @contextlib.asynccontextmanager
        async def tenant_db(tenant: str):
            async with async_maker(info={"tenant": tenant}) as session:
                yield session

        acme_db = protoguard.provider(functools.partial(tenant_db, "acme"), mode="strict")

        async def use() -> tuple[object, int]:
            async with acme_db() as db:
                count = (await db.execute(text("SELECT count(*) FROM users"))).scalar_one()
                return db.info["tenant"], count

        assert run(use()) == ("acme", 2)
        assert acme_db.__protoguard_provider__ == tenant_db.__protoguard_provider__

        async def after_the_block() -> None:
            async with acme_db() as db:
                pass
            try:
                await db.execute(text("SELECT 1"))  # the session after its block
            finally:
                await db.close()

        with pytest.raises(ProtocolError) as error:
            run(after_the_block())
        assert error.value.code == "PG203"
        assert error.value.call_site is not None
        assert error.value.call_site.lineno == line_of(__file__, "# the session after its block")
        assert error.value.fix == "use the session only inside the 'async with' block that gave it"

    def test_contextlib_still_drives_it(self, run) -> None:
        """asynccontextmanager() around the guarded provider (what Depends() does once
        it has looked through __wrapped__) enters and leaves it."""
        guarded = protoguard.provider(get_db)

        async def main() -> object:
            async with contextlib.asynccontextmanager(guarded)("sqlite://") as session:
                return session

        assert run(main()) == ("sqlite://", False)


async def _anext_unguarded() -> object:
    return await anext(get_db("sqlite://"))  # noqa: F821 - 3.10+
