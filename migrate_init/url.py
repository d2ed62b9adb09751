"""DATABASE_URL: the one parser and the one redactor.

Every URL the package reads goes through :func:`parse`, and every text that
may hold a URL goes through :func:`redact` before anyone sees it.  The grammar
is SQLAlchemy's (``sqlalchemy.engine.url._parse_url``), so a URL means here
exactly what it will mean to SQLAlchemy, but stricter where SQLAlchemy guesses:
a second raw ``@``, a port that is not a number and trailing text it would
silently drop are refused (exit 2), never reinterpreted.

This module is on the fast path (issue 7): parsing a URL imports nothing (no
``re``: the grammar is read by scanners held to SQLAlchemy's patterns by a
test), and the redactor imports ``re`` only for a text that could hold what it
masks (issue 14).  ``urllib.parse`` and ``json`` are imported by the functions
that need them.
"""

from __future__ import annotations

import os

from .errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re
    from typing import Any

    from .engines import Engine

#: SQLAlchemy's URL grammar, read by the scanners below without ``re`` (which imports ``enum``:
#: about 3 ms of a run with nothing to do, issue 14).  tests/unit/test_url_grammar.py holds the
#: scanners to these patterns on generated text.
#: The scheme (``[\w\+]+`` in SQLAlchemy), ASCII only.
SCHEME_PATTERN = r"([A-Za-z0-9_+]+)://"
#: user[:password]@ as SQLAlchemy reads it: the password runs to the first '@'.
USERINFO_PATTERN = r"(?P<username>[^:/]*)(?::(?P<password>[^@]*))?@"
#: What follows the user info; matched whole (SQLAlchemy ignores leftovers).
LOCATION_PATTERN = r"""(?xs)
    (?:
        \[(?P<ipv6host>[^/?\]]+)\]
        | (?P<ipv4host>[^/:?\[\]]+)
    )?
    (?::(?P<port>[^/?]*))?
    (?:/(?P<database>[^?]*))?
    (?:\?(?P<query>.*))?
    """
_SCHEME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+")


def scan_scheme(raw: str) -> str | None:
    """``re.match(SCHEME_PATTERN, raw)[1]``: the scheme before "://", or None."""
    end = 0
    while end < len(raw) and raw[end] in _SCHEME_CHARS:
        end += 1
    return raw[:end] if end and raw.startswith("://", end) else None


def scan_userinfo(rest: str) -> tuple[str, str | None, int] | None:
    """``re.match(USERINFO_PATTERN, rest)`` as (username, password, end), or None.

    The user name cannot hold ':' or '/'.  With a ':' where it ends and an '@'
    after it, the password runs from there to the first '@'; otherwise the
    user name ends at the last '@' before that ':' or '/'.
    """
    stop = _run_until(rest, 0, ":/")
    if stop < len(rest) and rest[stop] == ":":
        at = rest.find("@", stop + 1)
        if at >= 0:
            return rest[:stop], rest[stop + 1 : at], at + 1
    at = rest.rfind("@", 0, stop)
    return (rest[:at], None, at + 1) if at >= 0 else None


def scan_location(rest: str) -> dict[str, str | None] | None:
    """``re.fullmatch(LOCATION_PATTERN, rest).groupdict()``, or None.

    Each part is the longest run its pattern allows: any shorter one would
    leave a character that no later part may start with.
    """
    parts: dict[str, str | None] = dict.fromkeys(("ipv6host", "ipv4host", "port", "database", "query"))
    position = 0
    if rest.startswith("["):
        end = _run_until(rest, 1, "/?]")
        if end > 1 and rest.startswith("]", end):
            parts["ipv6host"], position = rest[1:end], end + 1
    else:
        end = _run_until(rest, 0, "/:?[]")
        if end > 0:
            parts["ipv4host"], position = rest[:end], end
    if rest.startswith(":", position):
        end = _run_until(rest, position + 1, "/?")
        parts["port"], position = rest[position + 1 : end], end
    if rest.startswith("/", position):
        end = _run_until(rest, position + 1, "?")
        parts["database"], position = rest[position + 1 : end], end
    if rest.startswith("?", position):
        parts["query"], position = rest[position + 1 :], len(rest)
    return parts if position == len(rest) else None


