"""SQLAlchemy integration: strict-mode checks that see past the session object.

In strict mode protoguard watches each session a guarded provider hands out (PG202,
PG203, PG206 at every method call on it). Code can also reach a session without calling
it: an ORM object loaded in a provider's block whose lazy-loaded relationship is read
after the block exited makes the session check out a new connection, silently, through
the session's own reference. SQLAlchemy's ``after_begin`` session event sees that moment
exactly; this module listens to it and reports PG203 there.

The listener is installed automatically the first time strict mode watches a
SQLAlchemy session (``Session`` or ``AsyncSession``); nothing needs to be imported.
:func:`install` and :func:`uninstall` are for programs that want to control it
explicitly, e.g. to remove every trace of protoguard from SQLAlchemy at shutdown.
The listener costs one dictionary lookup per transaction begin of any session.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

__all__ = ["install", "installed", "uninstall"]

_lock = threading.Lock()
_installed = False
# sync Session -> the strict-mode state of the provider scope that handed it out
_states: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _after_begin(session: Any, transaction: Any, connection: Any) -> None:
    state = _states.get(session)
    if state is None or state.open or state.depth:
        return  # unwatched, in scope, or a call on the session (checked at the call)
    # Imported here: protoguard._lifecycle imports this module.
    from ._lifecycle import report_connection_after_scope

    report_connection_after_scope(state)


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


def register(session: Any, state: Any) -> None:
    """Remember which strict-mode scope handed out ``session`` (internal)."""
    sync_session = getattr(session, "sync_session", session)
    try:
        _states[sync_session] = state
    except TypeError:  # pragma: no cover - not weak-referenceable: not a SQLAlchemy session
        return
    if not _installed:
        install()
