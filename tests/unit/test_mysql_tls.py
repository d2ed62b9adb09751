"""probe's PyMySQL connection: TLS "preferred" without loading a CA store it never reads.

PyMySQL builds the context of its "preferred" mode with ssl.create_default_context() and then
turns every check off; migrate-init builds the same unverified context without loading the
system's CA certificates (about 20 ms per connection).  These tests hold the two side by side,
so a PyMySQL release that starts to verify in that mode fails here instead of being weakened.
"""

from __future__ import annotations

import ssl

import pymysql

from migrate_init.engines.mysql import mysql_connection_class


def _contexts(sslp):
    ours = mysql_connection_class()._create_ssl_ctx(object.__new__(mysql_connection_class()), sslp)
    theirs = pymysql.connections.Connection._create_ssl_ctx(object.__new__(pymysql.connections.Connection), sslp)
    return ours, theirs


def test_the_preferred_mode_context_checks_exactly_what_pymysqls_own_checks():
    ours, theirs = _contexts({})

    assert theirs.verify_mode == ssl.CERT_NONE and theirs.check_hostname is False
    assert (ours.verify_mode, ours.check_hostname) == (theirs.verify_mode, theirs.check_hostname)
    assert ours.protocol == theirs.protocol
    assert ours.options & (ssl.OP_NO_SSLv2 | ssl.OP_NO_SSLv3) == ssl.OP_NO_SSLv2 | ssl.OP_NO_SSLv3
    assert ours.minimum_version == theirs.minimum_version
    # What the shortcut saves: PyMySQL's context holds the system's CA store, which CERT_NONE never reads.
    assert ours.cert_store_stats()["x509_ca"] == 0


def test_tls_options_from_the_url_go_through_pymysqls_own_code():
    ours, theirs = _contexts({"verify_mode": True})

    assert ours.verify_mode == theirs.verify_mode == ssl.CERT_REQUIRED
    assert ours.check_hostname is theirs.check_hostname
    assert ours.cert_store_stats() == theirs.cert_store_stats()


def test_the_connection_class_is_pymysqls_own():
    assert issubclass(mysql_connection_class(), pymysql.connections.Connection)
