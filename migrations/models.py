"""The example application's schema at head: the platform described in SEED.md.

migrate-init verifies the live database against these models and, when a
migration fails, creates what is missing from them (the fallback).  They
match the head of the shipped migrations exactly; a test proves it.
Tables marked ``count_rows`` are the ones the summary counts.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "user"
    __table_args__ = {"info": {"count_rows": True}}

    id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    name: Mapped[str | None] = mapped_column(sa.String(255))
    email: Mapped[str | None] = mapped_column(sa.String(255))
    role: Mapped[str | None] = mapped_column(sa.String(255))
    profile_image_url: Mapped[str | None] = mapped_column(sa.Text)
    last_active_at: Mapped[int | None] = mapped_column(sa.BigInteger)
    updated_at: Mapped[int | None] = mapped_column(sa.BigInteger)
    created_at: Mapped[int | None] = mapped_column(sa.BigInteger)
    api_key: Mapped[str | None] = mapped_column(sa.String(255))
    settings: Mapped[str | None] = mapped_column(sa.Text)
    info: Mapped[str | None] = mapped_column(sa.Text)
    oauth_sub: Mapped[str | None] = mapped_column(sa.Text)
    phone: Mapped[str | None] = mapped_column(sa.String(32))  # ef6fab585ac1


class Chat(Base):
    __tablename__ = "chat"
    __table_args__ = {"info": {"count_rows": True}}

    id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    title: Mapped[str | None] = mapped_column(sa.Text)
    chat: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[int | None] = mapped_column(sa.BigInteger)
    updated_at: Mapped[int | None] = mapped_column(sa.BigInteger)
    share_id: Mapped[str | None] = mapped_column(sa.Text)
    archived: Mapped[bool | None] = mapped_column(sa.Boolean)


class Tool(Base):
    __tablename__ = "tool"

    id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(sa.String(255))
    name: Mapped[str | None] = mapped_column(sa.Text)
    content: Mapped[str | None] = mapped_column(sa.Text)
    specs: Mapped[str | None] = mapped_column(sa.Text)
    meta: Mapped[str | None] = mapped_column(sa.Text)
    valves: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[int | None] = mapped_column(sa.BigInteger)
    updated_at: Mapped[int | None] = mapped_column(sa.BigInteger)
    access_control: Mapped[str | None] = mapped_column(sa.Text)  # 70c7b727736e


class Config(Base):
    __tablename__ = "config"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    data: Mapped[str | None] = mapped_column(sa.Text)
    version: Mapped[int | None] = mapped_column(sa.Integer)
    created_at: Mapped[int | None] = mapped_column(sa.BigInteger)
    updated_at: Mapped[int | None] = mapped_column(sa.BigInteger)


class FluxConfig(Base):
    __tablename__ = "flux_config"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    api_key: Mapped[str | None] = mapped_column(sa.Text)
    base_url: Mapped[str | None] = mapped_column(sa.Text)
    enabled: Mapped[bool | None] = mapped_column(sa.Boolean)
    default_model: Mapped[str | None] = mapped_column(sa.String(255))
    credits_per_image: Mapped[int | None] = mapped_column(sa.Integer)
    created_at: Mapped[int | None] = mapped_column(sa.BigInteger)
    updated_at: Mapped[int | None] = mapped_column(sa.BigInteger)
    model_credits: Mapped[str | None] = mapped_column(sa.Text)  # 24e8f9a7b1c2


class _GenerationTask:
    """The columns every generation-task table shares."""

    id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(sa.String(255))
    prompt: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[str | None] = mapped_column(sa.String(64))
    result_url: Mapped[str | None] = mapped_column(sa.Text)
    credits: Mapped[int | None] = mapped_column(sa.Integer)
    created_at: Mapped[int | None] = mapped_column(sa.BigInteger)
    updated_at: Mapped[int | None] = mapped_column(sa.BigInteger)
    cloud_image_url: Mapped[str | None] = mapped_column(sa.Text)  # abc123def456
    cloud_video_url: Mapped[str | None] = mapped_column(sa.Text)  # abc123def456


class FluxTask(_GenerationTask, Base):
    __tablename__ = "flux_task"


class MidjourneyTask(_GenerationTask, Base):
    __tablename__ = "midjourney_task"


class KlingTask(_GenerationTask, Base):
    __tablename__ = "kling_task"


class JimengTask(_GenerationTask, Base):
    __tablename__ = "jimeng_task"


class Credit(Base):
    __tablename__ = "credit"

    id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    credit: Mapped[float | None] = mapped_column(sa.Numeric(24, 12))
    created_at: Mapped[int | None] = mapped_column(sa.BigInteger)
    updated_at: Mapped[int | None] = mapped_column(sa.BigInteger)


class Payment(Base):
    __tablename__ = "payment"

    id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(sa.String(255))
    amount: Mapped[float | None] = mapped_column(sa.Numeric(24, 12))
    status: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[int | None] = mapped_column(sa.BigInteger)
    updated_at: Mapped[int | None] = mapped_column(sa.BigInteger)
