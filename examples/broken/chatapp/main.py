"""The application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, WebSocket

from .db import Base, engine
from .routes import router
from .websocket_core.agent_handler import handle_agent_socket


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    yield
    await engine.dispose()


app = FastAPI(lifespan=lifespan)
app.include_router(router)


@app.websocket("/agent")
async def agent(websocket: WebSocket, token: str) -> None:
    await handle_agent_socket(websocket, token)
