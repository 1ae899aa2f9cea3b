"""Every kind of session provider the service uses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession

from .db import SessionLocal


async def get_db() -> AsyncIterator[AsyncSession]:
    """FastAPI style: an async generator, for Depends()."""
    async with SessionLocal() as session:
        yield session


@asynccontextmanager
async def get_request_scoped_db_session() -> AsyncIterator[AsyncSession]:
    """For code outside a request: an async context manager that commits on success."""
    async with SessionLocal() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def make_session() -> AsyncSession:
    """A coroutine that returns a new session; the caller closes it."""
    return SessionLocal()
