"""HTTP routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from . import dependencies as deps
from .auth import current_user
from .db import Message, User
from .dependencies import get_db, get_request_scoped_db_session, make_session

router = APIRouter(dependencies=[Depends(current_user)])


@router.get("/messages")
async def list_messages(
    user: Annotated[User, Depends(current_user)],
    session: AsyncSession = Depends(get_db),  # noqa: B008
) -> list[str]:
    rows = await session.scalars(select(Message.text).where(Message.user_id == user.id))
    return list(rows)


@router.post("/messages")
async def post_message(text: str, user: Annotated[User, Depends(current_user)]) -> dict[str, int]:
    async with get_request_scoped_db_session() as session:
        session.add(Message(user_id=user.id, text=text))
    return {"stored": 1}


@router.get("/stats")
async def stats() -> dict[str, int]:
    async with await make_session() as session:
        users = await session.scalar(select(func.count()).select_from(User))
    async with deps.get_request_scoped_db_session() as session:
        messages = await session.scalar(select(func.count()).select_from(Message))
    return {"users": users or 0, "messages": messages or 0}