def _run_until(text: str, start: int, stops: str) -> int:
    """The index of the first character of ``stops`` in ``text`` from ``start``, or its length."""
    end = len(text)
    for char in stops:
        found = text.find(char, start, end)
        if found >= 0:
            end = found
    return end


#: Scheme names that are another name for the same backend.
_BACKENDS = {"postgres": "postgresql", "mariadb": "mysql"}

#: The async drivers of SQLAlchemy's dialects (``alembic init -t async``): the package an async
#: env.py needs (with greenlet), and the sync driver of the same server that migrate-init's own
#: connections use instead ("" is the dialect's default, pysqlite).  Issue 22.
ASYNC_DRIVERS: dict[str, tuple[str, str]] = {
    "aiosqlite": ("aiosqlite", ""),
    "asyncpg": ("asyncpg", "psycopg2"),
    "psycopg_async": ("psycopg", "psycopg"),
    "aiomysql": ("aiomysql", "pymysql"),
    "asyncmy": ("asyncmy", "pymysql"),
}

#: Query keys whose value is a password (libpq, PyMySQL, ODBC spellings).
#: Query options SQLAlchemy's MySQL dialects turn into numbers and switches.
_MYSQL_INT_OPTIONS = frozenset({"connect_timeout", "read_timeout", "write_timeout", "client_flag", "port"})
_MYSQL_BOOL_OPTIONS = frozenset({"compress", "use_unicode", "local_infile"})
#: Query options SQLAlchemy's MySQL dialects gather into the driver's ``ssl`` dict.
_MYSQL_SSL_OPTIONS = frozenset({"ssl_ca", "ssl_key", "ssl_cert", "ssl_capath", "ssl_cipher", "ssl_check_hostname"})
_SECRET_KEYS = frozenset({"password", "sslpassword", "pass", "passwd", "pwd"})

#: Where a URL starts in free text; the scheme may be missing ("://user:pw@host").
_TEXT_URL_START = r"(?:[A-Za-z][A-Za-z0-9+.\-_]*)?://"
#: scheme://user: in free text, the start of a password (see _mask_userinfo).
#: (No '@' before the ':': "user@host:port" is a host and a port, with no password in it.)
_TEXT_USERINFO = r"(?:[A-Za-z][A-Za-z0-9+.\-_]*)?://[^\s:/@]*:"
#: password=VALUE in a query string or a libpq keyword string; a quoted libpq
#: value ('...', with backslash escapes) is masked whole.
_TEXT_QUERY_SECRET = (
    r"(?i)(?<![\w\-])(?P<head>(?:sslpassword|password|passwd|pass|pwd)\s*=\s*)"
    r"(?P<value>'(?:[^'\\\r\n]|\\.)*'?|[^&\s]*)"
)
#: "password": "VALUE" in JSON or a Python dict's repr.
_TEXT_KEYED_SECRET = (
    r"(?i)(?P<head>(?P<q>[\"'])(?:sslpassword|password|passwd|pass|pwd)(?P=q)\s*:\s*)"
    r"(?P<value>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')"
)

#: scheme://userinfo@ of any URL in free text.  Outside a database URL the user info is a
#: credential as a whole: ``git+https://TOKEN@host/...`` or ``https://TOKEN:x-oauth-basic@host``
#: in a requirement (issue 25, N27).  Masked up to the first '@': the host stays in view.
_TEXT_OTHER_USERINFO = r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-_]*)://(?P<userinfo>[^\s/?#@'\"]+)@"
#: Schemes (before any "+driver") whose user name is shown: the database's, as SQLAlchemy names them.
_DATABASE_SCHEMES = frozenset({"postgresql", "postgres", "mysql", "mariadb", "sqlite"})

_MASK = "***"


def first_control(text: str) -> int:
    """The index of the first control character in ``text`` (C0, DEL, C1, line/paragraph separators), or -1.

    A newline, tab or NUL in a URL or a password is a copy-and-paste or
    file-format accident, never an intended character.
    """
    for index, char in enumerate(text):
        code = ord(char)
        if code < 0x20 or 0x7F <= code < 0xA0 or code in (0x2028, 0x2029):
            return index
    return -1


