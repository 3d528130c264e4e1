"""XSRFMiddleware's short path for urlencoded forms answers exactly what werkzeug's form parser
answers: generated bodies (encoded names, repeated and blank fields, bad escapes, invalid
UTF-8) are checked field by field and end to end, and the app still reads the same bytes."""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote
from wsgiref.validate import validator

import pytest
from werkzeug.exceptions import ClientDisconnected
from werkzeug.formparser import parse_form_data
from werkzeug.test import Client, EnvironBuilder

from middleware import keys
from middleware._wsgi import read_exactly
from middleware.xsrf import (
    XSRFMiddleware,
    _urlencoded_field,
    mask_xsrf_token,
    new_xsrf_token,
    unmask_xsrf_token,
    xsrf_tokens_equal,
)

URLENCODED = "application/x-www-form-urlencoded"
TOKEN = new_xsrf_token()
OTHER = new_xsrf_token()
NAMES = ["_xsrf", "%5Fxsrf", "%5fxsrf", "_xs%72f", "%5F%78%73%72%66", "_xsrf%20", "+_xsrf",
         "_XSRF", "_xsrf_", "x_xsrf", "name", "", "_xs+rf", "_xsrf%", "%5", "%E9", "_xsrf\n",
         "a=b"]


def _values() -> list[str]:
    good, bad = mask_xsrf_token(TOKEN), mask_xsrf_token(OTHER)
    return [good, quote(good, safe=""), good.replace("|", "%7c"), bad, "", "garbage",
            "%FF", "caf%C3%A9", "a+b", "%", "2|zz|yy|1", TOKEN.hex(), good + "%00",
            "a\n", "x=y", "é"]


def generated_bodies(seed: int, count: int) -> list[bytes]:
    """Random urlencoded bodies built from the pieces that trip parsers up."""
    rng = random.Random(seed)
    values = _values()
    bodies = []
    for _ in range(count):
        fields = []
        for _ in range(rng.randint(0, 6)):
            name = rng.choice(NAMES)
            kind = rng.random()
            if kind < 0.1:
                fields.append(name)  # no "=": a blank value for werkzeug
            elif kind < 0.15:
                fields.append("")  # "&&"
            else:
                fields.append(f"{name}={rng.choice(values)}")
        body = "&".join(fields).encode()
        if rng.random() < 0.05:
            body += b"&note=\xff\xfe"  # not UTF-8: werkzeug reads an empty form
        bodies.append(body)
    return bodies


def werkzeug_field(body: bytes, name: str = "_xsrf") -> str | None:
    environ = EnvironBuilder(method="POST", data=body, content_type=URLENCODED).get_environ()
    _, form, _ = parse_form_data(environ, silent=True)
    value = form.get(name)
    return value if isinstance(value, str) else None


@pytest.mark.parametrize("seed", range(5))
def test_field_scan_matches_werkzeug_on_generated_bodies(seed: int) -> None:
    bodies = generated_bodies(seed, 400)
    found = 0
    for body in bodies:
        expected = werkzeug_field(body)
        assert _urlencoded_field(body, "_xsrf") == expected, body
        found += expected is not None
    assert found > 50  # the corpus does exercise bodies that carry the field


def test_field_scan_edge_cases() -> None:
    cases = [b"", b"_xsrf", b"_xsrf=", b"_xsrf&_xsrf=a", b"a=1&%5Fxsrf=b&_xsrf=c",
             b"_xsrf=%ZZ%41", b"_xsrf=a=b", b"&&_xsrf=x&&", b"_XSRF=a", b"_xsrf=%E9%FF",
             b"_xsrf=\xc3\xa9", b"_xsrf=a\xff", b"%5F%78srf=q+r", b"_xsrf=a;b=c"]
    for body in cases:
        assert _urlencoded_field(body, "_xsrf") == werkzeug_field(body), body
    assert _urlencoded_field(b"a=1&%5Fxsrf=b&_xsrf=c", "_xsrf") == "b"  # the first one


def _echo_body(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answers the body it reads, so a test sees what the app got."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    assert environ["wsgi.input"].read(10) == b""  # nothing beyond the declared length
    environ.get(keys.XSRF_TOKEN)
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(body)))])
    return [body]


def _post(client: Client, body: bytes, *, chunked: bool = False,
          content_type: str = URLENCODED) -> Any:
    headers = {"Host": "example.com", "Content-Type": content_type,
               "Cookie": "_xsrf=" + mask_xsrf_token(TOKEN)}
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
        return client.post("/", input_stream=io.BytesIO(body), headers=headers,
                           environ_overrides={"wsgi.input_terminated": True})
    return client.post("/", data=body, headers=headers)


