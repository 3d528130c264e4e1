"""The WebSocket connection object over an in-memory transport, driven by websockets' client."""

from __future__ import annotations

import threading

import pytest
from websockets.frames import Close, CloseCode, Frame, Opcode
from websockets.protocol import CLOSED, CLOSING

from microweb._ws_protocol import WebSocketClosedError

from .memory import Pair


def _close_of(frames: list[Frame]) -> Close:
    closes = [f for f in frames if f.opcode is Opcode.CLOSE]
    assert closes, frames
    return Close.parse(closes[-1].data)


def test_text_and_binary_messages_arrive_typed() -> None:
    p = Pair().start()
    p.client.send_text("héllo".encode())
    p.client.send_binary(b"\x00\xff")
    p.client_send()
    assert p.handler.messages == ["héllo", b"\x00\xff"]


def test_fragmented_message_is_assembled() -> None:
    p = Pair().start()
    p.client.send_text(b"frag", fin=False)
    p.client.send_continuation(b"men", fin=False)
    p.client_send()
    assert p.handler.messages == []
    p.client.send_continuation(b"ted", fin=True)
    p.client_send()
    assert p.handler.messages == ["fragmented"]


def test_utf8_split_across_fragments_is_fine() -> None:
    p = Pair().start()
    data = "€".encode()
    p.client.send_text(data[:1], fin=False)
    p.client.send_continuation(data[1:], fin=True)
    p.client_send()
    assert p.handler.messages == ["€"]


def test_invalid_utf8_closes_1007() -> None:
    p = Pair().start()
    p.client.send_text(b"ok \xff\xfe", fin=True)
    p.client_send()
    assert p.handler.messages == []
    assert _close_of(p.client_events()).code == CloseCode.INVALID_DATA
    assert p.transport.closed


def test_invalid_utf8_in_first_fragment_fails_early() -> None:
    p = Pair().start()
    p.client.send_text(b"\xc3\x28", fin=False)
    p.client_send()
    assert _close_of(p.client_events()).code == 1007


def test_unmasked_client_frame_closes_1002() -> None:
    p = Pair().start()
    unmasked = Frame(Opcode.TEXT, b"hi").serialize(mask=False, extensions=[])
    p.proto.data_received(unmasked)
    assert p.handler.messages == []
    assert _close_of(p.client_events()).code == CloseCode.PROTOCOL_ERROR


def test_oversized_message_closes_1009() -> None:
    p = Pair(max_size=1000).start()
    p.client.send_binary(b"x" * 1001)
    p.client_send()
    assert p.handler.messages == []
    assert _close_of(p.client_events()).code == CloseCode.MESSAGE_TOO_BIG


def test_oversized_fragmented_message_closes_1009() -> None:
    p = Pair(max_size=1000).start()
    p.client.send_binary(b"x" * 400, fin=False)
    p.client.send_continuation(b"x" * 400, fin=False)
    p.client.send_continuation(b"x" * 400, fin=True)
    p.client_send()
    assert _close_of(p.client_events()).code == 1009


def test_ping_is_answered_and_reported() -> None:
    p = Pair().start()
    p.client.send_ping(b"abc")
    p.client_send()
    pongs = [f for f in p.client_events() if f.opcode is Opcode.PONG]
    assert [f.data for f in pongs] == [b"abc"]
    assert p.handler.pings == [b"abc"]


def test_server_ping_and_on_pong() -> None:
    p = Pair().start()
    p.proto.ping(b"xyz")
    pings = [f for f in p.client_events() if f.opcode is Opcode.PING]
    assert [f.data for f in pings] == [b"xyz"]
    p.client_send()  # the client answered with a pong
    assert p.handler.pongs == [b"xyz"]


def test_client_initiated_close_handshake() -> None:
    p = Pair().start()
    p.client.send_close(CloseCode.GOING_AWAY, "bye")
    p.client_send()
    close = _close_of(p.client_events())
    assert (close.code, close.reason) == (1001, "bye")  # echoed
    assert p.transport.closed and not p.transport.aborted
    p.proto.connection_lost(None)
    assert p.handler.closed == [(1001, "bye")]
    with pytest.raises(WebSocketClosedError):
        p.proto.send("late", binary=False)


