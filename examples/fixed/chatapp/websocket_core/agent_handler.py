"""The websocket agent handler: stores each message, answers with a count."""

from __future__ import annotations

from fastapi import WebSocket, WebSocketDisconnect
from sqlalchemy import func, select

from ..auth import user_for_token
from ..db import Message
from ..dependencies import get_request_scoped_db_session


async def handle_agent_socket(websocket: WebSocket, token: str) -> None:
    await websocket.accept()
    user = await user_for_token(token)
    if user is None:
        await websocket.close(code=4401)
        return
    while True:
        try:
            text = await websocket.receive_text()
        except WebSocketDisconnect:
            return
        async with get_request_scoped_db_session() as db_session:
            db_session.add(Message(user_id=user.id, text=text))
            await db_session.flush()
            count = await db_session.scalar(
                select(func.count()).select_from(Message).where(Message.user_id == user.id)
            )
        await websocket.send_json({"user": user.name, "messages": count})
