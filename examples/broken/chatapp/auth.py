"""Tokens to users."""

from __future__ import annotations

from typing import Annotated, Optional

from fastapi import Depends, Header, HTTPException
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from .db import User
from .dependencies import get_db, get_request_scoped_db_session


async def user_for_token(token: str) -> Optional[User]:
    """Look a token up, outside any request (the websocket handler uses it)."""
    async with get_db() as session:  # expect: PG102
        return (await session.scalars(select(User).where(User.token == token))).first()


async def current_user(
    session: Annotated[AsyncSession, Depends(get_request_scoped_db_session)],  # expect: PG103
    x_token: Annotated[str, Header()],
) -> User:
    user = (await session.scalars(select(User).where(User.token == x_token))).first()
    if user is None:
        raise HTTPException(status_code=401, detail="unknown token")
    return user
