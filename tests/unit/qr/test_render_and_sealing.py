"""Server-side pieces that need no database: the SVG renderer and private-key sealing."""

from __future__ import annotations

import numpy as np
import pytest
from cryptography.exceptions import InvalidTag

from hardware import qr as decoder
from protocol.qrtoken import generate_signing_key, mint_phone_token, public_key_b64
from server.models import QrSigningKey, utcnow
from server.qr import keys
from server.qr.render import QUIET_ZONE, qr_matrix, qr_svg


def test_rendered_matrix_decodes_back_to_the_token():
    token = mint_phone_token(generate_signing_key(), "K1", 7, 60_000_000)
    matrix = np.array(qr_matrix(token), dtype=bool)
    assert (len(matrix) - 2 * QUIET_ZONE - 17) // 4 <= 10  # version <= 10, as the issue requires
    image = np.where(matrix, 0, 255).astype(np.uint8).repeat(8, axis=0).repeat(8, axis=1)
    assert decoder.decode(image) == [token]


def test_svg_is_one_compact_path_with_a_white_background():
    svg = qr_svg(mint_phone_token(generate_signing_key(), "K1", 7, 60_000_000))
    assert svg.startswith("<svg") and svg.count("<path") == 1 and 'fill="#fff"' in svg
    assert len(svg) < 9000


def _row(seal: bytes):  # type: ignore[no-untyped-def]
    private = generate_signing_key()
    return private, QrSigningKey(
        key_id="KTEST",
        public_key=public_key_b64(private),
        private_key_enc=keys._seal(seal, "KTEST", private),
        not_before=utcnow(),
    )


def test_private_key_round_trips_only_under_the_right_secret_and_key_id():
    seal = keys.sealing_key({"SECRET_KEY": "s" * 32})
    private, row = _row(seal)
    assert public_key_b64(keys.unseal(seal, row)) == public_key_b64(private)
    assert b"KTEST" not in row.private_key_enc
    with pytest.raises(InvalidTag):
        keys.unseal(keys.sealing_key({"SECRET_KEY": "t" * 32}), row)
    row.key_id = "KOTHER"  # a ciphertext moved under another key id
    with pytest.raises(InvalidTag):
        keys.unseal(seal, row)


def test_a_dedicated_qr_secret_wins_over_the_session_secret():
    a = keys.sealing_key({"SECRET_KEY": "s" * 32})
    b = keys.sealing_key({"SECRET_KEY": "s" * 32, "QR_KEY_SECRET": "q" * 32})
    assert a != b and len(a) == len(b) == 32
    with pytest.raises(ValueError):
        keys.sealing_key({"SECRET_KEY": "short"})
