"""QR token verifications per second on one core, next to raw Ed25519 verify calls per second.

Run: ``python -m bench.qr_verify``. Progress on stderr; the last stdout line is JSON. The baseline is the
cost floor of the same check (one Ed25519 verify over the same message), so the ratio shows what token
parsing and window checks add. Target: >= 5,000 verifications/s.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import statistics
import sys
import time

from protocol.qrtoken import (
    PREFIX,
    SIGNATURE_BYTES,
    SIGNING_DOMAIN,
    generate_signing_key,
    mint_badge_token,
    mint_phone_token,
    step_at,
    verify_token,
)

logger = logging.getLogger("bench.qr_verify")

ROUNDS = 5
SECONDS_PER_ROUND = 2.0
TOKENS = 256


def _rate(fn, seconds: float) -> float:
    """Calls per second of ``fn`` (which does 256 calls per invocation) over about ``seconds``."""
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        fn()
        n += TOKENS
    return n / (time.perf_counter() - start)


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says
    key = generate_signing_key()
    keys = {"k1": key.public_key()}
    now = time.time()
    step = step_at(now)
    tokens = [mint_phone_token(key, "k1", 100_000 + i, step) for i in range(TOKENS // 2)]
    tokens += [mint_badge_token(key, "k1", 200_000 + i, f"B{i:07d}") for i in range(TOKENS // 2)]
    revoked = {f"R{i:07d}" for i in range(10_000)}
    raw = []
    for t in tokens:  # decoded independently of protocol.qrtoken, so the baseline is only the crypto
        data = base64.b32decode(t[len(PREFIX) :] + "=" * (-len(t[len(PREFIX) :]) % 8))
        raw.append((data[:-SIGNATURE_BYTES], data[-SIGNATURE_BYTES:]))
    public = keys["k1"]

    def verify_all() -> None:
        for t in tokens:
            verify_token(t, keys, now, revoked)

    def raw_all() -> None:
        for body, signature in raw:
            public.verify(signature, SIGNING_DOMAIN + body)

    token_rates, raw_rates = [], []
    for i in range(ROUNDS):  # interleaved, so noise from other users hits both alike
        token_rates.append(_rate(verify_all, SECONDS_PER_ROUND))
        raw_rates.append(_rate(raw_all, SECONDS_PER_ROUND))
        logger.info("round %d: tokens %.0f/s, raw ed25519 %.0f/s", i + 1, token_rates[-1], raw_rates[-1])
    token_median, raw_median = statistics.median(token_rates), statistics.median(raw_rates)
    result = {
        "verifications_per_s": round(token_median),
        "raw_ed25519_verify_per_s": round(raw_median),
        "ratio_to_raw": round(token_median / raw_median, 3),
        "us_per_verification": round(1e6 / token_median, 1),
        "target_verifications_per_s": 5000,
        "meets_target": token_median >= 5000,
        "rounds": ROUNDS,
        "phone_token_chars": len(tokens[0]),
        "badge_token_chars": len(tokens[-1]),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