#: What ``urllib.parse.quote`` never encodes; see :func:`quote`.
_ALWAYS_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def quote(text: str, safe: str) -> str:
    """``urllib.parse.quote(text, safe=safe)``, without importing urllib.parse when it would change nothing.

    ``quote`` returns its input unchanged when every character is always safe or in
    ``safe``: the usual database name and user, on the way to a run with nothing to
    do (issue 14).  Any other text goes to ``quote`` itself.
    """
    if all(char in _ALWAYS_SAFE or char in safe for char in text):
        return text
    import urllib.parse

    return urllib.parse.quote(text, safe=safe)


def _unquote(text: str) -> str:
    """``urllib.parse.unquote(text)``, which returns a text without '%' unchanged, without importing it then."""
    if "%" not in text:
        return text
    from urllib.parse import unquote

    return unquote(text)


def _describe_control(char: str) -> str:
    names = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab", "\x00": "a NUL byte"}
    return names.get(char, f"the control character U+{ord(char):04X}")


class Url:
    """A parsed database URL.  Immutable by convention; build one with :func:`parse`.

    ``str()`` and ``repr()`` never show the password, so an f-string cannot leak it.
    """

    __slots__ = (
        "_is_memory",
        "_sqlite_path",
        "backend",
        "database",
        "driver",
        "drivername",
        "host",
        "password",
        "port",
        "query",
        "username",
    )

    drivername: str
    backend: str
    driver: str
    username: str | None
    password: str | None
    host: str | None
    port: int | None
    database: str | None
    query: tuple[tuple[str, str], ...]
    _sqlite_path: str | None
    _is_memory: bool

    def __init__(
        self,
        drivername: str,
        *,
        username: str | None = None,
        password: str | None = None,
        host: str | None = None,
        port: int | None = None,
        database: str | None = None,
        query: tuple[tuple[str, str], ...] = (),
    ) -> None:
        scheme, _, driver = drivername.partition("+")
        scheme = scheme.lower()
        self.drivername = drivername
        self.backend = _BACKENDS.get(scheme, scheme)
        self.driver = driver
        self.username = username
        self.password = password
        self.host = host
        self.port = port
        self.database = database
        self.query = tuple(query)
        self._sqlite_path, self._is_memory = _sqlite_file(self) if self.backend == "sqlite" else (None, False)

    @property
    def sqlite_path(self) -> str | None:
        """The absolute path of a SQLite file database, as SQLAlchemy's pysqlite dialect opens it; else None.

        Three slashes are relative to the working directory at parse time, four are absolute.
        """
        return self._sqlite_path

    @property
    def is_memory(self) -> bool:
        """Whether this names an in-memory SQLite database (which :func:`parse` refuses)."""
        return self._is_memory

    @property
    def engine(self) -> Engine:
        """The engine this URL names (:mod:`migrate_init.engines`); a scheme migrate-init does not serve
        is :class:`ConfigError`."""
        from . import engines

        return engines.of(self.backend)

    @property
    def safe(self) -> str:
        """The URL for messages: every password masked."""
        return self.render()

    def query_value(self, key: str) -> str | None:
        """The last value of query option ``key``, or None."""
        found = None
        for name, value in self.query:
            if name == key:
                found = value
        return found

    def render(self, hide_password: bool = True) -> str:
        """The URL as SQLAlchemy's ``render_as_string`` writes it.

        With ``hide_password`` (the default) the password and every
        password-like query option are ``***``.  The result parses back to an
        equal :class:`Url` (when nothing is hidden).
        """
        text = self.drivername + "://"
        if self.username is not None:
            text += quote(self.username, safe=" +")
            if self.password is not None:
                text += ":" + (_MASK if hide_password else quote(self.password, safe=" +"))
            text += "@"
        if self.host is not None:
            text += f"[{self.host}]" if ":" in self.host else self.host
        if self.port is not None:
            text += f":{self.port}"
        if self.database is not None:
            text += "/" + quote(self.database, safe=" +/")
        if self.query:
            # SQLAlchemy sorts by key and keeps the order of a repeated key's values.
            pairs = sorted(self.query, key=lambda pair: pair[0])
            from urllib.parse import quote_plus

            text += "?" + "&".join(
                f"{quote_plus(key)}=" + (_MASK if hide_password and key.lower() in _SECRET_KEYS else quote_plus(value))
                for key, value in pairs
            )
        return text

    def with_password(self, password: str | None) -> Url:
        """A copy with ``password`` in place of this URL's password."""
        return Url(
            self.drivername,
            username=self.username,
            password=password,
            host=self.host,
            port=self.port,
            database=self.database,
            query=self.query,
        )

    def connect_kwargs_psycopg2(self) -> dict[str, Any]:
        """The keyword arguments SQLAlchemy's psycopg2 dialect passes to ``psycopg2.connect``.

        host, port, user, password and dbname when set (empty values are
        left out, as SQLAlchemy does), then every query option on top: they
        are libpq keywords.  SQLAlchemy's multi-host forms
        (``host=h1:p1&host=h2:p2``, ``host=h1,h2&port=p1,p2``, ``host=h:p``)
        become libpq's comma lists, as SQLAlchemy makes them.  Anything it
        would refuse, and any other option given twice (libpq takes one
        value), is a ConfigError.
        """
        kwargs: dict[str, Any] = {}
        for name, value in (
            ("host", self.host),
            ("dbname", self.database),
            ("user", self.username),
            ("password", self.password),
        ):
            if value:
                kwargs[name] = value
        if self.port:
            kwargs["port"] = self.port
        seen: dict[str, list[str]] = {}
        for key, value in self.query:
            seen.setdefault(key, []).append(value)
        for key, values in seen.items():
            if len(values) > 1 and key not in ("host", "port"):
                raise ConfigError(
                    f"The URL {self.safe} gives the option '{key}' {len(values)} times; "
                    "PostgreSQL takes one value. Keep one of them."
                )
            kwargs[key] = values[-1]
        hosts, ports = self._multihost(seen)
        if hosts is not None:
            kwargs["host"] = ",".join(hosts)
            ports = ports or [""] * len(hosts)
            if ",".join(ports):
                kwargs["port"] = ",".join(ports)
        return kwargs

    def connect_kwargs_pymysql(self) -> dict[str, Any]:
        """The keyword arguments SQLAlchemy's pymysql dialect passes to ``pymysql.connect``.

        user, password, host, port and database when set, ``charset`` utf8mb4
        (SQLAlchemy's default for MySQL), then the query options: numbers and
        switches converted as SQLAlchemy converts them, ``ssl_*`` gathered
        into PyMySQL's ``ssl`` dict.  An option given twice, or one that is
        not a number where a number is needed, is a ConfigError.
        """
        kwargs: dict[str, Any] = {"charset": "utf8mb4"}
        for name, value in (("host", self.host), ("database", self.database), ("user", self.username)):
            if value:
                kwargs[name] = value
        if self.password:
            # PyMySQL sends a str password as latin-1; the server hashed the UTF-8 bytes.
            kwargs["password"] = self.password.encode("utf-8")
        if self.port:
            kwargs["port"] = self.port
        seen: dict[str, str] = {}
        for key, value in self.query:
            if key in seen:
                raise ConfigError(
                    f"The URL {self.safe} gives the option '{key}' more than once; "
                    "MySQL takes one value. Keep one of them."
                )
            seen[key] = value
        ssl: dict[str, Any] = {}
        for key, value in seen.items():
            if key in _MYSQL_INT_OPTIONS:
                if not (value.isascii() and value.isdigit()):
                    raise ConfigError(f"The URL {self.safe} has {key}={value!r}; give it as digits.")
                kwargs[key] = int(value)
            elif key in _MYSQL_BOOL_OPTIONS:
                kwargs[key] = value.lower() in ("true", "1", "yes", "on", "y", "t")
            elif key in ("password", "passwd"):
                kwargs["password"] = value.encode("utf-8")  # as above: the server hashed UTF-8 bytes
            elif key in _MYSQL_SSL_OPTIONS:
                ssl[key[4:]] = (
                    value if key != "ssl_check_hostname" else value.lower() in ("true", "1", "yes", "on", "y", "t")
                )
            else:
                kwargs[key] = value
        if ssl:
            kwargs["ssl"] = ssl
        return kwargs

    def _multihost(self, seen: dict[str, list[str]]) -> tuple[list[str] | None, list[str] | None]:
        """SQLAlchemy's reading of host= and port= options (PGDialect._split_multihost_from_url)."""
        hosts: list[str] | None = None
        ports: list[str] | None = None
        integrated = False
        host_values = seen.get("host")
        if host_values is not None and len(host_values) > 1:
            integrated = True
            pairs = [value.partition(":")[::2] for value in host_values]
            hosts, ports = [host for host, _ in pairs], [port for _, port in pairs]
        elif host_values is not None:
            hosts = host_values[0].split(",")
            if "port" not in seen and len(hosts) == 1 and ":" in hosts[0]:
                import re

                found = re.fullmatch(r"([a-zA-Z0-9\-.]*)(?::(\d*))?", hosts[0])
                if found:
                    integrated = True
                    hosts, ports = [found[1]], [found[2] or ""]
        if "port" in seen:
            if integrated:
                raise ConfigError(
                    f"The URL {self.safe} mixes two multi-host forms; use either "
                    "host=h1:p1&host=h2:p2 or host=h1,h2&port=p1,p2."
                )
            port_values = seen["port"]
            ports = port_values if len(port_values) > 1 else port_values[0].split(",")
        if ports is not None:
            if not all(port == "" or (port.isascii() and port.isdigit()) for port in ports):
                raise ConfigError(f"The URL {self.safe} has a port option that is not a number; give ports as digits.")
            ports = [str(int(port)) if port else "" for port in ports]
            if (hosts is None and len(ports) > 1) or (
                hosts is not None and len(hosts) != len(ports) and max(len(hosts), len(ports)) > 1
            ):
                raise ConfigError(
                    f"The URL {self.safe} names {len(hosts or ())} host(s) but "
                    f"{len(ports)} port(s); give one port per host, or none."
                )
        return hosts, ports

    def _key(self) -> tuple[object, ...]:
        # The order of different options carries no meaning (SQLAlchemy renders them
        # sorted); the order of one option's repeated values does.
        return (
            self.drivername,
            self.username,
            self.password,
            self.host,
            self.port,
            self.database,
            tuple(sorted(self.query, key=lambda pair: pair[0])),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Url) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return f"Url({self.render()!r})"


