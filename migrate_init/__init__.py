"""migrate-init: get a database ready before the application starts.

One concern per module, each a noun the README uses:

- ``cli``: arguments, the table of verbs, printing, outcome -> exit code (the only ``sys.exit``);
- ``config``: the only reader of the environment, a frozen Config; ``url``: the one URL parser
  and redactor; ``errors``: one exception per exit code, and what a driver's error means;
- ``report``: log lines, masking, the summary and REPORT_FILE; ``watchdog``: signals and
  timeouts recorded, statements cancelled, raised at checkpoints; ``retry``: the one poll loop;
- ``probe``: the one reader of where the database stands (bare driver); ``wait``: waiting for
  it; ``lock``: the one migration lock (bare driver); ``manifest``: what the scripts and
  models expect, cached so a run with nothing to do imports neither SQLAlchemy nor Alembic;
- ``run``: the init sequence up to the check, and the answer when there is nothing to do;
  ``upgrade``: the work under the lock (imported only when there is work); ``commands``: the
  other verbs; ``alembic_glue``: Alembic, owned (env.py runs on our connection); ``schema``: MODELS, drift, create_all and column repair;
  ``catalog``: the destructive guard, judged by effect; ``guard`` and ``lint``: text rules for
  people; ``backup``, ``seed``, ``deps``; ``ops``: helpers for migration authors; ``history``: what
  was applied and when, ``checksum``: what a revision does, ``graph``: the revision graph as a picture;
  ``alembic_env``: the shipped env.py's body; ``libraries``: the SQLAlchemy and Alembic it runs on.
"""

__version__ = "0.3.0"
