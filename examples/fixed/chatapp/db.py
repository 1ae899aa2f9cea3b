"""The engine, the session maker and the tables."""

from __future__ import annotations

import os

from sqlalchemy import ForeignKey, String
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    token: Mapped[str] = mapped_column(String(50), unique=True)


class Message(Base):
    __tablename__ = "messages"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(String(500))


def make_engine() -> AsyncEngine:
    return create_async_engine(os.environ.get("CHATAPP_DATABASE_URL", "sqlite+aiosqlite://"))


engine = make_engine()
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)
