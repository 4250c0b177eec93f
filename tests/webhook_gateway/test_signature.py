import hashlib
import hmac

import pytest

from services.webhook_gateway.signature import MISMATCH, MISSING, SignatureVerifier, sign
from tests.conftest import EXAMPLES, WEBHOOK_SECRET

# turn-api.md §7: computed by someone else over the exact file bytes.
DOCUMENTED = {
    "webhook_inbound_text.json": "obkUNx3na0VyEdsbjrVkm78zYDmePrasRxJRbwPx78E=",
    "webhook_status_delivered.json": "oB2RwEPMKsc3iFpIyTScSQYhTt0wt2wEud4/aDCdhik=",
    "webhook_status_failed.json": "EWl4XCEjhswEUD1GUqr5Qenr6UumbuxZoq3BedtZ9XQ=",
    "webhook_outbound_turn_subscription.json": "YQeny1teA9NvCKZE5pE4i4VsyVKTYqTXvh6nlIc40Xs=",
}
BODY = b'{"messages": []}'


def test_every_webhook_example_has_a_documented_signature():
    assert {p.name for p in EXAMPLES.glob("webhook_*.json")} == set(DOCUMENTED)


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_documented_signatures_of_the_examples_verify(name):
    body = (EXAMPLES / name).read_bytes()
    verifier = SignatureVerifier([WEBHOOK_SECRET])
    assert sign(body, WEBHOOK_SECRET) == DOCUMENTED[name]
    assert verifier.failure(body, DOCUMENTED[name].encode()) is None


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_one_changed_byte_breaks_the_signature(name):
    body = bytearray((EXAMPLES / name).read_bytes())
    body[-1] ^= 0x01  # even the trailing newline is signed
    assert SignatureVerifier([WEBHOOK_SECRET]).failure(bytes(body), DOCUMENTED[name].encode()) == (
        MISMATCH
    )


def test_good_signature_verifies_and_the_same_verifier_is_reusable():
    verifier = SignatureVerifier(["s3cret-one"])
    for body in (BODY, b"", b"not json at all", BODY):
        assert verifier.failure(body, sign(body, "s3cret-one").encode()) is None


def test_wrong_secret_is_a_mismatch():
    verifier = SignatureVerifier(["s3cret-one"])
    assert verifier.failure(BODY, sign(BODY, "another-secret").encode()) == MISMATCH


@pytest.mark.parametrize("header", [None, b""])
def test_missing_signature(header):
    assert SignatureVerifier(["s3cret-one"]).failure(BODY, header) == MISSING


@pytest.mark.parametrize(
    "header",
    [b"garbage", b"sha256=" + sign(BODY, "s3cret-one").encode(), "\u00e9".encode("latin-1")],
)
def test_malformed_signature_is_a_mismatch(header):
    assert SignatureVerifier(["s3cret-one"]).failure(BODY, header) == MISMATCH


def test_hex_digest_is_not_accepted():
    hexed = hmac.new(b"s3cret-one", BODY, hashlib.sha256).hexdigest().encode()
    assert SignatureVerifier(["s3cret-one"]).failure(BODY, hexed) == MISMATCH


def test_second_secret_verifies_during_a_rotation():
    verifier = SignatureVerifier(["old-secret", "new-secret"])
    assert verifier.failure(BODY, sign(BODY, "new-secret").encode()) is None
    assert verifier.failure(BODY, sign(BODY, "old-secret").encode()) is None
    assert verifier.failure(BODY, sign(BODY, "retired-secret").encode()) == MISMATCH


def test_surrounding_whitespace_in_the_header_is_tolerated():
    header = b"  " + sign(BODY, "s3cret-one").encode() + b" "
    assert SignatureVerifier(["s3cret-one"]).failure(BODY, header) is None


def test_no_secret_is_a_programming_error():
    with pytest.raises(ValueError):
        SignatureVerifier([])