def test_server_initiated_close_waits_for_the_client() -> None:
    p = Pair().start()
    p.proto.close(4000, "done")
    assert _close_of(p.client_events()).code == 4000
    assert not p.transport.closed  # waiting for the client's close frame
    assert p.client.state is CLOSING
    p.client_send()  # websockets' client echoes the close frame
    assert p.transport.closed and not p.transport.aborted
    p.proto.connection_lost(None)
    assert p.handler.closed == [(4000, "done")]


def test_close_with_reason_only_uses_1000() -> None:
    p = Pair().start()
    p.proto.close(reason="finished")
    assert _close_of(p.client_events()).code == 1000


def test_close_timeout_drops_a_silent_peer() -> None:
    p = Pair(close_timeout=2.0).start()
    p.proto.close()
    assert [t.delay for t in p.transport.timers] == [2.0]
    p.transport.fire()
    assert p.transport.aborted


def test_connection_lost_without_close_frame_reports_none() -> None:
    p = Pair().start()
    p.proto.connection_lost(ConnectionResetError())
    p.proto.connection_lost(None)  # idempotent: on_close exactly once
    assert p.handler.closed == [(None, None)]


def test_empty_close_frame_reports_no_code() -> None:
    p = Pair().start()
    p.client.send_close()
    p.client_send()
    p.proto.connection_lost(None)
    assert p.handler.closed == [(None, None)]


def test_writes_before_connection_made_are_flushed_in_order() -> None:
    p = Pair()
    p.proto.send("first", binary=False)
    p.proto.send(b"second", binary=True)
    assert p.transport.out == b""
    p.start()
    assert [f.data for f in p.client_events()] == [b"first", b"second"]


def test_slow_reader_is_closed_1008() -> None:
    p = Pair(max_write_buffer=100).start()
    p.transport.buffered = 50
    p.proto.send("fine", binary=False)
    p.transport.buffered = 500
    p.proto.send("too much", binary=False)
    assert _close_of(p.client_events()).code == CloseCode.POLICY_VIOLATION
    assert p.transport.closed
    with pytest.raises(WebSocketClosedError):
        p.proto.send("more", binary=False)


def test_keepalive_pings_and_drops_a_dead_peer() -> None:
    p = Pair(ping_interval=10, ping_timeout=3).start()
    assert [t.delay for t in p.transport.timers] == [10]
    p.transport.fire()  # interval elapsed: a ping goes out
    assert [f.opcode for f in p.client_events()] == [Opcode.PING]
    assert [t.delay for t in p.transport.timers] == [3]
    p.client_send()  # the client's pong arrives in time
    p.transport.fire()
    assert not p.transport.closed
    assert len(p.transport.timers) == 1  # next ping scheduled
    p.transport.fire()  # ping again, and this time the peer stays silent
    p.client_events()
    p.transport.fire()
    assert p.transport.aborted


def test_callback_exception_closes_1011(caplog: pytest.LogCaptureFixture) -> None:
    p = Pair().start()

    def boom(message: str | bytes) -> None:
        raise ValueError("bad handler")

    p.handler.on_message = boom
    p.client.send_text(b"x")
    p.client.send_text(b"y")
    p.client_send()
    assert p.handler.messages == ["x"]  # nothing delivered after the failure
    assert _close_of(p.client_events()).code == CloseCode.INTERNAL_ERROR
    assert "Uncaught exception" in caplog.text


def test_permessage_deflate_round_trip() -> None:
    p = Pair(compress=True)
    assert "permessage-deflate" in p.response.headers["Sec-WebSocket-Extensions"]
    p.start()
    text = "compress me " * 200
    p.client.send_text(text.encode())
    p.client_send()
    assert p.handler.messages == [text]
    p.proto.send(text, binary=False)
    frames = p.client_events()
    assert frames[0].data == text.encode()
    assert len(p.transport.out) < len(text) // 4


def test_sends_from_many_threads_stay_whole_frames() -> None:
    p = Pair().start()

    def sender(n: int) -> None:
        for i in range(200):
            p.proto.send(f"{n}:{i}", binary=False)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = [f.data.decode() for f in p.client_events()]
    assert len(got) == 800
    for n in range(4):
        assert [g for g in got if g.startswith(f"{n}:")] == [f"{n}:{i}" for i in range(200)]


def test_after_close_the_server_state_is_closed() -> None:
    p = Pair().start()
    p.client.send_close(1000)
    p.client_send()
    p.proto.connection_lost(None)
    assert p.proto.ws.state is CLOSED
    assert not p.proto.is_open


