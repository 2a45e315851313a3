"""Payment QR codes: the PNG a kiosk shows carries, module for module, the code of the link.

No QR decoder is installed (those worth trusting need zbar or OpenCV); instead the PNG's pixels at
every module's centre are compared with the matrix qrcode lays out for the same link and settings.
"""

from __future__ import annotations

import io
import struct

import pytest
import qrcode
from PIL import Image

from resolvers.payment_link import (
    BORDER,
    ERROR_CORRECTION,
    MAX_VERSION,
    PaymentLinkTooLong,
    max_link_bytes,
    payment_qr_code,
    payment_qr_png,
)

WECHAT = "weixin://wxpay/bizpayurl?pr=8Kx3Zq2aa"
ALIPAY = "https://qr.alipay.com/bax03431ljhokirwl38f00a7"
CASHIER = "https://pay.example-hospital.cn/cashier?order=MZ202611300001234&amount=312.50&sign=Zm9vYmFy"


def _matrix(url: str) -> list[list[bool]]:
    """The reference: qrcode's own layout of ``url``, quiet zone included."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECTION, border=BORDER)
    code.add_data(url.encode())
    code.make(fit=True)
    return code.get_matrix()


@pytest.mark.parametrize("url", [WECHAT, ALIPAY, CASHIER], ids=["wechat", "alipay", "cashier"])
def test_the_png_shows_every_module_of_the_links_code(url: str) -> None:
    png = payment_qr_png(url)
    matrix = _matrix(url)
    image = Image.open(io.BytesIO(png)).convert("L")
    assert image.size == (len(matrix) * 8, len(matrix) * 8)
    for row, modules in enumerate(matrix):
        for column, dark in enumerate(modules):
            pixel = image.getpixel((column * 8 + 4, row * 8 + 4))
            assert pixel == (0 if dark else 255), (row, column)


def test_the_png_is_a_png_of_the_announced_size() -> None:
    png = payment_qr_png(ALIPAY, box_size=3)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    modules = payment_qr_code(ALIPAY).modules_count
    assert width == height == (modules + 2 * BORDER) * 3


def test_a_longer_link_takes_a_larger_version_up_to_the_cap() -> None:
    assert payment_qr_code(WECHAT).version < payment_qr_code(CASHIER).version <= MAX_VERSION
    at_cap = "https://pay.example-hospital.cn/c?t=" + "x" * (max_link_bytes() - 36)
    assert len(at_cap) == max_link_bytes()
    assert payment_qr_code(at_cap).version == MAX_VERSION


@pytest.mark.parametrize("extra", [1, 5000], ids=["one-byte-over", "far-over"])
def test_a_link_too_long_to_scan_reliably_is_refused(extra: int) -> None:
    url = "https://pay.example-hospital.cn/c?t=" + "x" * (max_link_bytes() - 36 + extra)
    with pytest.raises(PaymentLinkTooLong, match=f"holds at most {max_link_bytes()}"):
        payment_qr_png(url)


@pytest.mark.parametrize("url", ["", " https://qr.alipay.com/bax0 "], ids=["empty", "padded"])
def test_an_empty_or_padded_link_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="non-empty URL"):
        payment_qr_png(url)


@pytest.mark.parametrize("box_size", [0, 41])
def test_a_box_size_outside_one_to_forty_pixels_is_refused(box_size: int) -> None:
    with pytest.raises(ValueError, match="box_size"):
        payment_qr_png(WECHAT, box_size=box_size)
