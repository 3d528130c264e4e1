"""ProxyMiddleware: trusted hops only, walked from the right; spoofing attempts refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from middleware import ProxyMiddleware, compose, keys
from middleware.proxy import parse_forwarded

from .conftest import bare_app, client, make_app

TRUSTED = ["10.0.0.0/8", "192.168.1.5", "fd00::/8"]


def seen(app_kind: str, remote_addr: str, headers: dict[str, str], *,
         trusted: list[str] = TRUSTED, **options: Any) -> dict[str, Any]:
    stack = compose(make_app(app_kind), ProxyMiddleware.configure(trusted=trusted, **options))
    response = client(stack, remote_addr=remote_addr).get("/env", headers=headers)
    return dict(json.loads(response.text))


def test_default_trusts_nobody(app_kind: str) -> None:
    view = seen(app_kind, "10.0.0.1", {"X-Forwarded-For": "1.2.3.4",
                                       "X-Forwarded-Proto": "https",
                                       "X-Forwarded-Host": "evil.example"}, trusted=[])
    assert view["remote_addr"] == "10.0.0.1" and view["scheme"] == "http"
    assert view["host"] in ("localhost", "localhost:80")


def test_one_trusted_proxy_resolves_client_scheme_host(app_kind: str) -> None:
    view = seen(app_kind, "10.0.0.1", {"X-Forwarded-For": "203.0.113.7",
                                       "X-Forwarded-Proto": "https",
                                       "X-Forwarded-Host": "shop.example.com"})
    assert view["remote_addr"] == "203.0.113.7"
    assert view["scheme"] == "https" and view["host"] == "shop.example.com"
    assert view["original_remote_addr"] == "10.0.0.1"


def test_spoofed_leftmost_entry_never_counts(app_kind: str) -> None:
    # the client sent "X-Forwarded-For: 127.0.0.1"; our proxy appended the real peer
    view = seen(app_kind, "10.0.0.1", {"X-Forwarded-For": "127.0.0.1, 198.51.100.9"})
    assert view["remote_addr"] == "198.51.100.9"


def test_chain_of_trusted_proxies_walked_from_the_right(app_kind: str) -> None:
    view = seen(app_kind, "10.0.0.2", {
        "X-Forwarded-For": "6.6.6.6, 198.51.100.9, 192.168.1.5, 10.1.2.3",
        "X-Forwarded-Proto": "http, https, http, http"})
    assert view["remote_addr"] == "198.51.100.9"
    assert view["scheme"] == "https"  # what the outermost trusted proxy received


def test_untrusted_peer_headers_ignored(app_kind: str) -> None:
    view = seen(app_kind, "203.0.113.50", {"X-Forwarded-For": "10.0.0.1",
                                           "X-Forwarded-Host": "admin.internal"})
    assert view["remote_addr"] == "203.0.113.50" and view["host"] in ("localhost", "localhost:80")


@pytest.mark.parametrize("host", ["evil.example/path", "a b", "x\r\ny", "[::1", "@"])
def test_malformed_forwarded_host_ignored(host: str) -> None:
    view = seen("bare", "10.0.0.1", {"X-Forwarded-For": "203.0.113.7"})
    assert view["host"] in ("localhost", "localhost:80")
    environ = {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.7",
               "HTTP_X_FORWARDED_HOST": host, "HTTP_HOST": "real.example"}
    ProxyMiddleware(lambda e, s: [], trusted=TRUSTED)(environ, None)  # type: ignore[arg-type]
    assert environ["HTTP_HOST"] == "real.example"
    assert environ[keys.ORIGINAL_HOST] == "real.example"


def test_forwarded_host_with_a_trailing_newline_ignored() -> None:
    environ = {"REMOTE_ADDR": "10.0.0.1", "HTTP_HOST": "real.example",
               "HTTP_FORWARDED": 'for=203.0.113.7;host="evil.example\n"'}
    app = ProxyMiddleware(lambda e, s: [], trusted=TRUSTED, mode="forwarded")
    app(environ, None)  # type: ignore[arg-type]
    assert environ["REMOTE_ADDR"] == "203.0.113.7"
    assert environ["HTTP_HOST"] == "real.example"


def test_scheme_other_than_http_https_ignored() -> None:
    environ = {"REMOTE_ADDR": "10.0.0.1", "wsgi.url_scheme": "http",
               "HTTP_X_FORWARDED_FOR": "1.2.3.4", "HTTP_X_FORWARDED_PROTO": "javascript"}
    ProxyMiddleware(lambda e, s: [], trusted=TRUSTED)(environ, None)  # type: ignore[arg-type]
    assert environ["wsgi.url_scheme"] == "http" and environ["REMOTE_ADDR"] == "1.2.3.4"


def test_all_hops_trusted_gives_leftmost() -> None:
    view = seen("bare", "10.0.0.1", {"X-Forwarded-For": "10.9.9.9, 10.0.0.7"})
    assert view["remote_addr"] == "10.9.9.9"


def test_garbage_hop_stops_the_walk() -> None:
    view = seen("bare", "10.0.0.1", {"X-Forwarded-For": "1.1.1.1, not-an-ip, 10.0.0.3"})
    assert view["remote_addr"] == "10.0.0.3"


def test_ipv6_and_mapped_addresses(app_kind: str) -> None:
    view = seen(app_kind, "fd00::1", {"X-Forwarded-For": "2001:db8::42"})
    assert view["remote_addr"] == "2001:db8::42"
    view = seen(app_kind, "::ffff:10.0.0.1", {"X-Forwarded-For": "203.0.113.8"})
    assert view["remote_addr"] == "203.0.113.8"


def test_rfc7239_forwarded(app_kind: str) -> None:
    view = seen(app_kind, "10.0.0.1", {
        "Forwarded": 'for=6.6.6.6;proto=https, for="[2001:db8::17]:4711";proto=https;'
                     'host=www.example.org, for=192.168.1.5;proto=http'}, mode="forwarded")
    assert view["remote_addr"] == "2001:db8::17"
    assert view["scheme"] == "https" and view["host"] == "www.example.org"


def test_forwarded_mode_ignores_x_forwarded_for() -> None:
    view = seen("bare", "10.0.0.1", {"X-Forwarded-For": "1.2.3.4"}, mode="forwarded")
    assert view["remote_addr"] == "10.0.0.1"


def test_x_forwarded_mode_ignores_forwarded_header() -> None:
    # a proxy that only appends X-Forwarded-For passes a client's Forwarded header through
    view = seen("bare", "10.0.0.1", {"Forwarded": "for=127.0.0.1",
                                     "X-Forwarded-For": "203.0.113.1"})
    assert view["remote_addr"] == "203.0.113.1"


def test_parse_forwarded() -> None:
    hops = parse_forwarded('for=a;proto=https;host="x.org", For="[::1]:80", junk;;=')
    assert [(h.for_, h.proto, h.host) for h in hops] == [
        ("a", "https", "x.org"), ("[::1]:80", None, None), (None, None, None)]


def test_marks_the_client_as_resolved_and_keeps_originals() -> None:
    environ: dict[str, Any] = {"REMOTE_ADDR": "10.0.0.1", "wsgi.url_scheme": "http",
                               "HTTP_HOST": "internal:8080",
                               "HTTP_X_FORWARDED_FOR": "203.0.113.7",
                               "HTTP_X_FORWARDED_PROTO": "https",
                               "HTTP_X_FORWARDED_HOST": "example.com"}
    ProxyMiddleware(lambda e, s: [], trusted=TRUSTED)(environ, None)  # type: ignore[arg-type]
    assert environ[keys.PROXY_RESOLVED] is True
    assert (environ[keys.ORIGINAL_REMOTE_ADDR], environ[keys.ORIGINAL_URL_SCHEME],
            environ[keys.ORIGINAL_HOST]) == ("10.0.0.1", "http", "internal:8080")
    assert (environ["REMOTE_ADDR"], environ["wsgi.url_scheme"], environ["HTTP_HOST"]) == (
        "203.0.113.7", "https", "example.com")


def test_bad_settings() -> None:
    with pytest.raises(ValueError):
        ProxyMiddleware(bare_app, trusted=["not a network"])
    with pytest.raises(ValueError, match="mode"):
        ProxyMiddleware(bare_app, mode="x-real-ip")  # type: ignore[arg-type]
