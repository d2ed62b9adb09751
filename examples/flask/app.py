"""A Flask-SQLAlchemy app whose database migrate-init migrated before it started."""

import os

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import select, text

from models import Base, Note

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("DATABASE_URL", "sqlite:////srv/data/app.db")
# The models are plain SQLAlchemy (models.py), so migrate-init imports them without Flask.
db = SQLAlchemy(app, model_class=Base)


@app.get("/live")
def live():
    return {"status": "ok"}


@app.get("/ready")
def ready():
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:
        return {"status": "the database does not answer"}, 503
    return {"status": "ok"}


@app.get("/notes")
def notes():
    return [{"id": note.id, "title": note.title} for note in db.session.scalars(select(Note).order_by(Note.id))]
