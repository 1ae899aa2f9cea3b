"""SQLAlchemy integration: strict-mode checks that see past the session object.

In strict mode protoguard watches each session a guarded provider hands out (PG202,
PG203, PG206 at every method call on it). Code can also reach a session without calling
it: an ORM object loaded in a provider's block whose lazy-loaded relationship is read
after the block exited makes the session check out a new connection, silently, through
the session's own reference. SQLAlchemy's ``after_begin`` session event sees that moment
exactly; this module listens to it and reports PG203 there.
A legacy ``Query`` made in the block holds the session too: run after the block, it is
PG203 from that session's ``do_orm_execute`` event, before it takes a connection; run
from another task while the block is open, PG206 there.

The listener is installed automatically the first time strict mode watches a
SQLAlchemy session (``Session`` or ``AsyncSession``); nothing needs to be imported.
:func:`install` and :func:`uninstall` are for programs that want to control it
explicitly, e.g. to remove every trace of protoguard from SQLAlchemy at shutdown.
The listener costs one attribute lookup per transaction begin of any session.
"""

from __future__ import annotations

import sys
import threading
from types import FrameType
from typing import Any, Optional

__all__ = ["install", "installed", "uninstall"]

_lock = threading.Lock()
_installed = False
# The attribute of a watched (sync) Session that holds the strict-mode state of the
# provider scope that handed it out: it lives and dies with the session, and costs no
# weak reference or dictionary entry per session.
STATE = "_protoguard_state"


def _after_begin(session: Any, transaction: Any, connection: Any) -> None:
    state = getattr(session, STATE, None)
    if state is None or state.open or state.depth:
        return  # unwatched, in scope, or a call on the session (checked at the call)
    # Imported here: protoguard._lifecycle imports this module.
    from ._lifecycle import connection_after_scope, in_provider_code

    if not _loading_an_attribute(sys._getframe(1)):
        # An explicit call on the session itself: the provider's own cleanup after its
        # 'yield' (a commit), or code that holds the session by its own reference (a
        # provider that was handed a session it does not own, a scoped_session registry
        # that hands the same Session out again). Neither is a use of what the provider
        # handed out. Other code than the provider's, on a session that holds no object
        # loaded from the database (closed, as providers close it: nothing the block
        # loaded can reach it again), uses it on its own now, and the ended block no
        # longer judges what it loads.
        if (
            not session.identity_map
            and session.__dict__.get(STATE) is state
            and not in_provider_code(state)
        ):
            del session.__dict__[STATE]
        return
    connection_after_scope(state)


# The attribute of a legacy ``Query`` made through a watched session while the block that
# judges the session was open: that block's state. SQLAlchemy copies a Query's attributes
# into every Query derived from it (``q.filter(...)``). A Query calls the session itself,
# not the proxy, so running it after the block, or from a task outside the block, is
# seen from the session's ``do_orm_execute`` event, listened to on that session alone
# once such a Query has been made (the attribute below marks it): before the session
# takes a connection, so PG203 or PG206 can be raised at the user's line as at a call on
# the session.
_QUERIES_WATCHED = "_protoguard_queries"


def watch_query(session: Any, query: Any) -> None:
    """Mark ``query``, just made through a watched ``session`` in its block, as that
    block's. Never fails: the query is then only not watched."""
    try:
        state = session.__dict__.get(STATE)
        if state is None or not state.open:
            return  # a session the provider was handed: the caller's, after the block
        query.__dict__[STATE] = state
        if not session.__dict__.get(_QUERIES_WATCHED):
            from sqlalchemy import event

            event.listen(session, "do_orm_execute", _query_executed)
            session.__dict__[_QUERIES_WATCHED] = True
    except Exception:  # pragma: no cover - a Query or Session without a __dict__
        pass


def _query_executed(execute_state: Any) -> None:
    try:
        found = _misused_query(execute_state)
    except Exception:  # pragma: no cover - the guard never breaks the user's query
        return
    if found is not None:
        # Imported here: protoguard._lifecycle imports this module.
        from ._lifecycle import query_used

        query_used(*found)


def _misused_query(execute_state: Any) -> Optional[tuple[Any, str, FrameType]]:
    """The block's state, the query method the user called and the user's frame, if this
    execution runs a Query marked for this session whose block has exited, or is open
    while this task is outside it."""
    from ._lifecycle import outside_the_block

    if execute_state.is_relationship_load:
        return None  # an eager load that the query's own run makes (reported at that run)
    session = execute_state.session
    current = session.__dict__.get(STATE)
    statement = execute_state.statement
    if isinstance(statement, _select_class()) and STATE not in statement.__dict__:
        # A Query builds its SELECT from its own attributes, the mark among them: this
        # one is no marked Query's (a select() run on the session), and the look up the
        # stack below is not needed. (Bulk update/delete and from_statement() are looked
        # for there.)
        return None
    if current is not None and current.open and not outside_the_block(current):
        # A block open on the session now, and this task inside it: the block's own
        # query, or a registry's session handed out again.
        return None
    frame: Optional[FrameType] = sys._getframe(2)
    state = name = None
    # Up through SQLAlchemy's frames to the user's: the outermost method of a query
    # marked for this session is the call the user made (q.all(), q.first(), ...).
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith("sqlalchemy."):
        if frame.f_globals.get("__name__") == "sqlalchemy.orm.query":
            query = frame.f_locals.get("self")
            marked = getattr(query, "__dict__", {}).get(STATE)
            if marked is not None and query.__dict__.get("session") is session:
                state, name = marked, frame.f_code.co_name
        frame = frame.f_back
    if state is None or name is None or frame is None:
        return None
    if state.open and not outside_the_block(state):
        return None
    return state, name, frame


def _select_class() -> Any:
    from sqlalchemy.sql.selectable import Select  # imported already: its listener ran

    return Select


def _loading_an_attribute(frame: Optional[FrameType]) -> bool:
    """Whether this stack is SQLAlchemy loading an attribute of an ORM object (a lazy
    relationship, a deferred column, an attribute a commit expired): all of them go
    through ``sqlalchemy.orm.attributes``, which no call on the session itself does
    before it begins a transaction. Only then did an object loaded in the block, rather
    than a call on the session, take the new connection."""
    while frame is not None:
        if frame.f_globals.get("__name__") == "sqlalchemy.orm.attributes":
            return True
        frame = frame.f_back
    return False


def install() -> None:
    """Listen to SQLAlchemy's ``Session.after_begin`` event (idempotent)."""
    global _installed
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    with _lock:
        if not _installed:
            event.listen(Session, "after_begin", _after_begin)
            _installed = True


def uninstall() -> None:
    """Remove the listener again (idempotent); watched sessions keep their other checks."""
    global _installed
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    with _lock:
        if _installed:
            event.remove(Session, "after_begin", _after_begin)
            _installed = False


def installed() -> bool:
    """Whether the listener is installed."""
    return _installed