def _sqlite_file(url: Url) -> tuple[str | None, bool]:
    """(absolute path or None, is in memory), the way SQLAlchemy's pysqlite dialect reads the URL."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None, True
    if url.query_value("mode") == "memory":
        return None, True
    path = database
    if database.startswith("file:") and (url.query_value("uri") or "").lower() in ("true", "1", "yes", "on", "y", "t"):
        # uri=true: the database is an SQLite URI, file:PATH or file://[localhost]/PATH.
        rest = database[len("file:") :].split("?", 1)[0].split("#", 1)[0]
        if rest.startswith("//"):
            _authority, _, rest = rest[2:].partition("/")
            rest = "/" + rest
        path = _unquote(rest)
        if not path or path == ":memory:":
            return None, True
    return os.path.abspath(path), False


def _not_a_url_hint(raw: str) -> str:
    """What a value with no scheme most likely is, said without showing it."""
    if raw.startswith(("/", "./", "../")) or raw.lower().endswith((".db", ".sqlite", ".sqlite3")):
        return " It looks like a file path: a SQLite URL is sqlite:/// and the path (four slashes for an absolute one)."
    import binascii

    try:
        decoded = binascii.a2b_base64(raw.strip()).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ""
    if scan_scheme(decoded) is not None:
        return (
            " It is base64 text of a URL: decode it (`base64 -d`), or in a Kubernetes Secret put the URL "
            "under stringData, not data."
        )
    return ""


def parse(raw: str, variable: str = "DATABASE_URL") -> Url:
    """Parse a database URL; every mistake is a ConfigError (exit 2) that names ``variable``.

    The message shows the URL only redacted, and not at all when it cannot
    tell where a password would be.  ``postgres://`` is PostgreSQL;
    in-memory SQLite is refused, since it would vanish with the container.
    """
    at = first_control(raw)
    if at >= 0:
        raise ConfigError(
            f"{variable} contains {_describe_control(raw[at])} at position {at + 1} (the value "
            "is not shown). Remove it: a URL is one line of printable text; a secret file "
            "may end with one newline, no more."
        )
    scheme = scan_scheme(raw)
    if scheme is None:
        # Not shown, whatever it holds: a value that is not a URL may be a bare password, or a
        # Kubernetes Secret's base64 text mounted as it is (issue 25: never print a password).
        raise ConfigError(
            f"{variable} ({len(raw)} characters, not shown: it may be a secret) is not a database URL: it "
            f"does not start with a scheme such as postgresql:// or sqlite:///.{_not_a_url_hint(raw)} Use a "
            "form such as sqlite:////data/app.db or postgresql://user:password@host:5432/dbname."
        )
    rest = raw[len(scheme) + 3 :]
    username = password = None
    userinfo = scan_userinfo(rest)
    if userinfo is not None:
        if rest.count("@") > 1:
            # SQLAlchemy would end the password at the first '@' and take the
            # rest of it for the host name: refuse instead of guessing.
            raise ConfigError(
                # No at sign after the URL in this sentence: the log mask reads up to the last one.
                f"{variable} ({redact(raw)}) has more than one unencoded at sign. Percent-encode "
                "special characters in the user name, password and database name: the at sign as "
                "%40, '/' as %2F, '#' as %23, '%' as %25, ':' as %3A."
            )
        username = _unquote(userinfo[0])
        password = _unquote(userinfo[1]) if userinfo[1] is not None else None
        rest = rest[userinfo[2] :]
    hosts: tuple[tuple[str, str], ...] = ()
    if (
        "," in rest[: _run_until(rest, 0, "/?")]
        and _BACKENDS.get(scheme.partition("+")[0].lower(), scheme.partition("+")[0].lower()) == "postgresql"
    ):
        rest, hosts = _multihost_authority(rest, raw, variable)
    location = scan_location(rest)
    if location is None:
        raise ConfigError(
            f"{variable} ({redact(raw)}) is not a database URL: the text after the host cannot "
            "be read (an IPv6 address goes in brackets: postgresql://user@[::1]:5432/db). Use a "
            "form such as postgresql://user:password@host:5432/dbname."
        )
    host = location["ipv4host"] or location["ipv6host"]
    port_text = location["port"]
    port = None
    if port_text:
        if not (port_text.isascii() and port_text.isdigit()):
            hint = (
                " An IPv6 address goes in brackets: postgresql://user@[::1]:5432/db."
                if host is None and ":" in port_text
                else ""
            )
            raise ConfigError(
                f"{variable} ({redact(raw)}) has the port {port_text!r}, which is not a number. "
                f"Give the port as digits (5432 for PostgreSQL) or leave it out.{hint}"
            )
        port = int(port_text)
        if not 0 < port <= 65535:
            raise ConfigError(
                f"{variable} ({redact(raw)}) has the port {port}, which is out of range: "
                "a port is 1 to 65535 (5432 for PostgreSQL)."
            )
    database = _unquote(location["database"]) if location["database"] is not None else None
    query: tuple[tuple[str, str], ...] = ()
    if location["query"] is not None:
        from urllib.parse import parse_qsl

        query = tuple(parse_qsl(location["query"]))
    if hosts:
        if any(key in ("host", "port") for key, _ in query):
            raise ConfigError(
                f"{variable} ({redact(raw)}) lists hosts both before the database name and "
                "in host= or port= options. Use one form: postgresql://user:password@"
                "host1:5432,host2:5432/dbname?target_session_attrs=read-write."
            )
        query = hosts + query
    url = Url(scheme, username=username, password=password, host=host, port=port, database=database, query=query)
    if url.backend == "sqlite":
        _check_sqlite(url, raw, variable)
    elif url.backend == "mysql" and not url.database:
        raise ConfigError(
            f"{variable} ({redact(raw)}) names no database. MySQL and MariaDB have no default one: "
            "name it after the host, as in mysql://user:password@host:3306/dbname."
        )
    return url


def _multihost_authority(rest: str, raw: str, variable: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """libpq's multi-host form ``h1:p1,h2:p2`` (before the database name): the rest, and the hosts.

    SQLAlchemy's grammar has one host and one port, so the hosts become its own
    multi-host options (``?host=h1:p1&host=h2:p2``), which reach libpq as the
    same comma lists (:meth:`Url.connect_kwargs_psycopg2`); libpq then tries them
    in order, as target_session_attrs says.
    """
    end = _run_until(rest, 0, "/?")
    hosts: list[tuple[str, str]] = []
    for entry in rest[:end].split(","):
        host, _, port = entry.partition(":")
        if not host or "[" in entry or "]" in entry or ":" in port:
            raise ConfigError(
                f"{variable} ({redact(raw)}) lists several hosts, and {entry!r} is not a host name or "
                "IPv4 address with an optional port. Write host:port pairs separated by commas "
                "(postgresql://user:password@host1:5432,host2:5432/dbname); an IPv6 address needs "
                "the host=[...] option of libpq's own connection strings, which this URL cannot carry."
            )
        if port and not (port.isascii() and port.isdigit() and 0 < int(port) <= 65535):
            raise ConfigError(
                f"{variable} ({redact(raw)}) gives the host {host} the port {port!r}, which is not a "
                "port number (1 to 65535; 5432 for PostgreSQL)."
            )
        hosts.append(("host", f"{_unquote(host)}:{port}" if port else _unquote(host)))
    return rest[end:], tuple(hosts)


def _check_sqlite(url: Url, raw: str, variable: str) -> None:
    if url.username is not None or url.password is not None or url.host or url.port:
        raise ConfigError(
            f"{variable} ({redact(raw)}) gives a SQLite URL a user, password, host or port; "
            "a SQLite URL names a file: sqlite:////absolute/path.db (four slashes) or "
            "sqlite:///relative/path.db (three)."
        )
    if url.is_memory:
        raise ConfigError(
            f"{variable} ({redact(raw)}) names an in-memory SQLite database, which would vanish "
            "when this container exits and which the application could never see. Point it at "
            "a file on the shared volume, such as sqlite:////app/backend/data/webui.db."
        )


def redact(text: str) -> str:
    """``text`` with every password in it masked: in URLs (valid or not) and in password= options.

    Hosts, ports, paths (SQLite files too) and a database URL's user name stay visible; any
    other URL's user info is masked whole (a token in a requirement, issue 25 N27).
    Never raises; idempotent.
    """
    if "://" not in text and "=" not in text and ":" not in text:
        return text
    if "://" in text and "@" in text:  # a password in a URL runs to an '@': without one, nothing to mask
        import re

        text = re.sub(_TEXT_OTHER_USERINFO, _mask_other_userinfo, text)
        text = "".join(_mask_userinfo(line) for line in re.split(r"(\r\n|\r|\n)", text))
    if ("=" in text or ":" in text) and _may_hold_secret_key(text):
        import re

        if "=" in text:
            text = re.sub(_TEXT_QUERY_SECRET, _mask_value, text)
        if ":" in text:
            text = re.sub(_TEXT_KEYED_SECRET, _mask_value, text)
    return text


def _may_hold_secret_key(text: str) -> bool:
    """Whether ``text`` could hold a password-like key that the query and keyed patterns mask.

    Every key they match holds "pass" or "pwd", case-insensitively; ``casefold`` maps
    every character that ``re.IGNORECASE`` equates with those letters (such as U+017F,
    the long s) to them, so a False here is a text on which both patterns find nothing.
    """
    folded = text.casefold()
    return "pass" in folded or "pwd" in folded


def _mask_other_userinfo(match: re.Match[str]) -> str:
    """A URL's whole user info masked, unless it is a database URL's (whose user name stays in view)."""
    if match["scheme"].lower().partition("+")[0] in _DATABASE_SCHEMES:
        return match[0]
    return f"{match['scheme']}://{_MASK}@"


def _mask_userinfo(line: str) -> str:
    """``line`` with the password of every scheme://user:PASSWORD@ in it masked.

    The password runs to the last '@' before the next URL on the line: a raw
    '@', '/', '#', quote or space in it must not end the mask early, and a
    second URL on the line keeps its own host in view.  With no '@' before
    the next URL, to the last '@' on the line: over-masking is the price of
    never showing a password that holds a raw "://".
    """
    import re

    masked: list[str] = []
    position = 0
    userinfo, url_start = re.compile(_TEXT_USERINFO), re.compile(_TEXT_URL_START)
    while (head := userinfo.search(line, position)) is not None:
        start = head.end()
        if line.startswith(_MASK + "@", start):
            # Already masked (a message built from Url.safe): the '@' right after is the real one,
            # and a later '@' (MySQL's 'user'@'host') must stay in view.
            masked.append(line[position : start + len(_MASK)])
            position = start + len(_MASK)
            continue
        following = url_start.search(line, start)
        at = line.rfind("@", start, following.start() if following else len(line))
        if at < 0:
            at = line.rfind("@", start)
        if at < 0:  # no password here: "host:port" or a user without one
            masked.append(line[position:start])
            position = start
            continue
        masked.append(line[position:start] + _MASK)
        position = at
    masked.append(line[position:])
    return "".join(masked)


def _mask_value(match: re.Match[str]) -> str:
    value = match["value"]
    if value[:1] in ("'", '"'):
        return f"{match['head']}{value[0]}{_MASK}{value[0]}"
    return f"{match['head']}{_MASK}" if value else match[0]


def secret_forms(secret: str) -> set[str]:
    """Every form in which ``secret`` could appear in output, for a mask to replace.

    For a URL, the forms of its password (decoded, and as written) and of its
    password-like query options, not the URL itself: its host and path stay
    readable.  For anything else, the forms of the whole value.  The forms:
    raw, percent-encoded (quote, quote_plus, SQLAlchemy's ``safe=" +"``),
    JSON-escaped (ASCII and not), repr-escaped, and backslash-doubled.
    An empty set when there is nothing secret (a URL without a password).
    """
    forms: set[str] = set()
    for value in _secret_values(secret):
        if value:
            forms.update(_escaped_forms(value))
    forms.discard("")
    return forms


def _secret_values(secret: str) -> list[str]:
    rest = _after_text_scheme(secret)
    if rest is None:
        return [secret]
    values: list[str] = []
    # The password up to the first '@' (SQLAlchemy's reading) and up to the
    # last (redact's): for a URL with a raw '@' in its password, both are masked.
    # (The user name holds no ':' or '/'; the password starts after its ':'.)
    colon = _run_until(rest, 0, ":/")
    if rest.startswith(":", colon):
        for at in (rest.find("@", colon + 1), rest.rfind("@")):
            if at > colon:
                values += [rest[colon + 1 : at], _unquote(rest[colon + 1 : at])]
    query = rest.partition("?")[2]
    if query:
        from urllib.parse import parse_qsl

        for key, value in parse_qsl(query, keep_blank_values=True):
            if key.lower() in _SECRET_KEYS:
                values.append(value)
    for raw_pair in query.split("&"):
        key, sep, value = raw_pair.partition("=")
        if sep and key.lower() in _SECRET_KEYS:
            values.append(value)  # as written, still percent-encoded
    return values


def _after_text_scheme(text: str) -> str | None:
    """What follows ``re.match(_TEXT_URL_START, text)``: an optional scheme, then "://"; or None."""
    end = 0
    if text[:1].isascii() and text[:1].isalpha():
        end = 1
        while end < len(text) and text[end] in _TEXT_SCHEME_CHARS:
            end += 1
    return text[end + 3 :] if text.startswith("://", end) else None


_TEXT_SCHEME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+.-_")


def _escaped_forms(value: str) -> set[str]:
    reprs = {repr(value)[1:-1], ascii(value)[1:-1]}
    forms = {
        value,
        quote(value, safe=""),
        quote(value, safe="/"),
        quote(value, safe=" +"),  # SQLAlchemy's render_as_string(hide_password=False)
        _quote_plus(value),
        _json_string(value)[1:-1],
        _json_string(value, ensure_ascii=False)[1:-1],
        value.replace("\\", "\\\\"),
        *reprs,
        # A repr inside a JSON log line.
        *(_json_string(r)[1:-1] for r in reprs),
    }
    return forms


def _quote_plus(text: str) -> str:
    """``urllib.parse.quote_plus(text)`` (``safe=""``), which is ``quote(text, safe="")`` when there is no space."""
    if " " not in text:
        return quote(text, safe="")
    from urllib.parse import quote_plus

    return quote_plus(text)


def _json_string(text: str, *, ensure_ascii: bool = True) -> str:
    """``json.dumps(text)`` of a str, by the encoder function it calls, without importing json (issue 14)."""
    try:
        from _json import encode_basestring, encode_basestring_ascii
    except ImportError:  # an interpreter without the C accelerator
        from json.encoder import encode_basestring, encode_basestring_ascii
    return encode_basestring_ascii(text) if ensure_ascii else encode_basestring(text)
