"""``wsgi.input`` reads like a file: readline/read agree with io.BytesIO however the body
arrives in pieces (the pieces come from a real Request the parser would fill)."""

from __future__ import annotations

import io
import random

import pytest

from microweb.server.body import InputStream
from microweb.server.http11 import Request


def _stream(pieces: list[bytes]) -> InputStream:
    req = Request()
    req.body.extend(p for p in pieces if p)
    req.complete = True
    return InputStream(req, lambda r: False)


def _split(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(len(data) + 1), min(len(data), rng.randint(0, 6))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@pytest.mark.parametrize("seed", range(300))
def test_readline_and_read_match_bytesio_on_any_split(seed: int) -> None:
    rng = random.Random(seed)
    data = b"".join(rng.choice([b"a", b"bc", b"\n", b"xyz\n", b"\r\n", b"0123456789"])
                    for _ in range(rng.randint(0, 40)))
    stream, ref = _stream(_split(data, rng)), io.BytesIO(data)
    while True:
        op = rng.choice(["line", "line-limit", "read", "line-none"])
        if op == "line":
            got, want = stream.readline(), ref.readline()
        elif op == "line-none":
            got, want = stream.readline(None), ref.readline(None)
        elif op == "line-limit":
            n = rng.randint(0, 12)
            got, want = stream.readline(n), ref.readline(n)
        else:
            n = rng.randint(0, 12)
            got, want = stream.read(n), ref.read(n)
        assert got == want, (seed, op)
        if not want and ref.tell() == len(data) and op != "line-limit" and op != "read":
            break
    assert stream.read() == b""


def test_a_very_long_line_in_many_pieces_reads_whole() -> None:
    pieces = [b"x" * 1024] * 2048 + [b"\nrest"]
    stream = _stream(pieces)
    assert stream.readline() == b"x" * (1024 * 2048) + b"\n"
    assert stream.readline() == b"rest"
    assert stream.readline() == b""
