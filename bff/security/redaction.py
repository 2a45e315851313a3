"""What third-party libraries would log of a request's secrets, taken out before it is formatted.

The BFF's own log calls never carry tokens, passwords or keys. The one library that would is
websockets: at DEBUG it logs every frame with (the start and end of) its payload, and a
graphql-transport-ws ``connection_init`` payload holds the bearer token. Uvicorn hands its
"uvicorn.error" logger to websockets, so a server run with ``--log-level debug`` would write tokens
to disk. The filter keeps each frame's opcode and length, which is what debugging a connection needs.
"""

from __future__ import annotations

import logging

from websockets.frames import Frame

# uvicorn's websockets-sansio protocol logs through "uvicorn.error"; the legacy one through "websockets.*".
FRAME_LOGGERS = ("uvicorn.error", "websockets.server", "websockets.protocol")


class FramePayloads(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, Frame) for a in args):
            record.args = tuple(
                f"{a.opcode.name} frame [{len(a.data)} bytes]" if isinstance(a, Frame) else a for a in args
            )
        return True


def keep_frame_payloads_out_of_logs() -> None:
    """Idempotent: every app built in the process calls it."""
    for name in FRAME_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, FramePayloads) for f in logger.filters):
            logger.addFilter(FramePayloads())
