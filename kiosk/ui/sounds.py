"""The kiosk's confirmation sounds, synthesised with the standard library's :mod:`wave` module.

Why synthesised instead of shipped: three short tones are a few lines of arithmetic, so the repository
holds no binary blobs and no third-party audio, and the pitch/length can be tuned in code review.
Each sound is distinct enough to tell apart without looking: a rising two-note chime for success, a
single mid tone for "already checked in", a low double buzz for "see staff".
"""

from __future__ import annotations

import io
import logging
import math
import struct
import wave
from functools import cache

logger = logging.getLogger(__name__)

SAMPLE_RATE = 22_050
AMPLITUDE = 0.45

# name -> list of (frequency_hz, duration_s); frequency 0 is silence
SOUNDS: dict[str, tuple[tuple[float, float], ...]] = {
    "ok": ((880.0, 0.09), (0.0, 0.02), (1320.0, 0.14)),
    "warn": ((660.0, 0.22),),
    "error": ((220.0, 0.16), (0.0, 0.06), (220.0, 0.16)),
}


def _tone(freq: float, seconds: float) -> list[int]:
    n = int(SAMPLE_RATE * seconds)
    fade = max(1, int(SAMPLE_RATE * 0.01))  # 10 ms ramps: no clicks at start and end
    samples = []
    for i in range(n):
        envelope = min(1.0, i / fade, (n - 1 - i) / fade)
        value = math.sin(2 * math.pi * freq * i / SAMPLE_RATE) if freq else 0.0
        samples.append(int(32767 * AMPLITUDE * envelope * value))
    return samples


@cache
def wav_bytes(name: str) -> bytes:
    """A mono 16-bit PCM WAV file for ``name`` (``ok``, ``warn`` or ``error``); KeyError for others."""
    samples: list[int] = []
    for freq, seconds in SOUNDS[name]:
        samples += _tone(freq, seconds)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return buf.getvalue()
