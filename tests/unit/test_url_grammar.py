"""The URL scanners read every text exactly as SQLAlchemy's patterns do (issue 14).

``url.parse`` does not import ``re`` (it would bring ``enum`` onto the way to a
run with nothing to do), so the grammar is read by hand.  These tests hold the
scanners to the patterns themselves, on every short text over the characters
the grammar cares about and on random longer ones.
"""

from __future__ import annotations

import itertools
import random
import re

import pytest

from migrate_init import url

#: The characters the grammar treats specially, and two it does not.
ALPHABET = ":/@?[]a1+_.%=&#-"


def texts(max_exhaustive: int = 5, random_count: int = 40000, seed: int = 14) -> list[str]:
    found = ["".join(chars) for n in range(max_exhaustive + 1) for chars in itertools.product(ALPHABET[:9], repeat=n)]
    rng = random.Random(seed)
    for _ in range(random_count):
        found.append("".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 24))))
    # The shapes that matter, with their parts mixed up.
    parts = ["postgresql", "://", "user", ":", "p@ss", "@", "host", "[::1]", ":5432", "/db", "?a=b", "//", "sqlite"]
    for _ in range(random_count // 4):
        found.append("".join(rng.choice(parts) for _ in range(rng.randint(1, 8))))
    return found


TEXTS = texts()


def test_scheme_is_the_pattern() -> None:
    for text in TEXTS + [t + "://x" for t in TEXTS[:5000]]:
        found = re.match(url.SCHEME_PATTERN, text)
        assert url.scan_scheme(text) == (found[1] if found else None), text


def test_userinfo_is_the_pattern() -> None:
    for text in TEXTS:
        found = re.match(url.USERINFO_PATTERN, text)
        expected = (found["username"], found["password"], found.end()) if found else None
        assert url.scan_userinfo(text) == expected, text


def test_location_is_the_pattern() -> None:
    for text in TEXTS:
        found = re.fullmatch(url.LOCATION_PATTERN, text)
        assert url.scan_location(text) == (found.groupdict() if found else None), text


def _secret_values_by_pattern(secret: str) -> list[str]:
    """The reading of the password in a secret that the scanners replaced, as it was written with ``re``."""
    scheme = re.match(r"(?:[A-Za-z][A-Za-z0-9+.\-_]*)?://", secret)
    if scheme is None:
        return [secret]
    rest = secret[scheme.end() :]
    values: list[str] = []
    for pattern in (r"[^:/]*:([^@]*)@", r"[^:/]*?:(.*)@") if "@" in rest else ():
        found = re.match(pattern, rest, re.DOTALL)
        if found:
            values += [found.group(1), url._unquote(found.group(1))]
    return values


@pytest.mark.parametrize("prefix", ["", "postgresql", "a", "1", "x+y.z-w_v"])
def test_secret_values_are_the_patterns(prefix: str) -> None:
    for text in TEXTS[:20000]:
        secret = f"{prefix}://{text}" if prefix != "1" else f"{prefix}{text}"
        query = secret.partition("?")[2] if secret.startswith(f"{prefix}://") else ""
        expected = _secret_values_by_pattern(secret)
        got = url._secret_values(secret)
        # The query's password options come after, read the same way by both.
        assert got[: len(expected)] == expected, secret
        if not query and expected != [secret]:
            assert got == expected, secret


def test_parse_imports_no_re() -> None:
    """Parsing the URLs of a run with nothing to do does not import ``re`` (issue 14)."""
    import subprocess
    import sys

    code = (
        "import sys; from migrate_init import url; "
        "url.parse('sqlite:////data/app.db'); "
        "url.parse('postgresql://user:s3cret@db.example:5432/app'); "
        "url.secret_forms('postgresql://user:s3cret@db.example:5432/app'); "
        "url.redact('Existing rows: chat=0, user=0'); "
        "print('re' in sys.modules, 'enum' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=str(__import__("pathlib").Path(url.__file__).parents[1]),
    ).stdout
    assert out.split() == ["False", "False"]