@pytest.mark.parametrize("options", [{}, {"spool_size": 16}], ids=["memory", "temp file"])
def test_middleware_decides_as_werkzeug_reads_and_passes_the_same_bytes(
        options: dict[str, int]) -> None:
    client = Client(validator(XSRFMiddleware(validator(_echo_body), **options)),
                    use_cookies=False)
    for i, body in enumerate(generated_bodies(99, 150)):
        expected = werkzeug_field(body)
        accept = xsrf_tokens_equal(unmask_xsrf_token(expected), TOKEN)
        response = _post(client, body, chunked=i % 3 == 0)
        try:
            assert response.status_code == (200 if accept else 403), (body, expected)
            if accept:
                assert response.get_data() == body
        finally:
            response.close()


def test_encoded_field_name_is_accepted_and_first_field_wins() -> None:
    client = Client(XSRFMiddleware(_echo_body), use_cookies=False)
    good = quote(mask_xsrf_token(TOKEN), safe="")
    assert _post(client, f"a=1&%5Fxsrf={good}".encode()).status_code == 200
    assert _post(client, f"_xsrf=&_xsrf={good}".encode()).status_code == 403
    assert _post(client, f"_xsrf={good}&_xsrf=bad".encode()).status_code == 200


def test_content_type_other_than_the_exact_form_type_goes_to_werkzeug() -> None:
    """A mixed-case type is not a form to werkzeug, so the field is not found (as before)."""
    client = Client(XSRFMiddleware(_echo_body), use_cookies=False)
    body = f"_xsrf={mask_xsrf_token(TOKEN)}".encode()
    assert _post(client, body, content_type=URLENCODED + "; charset=UTF-8").status_code == 200
    assert _post(client, body, content_type="Application/X-WWW-Form-Urlencoded"
                 ).status_code == 403
    assert _post(client, body, content_type="text/plain").status_code == 403


def test_large_form_spills_to_a_temporary_file_and_reaches_the_app_intact() -> None:
    client = Client(XSRFMiddleware(_echo_body, spool_size=1024), use_cookies=False)
    body = b"big=" + b"x" * 50_000 + f"&_xsrf={mask_xsrf_token(TOKEN)}".encode()
    for chunked in (False, True):
        response = _post(client, body, chunked=chunked)
        assert response.status_code == 200
        assert response.get_data() == body
        response.close()


def test_short_body_is_a_client_disconnect() -> None:
    """A body shorter than its Content-Length is a client disconnect: answered 400 (the
    middleware catches werkzeug's ClientDisconnected rather than raising it to the server)."""
    app = XSRFMiddleware(_echo_body)
    body = f"_xsrf={mask_xsrf_token(TOKEN)}".encode()
    environ = EnvironBuilder(method="POST", data=body, content_type=URLENCODED,
                             headers={"Cookie": "_xsrf=" + mask_xsrf_token(TOKEN)}
                             ).get_environ()
    environ["CONTENT_LENGTH"] = str(len(body) + 10)
    statuses: list[str] = []
    app(environ, lambda status, *args: statuses.append(status))
    assert statuses == [f"{ClientDisconnected.code} Bad Request"]


class _Trickle(io.RawIOBase):
    """A stream that hands out at most 3 bytes per read, as a slow socket may."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk, self._data = self._data[:min(size, 3)], self._data[min(size, 3):]
        return chunk


def test_read_exactly_collects_short_reads_and_stops_at_the_length() -> None:
    assert read_exactly(_Trickle(b"0123456789abc"), 10) == b"0123456789"
    assert read_exactly(io.BytesIO(b"abc"), 0) == b""
    with pytest.raises(ClientDisconnected):
        read_exactly(_Trickle(b"0123"), 10)


def test_masking_round_trips_tokens_of_any_length() -> None:
    """Tokens of lengths that are not a multiple of the 4-byte mask still unmask intact."""
    rng = random.Random(7)
    for size in range(1, 40):
        raw = bytes(rng.randrange(256) for _ in range(size))
        masked = mask_xsrf_token(raw)
        assert unmask_xsrf_token(masked) == raw
        _, mask_hex, masked_hex, _ = masked.split("|")
        mask = bytes.fromhex(mask_hex)
        assert bytes.fromhex(masked_hex) == bytes(b ^ mask[i % 4] for i, b in enumerate(raw))


def test_field_name_that_urlencoding_changes_is_still_found() -> None:
    """A custom field name with a space is read by werkzeug's parser, encoded either way."""
    client = Client(XSRFMiddleware(_echo_body, field_name="csrf token"), use_cookies=False)
    good = quote(mask_xsrf_token(TOKEN), safe="")
    assert _post(client, f"a=1&csrf+token={good}".encode()).status_code == 200
    assert _post(client, f"csrf%20token={good}".encode()).status_code == 200
    assert _post(client, f"_xsrf={good}".encode()).status_code == 403
