"""A FastAPI app on async SQLAlchemy (aiosqlite) whose database migrate-init migrated before it started."""

import os

from fastapi import FastAPI, Response
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from models import Note

# migrate-init gets the sync URL (sqlite://) and runs the migrations with it; the app speaks
# aiosqlite to the same file.
url = make_url(os.environ.get("DATABASE_URL", "sqlite:////srv/data/app.db"))
engine = create_async_engine(url.set(drivername="sqlite+aiosqlite") if url.drivername == "sqlite" else url)
Session = async_sessionmaker(engine)
app = FastAPI()


@app.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/health/ready")
async def ready(response: Response) -> dict[str, str]:
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:
        response.status_code = 503
        return {"status": "the database does not answer"}
    return {"status": "ok"}


@app.get("/notes")
async def notes() -> list[dict[str, object]]:
    async with Session() as session:
        found = await session.scalars(select(Note).order_by(Note.id))
        return [{"id": note.id, "title": note.title} for note in found]
