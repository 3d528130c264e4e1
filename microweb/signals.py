"""blinker signals microweb sends; connect receivers to observe requests, sessions and sockets.

Senders check ``signal.receivers`` before building arguments, so an unobserved signal costs one
attribute test per request.
"""

from __future__ import annotations

from blinker import Namespace

from middleware.signals import session_created, session_destroyed

_signals = Namespace()

#: sent with ``sender=handler`` before ``prepare()`` runs.
request_started = _signals.signal("request-started")
#: sent with ``sender=handler`` after the response is finished (status in ``handler.get_status()``).
request_finished = _signals.signal("request-finished")
#: sent with ``sender=handler, exception=exc`` when a handler raises an uncaught exception.
got_request_exception = _signals.signal("got-request-exception")
#: sent with ``sender=handler, template=name, context=dict`` after a template is rendered.
template_rendered = _signals.signal("template-rendered")
#: sent with ``sender=websocket_handler`` after ``open()`` returns.
websocket_opened = _signals.signal("websocket-opened")
#: sent with ``sender=websocket_handler`` after ``on_close()`` returns.
websocket_closed = _signals.signal("websocket-closed")

__all__ = [
    "got_request_exception",
    "request_finished",
    "request_started",
    "session_created",
    "session_destroyed",
    "template_rendered",
    "websocket_closed",
    "websocket_opened",
]