def test_never_connected_backlog_is_bounded() -> None:
    p = Pair(max_write_buffer=100)
    p.proto.send("x" * 60, binary=False)
    with pytest.raises(WebSocketClosedError):
        p.proto.send("y" * 60, binary=False)
    assert p.handler.closed == [(None, None)]  # on_close ran: subscriptions are released
    with pytest.raises(WebSocketClosedError):
        p.proto.send("z", binary=False)
    assert p.handler.closed == [(None, None)]


def test_socket_dropped_before_connection_made_is_aborted_when_it_arrives() -> None:
    """The server may take the socket over after the backlog overflowed: that socket is
    already closed for the handler, so it must not linger open (pinging) with no on_close."""
    p = Pair(max_write_buffer=100, ping_interval=20.0)
    p.proto.send("x" * 60, binary=False)
    with pytest.raises(WebSocketClosedError):
        p.proto.send("y" * 60, binary=False)
    p.start()
    assert p.transport.aborted
    assert p.transport.timers == [] and p.transport.out == bytearray()
    p.proto.connection_lost(None)
    assert p.handler.closed == [(None, None)]  # on_close ran once only


def test_discard_drops_a_refused_socket() -> None:
    p = Pair()
    p.proto.send("queued during open()", binary=False)
    p.proto.discard()
    with pytest.raises(WebSocketClosedError):
        p.proto.send("late", binary=False)
    assert not p.proto.is_open


def test_routine_close_is_not_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="microweb.websocket")
    p = Pair().start()
    p.client.send_close(1000)
    p.client_send()
    p.proto.connection_lost(None)
    assert [r for r in caplog.records if r.levelname != "DEBUG"] == []


def test_shutdown_says_going_away() -> None:
    p = Pair().start()
    p.proto.shutdown()
    close = _close_of(p.client_events())
    assert (close.code, close.reason) == (CloseCode.GOING_AWAY, "server shutting down")


def test_stream_split_at_every_byte_boundary() -> None:
    reference = Pair(compress=True)
    reference.client.send_text(("ünïcode " * 20).encode(), fin=False)
    reference.client.send_ping(b"p")
    reference.client.send_continuation(b"tail", fin=True)
    reference.client.send_binary(b"\x00" * 300)
    stream = b"".join(reference.client.data_to_send())
    for cut in range(1, len(stream)):
        p = Pair(compress=True)
        p.client = reference.client  # only the server side is exercised here
        p.start()
        p.proto.data_received(stream[:cut])
        p.proto.data_received(stream[cut:])
        assert p.handler.messages == ["ünïcode " * 20 + "tail", b"\x00" * 300], cut
        assert p.handler.pings == [b"p"]


def test_idle_socket_holds_no_parser_between_frames() -> None:
    p = Pair().start()
    assert p.proto.ws.parser is None and p.proto.ws.reader is None  # nothing received yet
    frame = b"".join([*_client_frames(p, "one")])
    p.proto.data_received(frame[:3])  # inside a frame: the parser keeps its place
    assert p.proto.ws.parser is not None
    p.proto.data_received(frame[3:])
    assert p.handler.messages == ["one"]
    assert p.proto.ws.parser is None and p.proto.ws.reader is None
    p.client.send_text(b"frag", fin=False)  # between the frames of one message
    p.client_send()
    assert p.proto.ws.parser is None
    p.client.send_continuation(b"ment", fin=True)
    p.client_send()
    assert p.handler.messages == ["one", "fragment"]


def test_idle_socket_still_limits_a_fragmented_message() -> None:
    p = Pair(max_size=8).start()
    p.client.send_text(b"12345", fin=False)
    p.client_send()
    assert p.proto.ws.parser is None
    p.client.send_continuation(b"6789", fin=True)  # 9 bytes in all: over the limit
    p.client_send()
    assert _close_of(p.client_events()).code == CloseCode.MESSAGE_TOO_BIG
    assert p.handler.messages == []


def test_idle_socket_fails_and_loses_cleanly() -> None:
    p = Pair().start()
    p.client.send_text(b"hi")
    p.client_send()
    p.proto.fail(CloseCode.POLICY_VIOLATION, "bye")  # fail() reads again: discard()
    assert _close_of(p.client_events()).code == CloseCode.POLICY_VIOLATION
    q = Pair().start()
    q.proto.connection_lost(None)  # EOF reaches a parked parser
    assert q.handler.closed == [(None, None)]


def _client_frames(p: Pair, text: str) -> list[bytes]:
    p.client.send_text(text.encode())
    return p.client.data_to_send()
