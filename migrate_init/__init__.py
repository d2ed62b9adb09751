"""migrate-init: get a database ready before the application starts.

One module per concern: ``config`` (the only reader of the environment),
``db`` (URL, redaction, engine), ``wait``, ``lock``, ``deps``, ``scripts``
(the Alembic folder and its graph), ``runner`` (the layered upgrade),
``fallback``, ``verify``, ``guard``, ``backup``, ``seed``, ``repair``,
``plan``, ``lint``, ``report``, ``watchdog`` (timeouts and signals),
``migrator`` (the verbs) and ``cli`` (the only place that exits).
"""

__version__ = "0.1.0"
