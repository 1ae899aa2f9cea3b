"""The fixed service on a real SQLite database, through FastAPI's TestClient."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    os.environ["CHATAPP_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"
    for name in [m for m in sys.modules if m == "chatapp" or m.startswith("chatapp.")]:
        del sys.modules[name]
    from chatapp.db import SessionLocal, User
    from chatapp.main import app

    with TestClient(app) as test_client:

        async def add_users() -> None:
            async with SessionLocal() as session:
                session.add_all([User(name="ada", token="t-ada"), User(name="bob", token="t-bob")])
                await session.commit()

        test_client.portal.call(add_users)
        yield test_client


def test_messages_round_trip(client: TestClient) -> None:
    assert client.post("/messages", params={"text": "hi"}, headers={"x-token": "t-ada"}).json() == {
        "stored": 1
    }
    assert client.get("/messages", headers={"x-token": "t-ada"}).json() == ["hi"]
    assert client.get("/messages", headers={"x-token": "t-bob"}).json() == []


def test_unknown_token(client: TestClient) -> None:
    assert client.get("/messages", headers={"x-token": "nope"}).status_code == 401


def test_stats(client: TestClient) -> None:
    client.post("/messages", params={"text": "one"}, headers={"x-token": "t-bob"})
    assert client.get("/stats", headers={"x-token": "t-bob"}).json() == {"users": 2, "messages": 1}


def test_agent_websocket(client: TestClient) -> None:
    with client.websocket_connect("/agent?token=t-ada") as socket:
        socket.send_text("hello")
        assert socket.receive_json() == {"user": "ada", "messages": 1}
        socket.send_text("again")
        assert socket.receive_json() == {"user": "ada", "messages": 2}


def test_agent_rejects_unknown_token(client: TestClient) -> None:
    with (
        client.websocket_connect("/agent?token=nope") as socket,
        pytest.raises(WebSocketDisconnect),
    ):
        socket.receive_text()


def test_no_event_loop_left_running() -> None:
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
