"""Face verification (人脸核验): does the person in front of the kiosk's camera match the identity they
claim? The terminal captures a liveness-checked image and gets a token from the verification
service; the BFF asks the service whether that capture matches the name and ID number (the way
the public-security real-name services and their resellers work). The BFF never sees the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

SOURCE = "face"

# Stable rejection codes.
CAPTURE_UNKNOWN = "CAPTURE_UNKNOWN"  # no such capture token
CAPTURE_EXPIRED = "CAPTURE_EXPIRED"
CAPTURE_USED = "CAPTURE_USED"  # a capture verifies once


@dataclass(frozen=True, slots=True)
class FaceMatch:
    matched: bool
    score: float  # 0..100; the service's own threshold decides ``matched``


class FaceVerification(Protocol):
    async def verify(self, *, capture_token: str, name: str, id_no: str) -> FaceMatch: ...
