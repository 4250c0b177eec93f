"""Turn's webhook signature: base64(HMAC-SHA256(secret, raw body)) in X-Turn-Hook-Signature.

Pure: no I/O. The keyed HMAC state of each secret is built once; a request only copies it and
feeds the body, so the per-request cost is the hash of the body itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

# Why a request was refused; also the label values of the signature-failure metric.
MISSING = "missing"
MISMATCH = "mismatch"
REASONS = (MISSING, MISMATCH)


def sign(body: bytes, secret: str) -> str:
    """The header value Turn sends for `body` (used by tests, the demo and the benchmark)."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


class SignatureVerifier:
    """Checks a body against every configured secret, in constant time per secret."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._keys = tuple(
            hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256) for secret in secrets
        )
        if not self._keys:
            raise ValueError("at least one webhook secret is needed")

    def failure(self, body: bytes, header: bytes | None) -> str | None:
        """None when `header` is a valid signature of `body` under some secret, else why not.

        `header` is the raw header value as bytes (as ASGI gives it), so nothing is decoded
        before we know it matters. Every secret is tried even after a match would be found,
        so timing does not reveal which secret (or whether the first) matched.
        """
        if not header:
            return MISSING
        given = header.strip()
        matched = False
        for key in self._keys:
            mac = key.copy()
            mac.update(body)
            matched |= hmac.compare_digest(base64.b64encode(mac.digest()), given)
        return None if matched else MISMATCH
