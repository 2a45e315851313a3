"""A payment link (WeChat Pay ``code_url``, Alipay ``qr_code``, a cashier page) as a QR code PNG.

Kiosks, bedside screens and printed bills show the code for a phone to scan; the PNG is made here
so every front end shows the same code. The code is capped at version 10 (57 × 57 modules) with
error correction level M: at a kiosk's or a bill's print size anything denser stops scanning
reliably on older phones, and every payment platform's link fits well within it (the cap holds 213
bytes). A longer link is refused, to be shortened upstream, rather than printed as an unreadable code.
"""

from __future__ import annotations

import io

import qrcode
from qrcode.constants import ERROR_CORRECT_M
from qrcode.exceptions import DataOverflowError
from qrcode.util import BIT_LIMIT_TABLE

ERROR_CORRECTION = ERROR_CORRECT_M  # recovers about 15% of the modules: a crease, a smudge, a glare
MAX_VERSION = 10
BORDER = 4  # the quiet zone the QR specification asks for, in modules
BOX_SIZES = range(1, 41)  # pixels per module


class PaymentLinkTooLong(ValueError):
    """The link does not fit a QR code that still scans from a kiosk screen or a printed bill."""


def payment_qr_code(url: str) -> qrcode.QRCode:
    """The laid-out code (smallest version that fits), for callers that draw it themselves."""
    if not url or url != url.strip():
        raise ValueError("a payment link is a non-empty URL without surrounding whitespace")
    code = qrcode.QRCode(error_correction=ERROR_CORRECTION, border=BORDER)
    code.add_data(url.encode())
    try:
        code.make(fit=True)
        fits = code.version <= MAX_VERSION
    except (DataOverflowError, ValueError):  # over any QR code's capacity (qrcode 8 says so with either)
        fits = False
    if not fits:
        raise PaymentLinkTooLong(
            f"the link is {len(url.encode())} bytes; a QR code of version {MAX_VERSION} at level M holds at most "
            f"{max_link_bytes()}: shorten it (a short link or the platform's own code URL)"
        )
    return code


def payment_qr_png(url: str, *, box_size: int = 8) -> bytes:
    """A black-on-white PNG of ``url``: (modules + 2 × 4) × ``box_size`` pixels square."""
    if box_size not in BOX_SIZES:
        raise ValueError(f"box_size is {BOX_SIZES.start} to {BOX_SIZES.stop - 1} pixels per module, not {box_size}")
    code = payment_qr_code(url)
    code.box_size = box_size
    out = io.BytesIO()
    code.make_image(fill_color="black", back_color="white").save(out, format="PNG")
    return out.getvalue()


def max_link_bytes() -> int:
    """How many bytes of link the cap holds (byte mode, level M, version 10)."""
    bits = BIT_LIMIT_TABLE[ERROR_CORRECTION][MAX_VERSION]
    return (bits - 4 - 16) // 8  # less the mode indicator and the 16-bit byte count of versions 10 to 26
