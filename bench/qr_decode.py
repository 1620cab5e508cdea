"""QR decoding: ms per frame and success rate for the chosen decoder and the alternatives.

Run ``python -m bench.qr_decode`` from the repository root. Images are generated (seeded) at 640×480
and 1280×720 in two sets: "moderate" (rotation, mild perspective, light blur/noise, fair contrast) and
"hard" (strong tilt, blur, sensor noise, low contrast, lamp glare). Everything runs on one thread so
the figure is per core. Progress goes to stderr; the last stdout line is the JSON summary.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable

import cv2
import numpy as np
import qrcode
import zxingcpp

from hardware import qr

logger = logging.getLogger(__name__)

RESOLUTIONS = ((640, 480), (1280, 720))
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def qr_matrix(text: str, border: int = 4) -> np.ndarray:
    """The code as a uint8 image, one pixel per module (0 black, 255 white)."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=border)
    code.add_data(text)
    code.make(fit=True)
    return np.where(np.array(code.get_matrix(), dtype=bool), 0, 255).astype(np.uint8)


def random_text(rng: np.random.Generator) -> str:
    n = int(rng.integers(24, 72))
    return "BD1." + "".join(ALPHABET[i] for i in rng.integers(0, len(ALPHABET), n))


def make_image(text: str, size: tuple[int, int], difficulty: str, rng: np.random.Generator) -> np.ndarray:
    """One BGR frame with the code degraded as a camera at a kiosk would see it."""
    w, h = size
    hard = difficulty == "hard"
    mat = qr_matrix(text)
    frac = rng.uniform(0.3, 0.45) if hard else rng.uniform(0.3, 0.55)
    side = int(min(w, h) * frac)
    code = cv2.resize(mat, (side, side), interpolation=cv2.INTER_NEAREST)

    # background: smooth gradient plus some clutter
    bg_level = rng.uniform(90, 200)
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    bg = bg_level + 40 * np.sin(gx / rng.uniform(80, 300)) * np.cos(gy / rng.uniform(80, 300))
    canvas = bg.astype(np.float32)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        cv2.rectangle(
            canvas,
            (x0, y0),
            (x0 + int(rng.integers(20, 160)), y0 + int(rng.integers(10, 80))),
            float(rng.uniform(0, 255)),
            -1,
        )

    # rotation + perspective of the code's corners
    cx, cy = rng.uniform(side * 0.75, w - side * 0.75), rng.uniform(side * 0.75, h - side * 0.75)
    angle = rng.uniform(0, 2 * np.pi)
    half = side / 2
    corners = np.array([[-half, -half], [half, -half], [half, half], [-half, half]], dtype=np.float32)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], dtype=np.float32)
    jitter = (0.22 if hard else 0.08) * side
    dst = corners @ rot.T + np.array([cx, cy], dtype=np.float32)
    dst += rng.uniform(-jitter, jitter, dst.shape).astype(np.float32)
    src = np.array([[0, 0], [side, 0], [side, side], [0, side]], dtype=np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(code.astype(np.float32), m, (w, h), flags=cv2.INTER_LINEAR, borderValue=-1)
    mask = cv2.warpPerspective(np.ones_like(code, dtype=np.float32), m, (w, h), flags=cv2.INTER_LINEAR)

    # contrast: map black/white of the code to a narrower range
    contrast = rng.uniform(0.3, 0.6) if hard else rng.uniform(0.55, 1.0)
    mid = rng.uniform(100, 160)
    code_vals = mid + (warped - 127.5) * contrast
    img = canvas * (1 - mask) + code_vals * mask

    if hard and rng.random() < 0.6:  # lamp glare on a glossy badge or phone screen
        gx0, gy0 = cx + rng.uniform(-half, half), cy + rng.uniform(-half, half)
        r = rng.uniform(0.2, 0.5) * side
        img += rng.uniform(80, 170) * np.exp(-((gx - gx0) ** 2 + (gy - gy0) ** 2) / (2 * r * r))

    sigma = rng.uniform(0.8, 1.6) if hard else rng.uniform(0.0, 1.0)
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    noise = rng.uniform(4, 12) if hard else rng.uniform(0, 6)
    img = img + rng.normal(0, noise, img.shape).astype(np.float32)
    gray = np.clip(img, 0, 255).astype(np.uint8)
    tint = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    return tint


def _opencv(detector: object) -> Callable[[np.ndarray], list[str]]:
    def run(image: np.ndarray) -> list[str]:
        try:
            ok, texts, _pts, _ = detector.detectAndDecodeMulti(image)  # type: ignore[attr-defined]
        except cv2.error:
            return []
        return [t for t in texts if t] if ok else []

    return run


def _zxing_with(binarizer: zxingcpp.Binarizer) -> Callable[[np.ndarray], list[str]]:
    def run(image: np.ndarray) -> list[str]:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        texts = [r.text for r in zxingcpp.read_barcodes(gray, formats=zxingcpp.BarcodeFormat.QRCode)]
        if texts:
            return texts
        return [
            r.text
            for r in zxingcpp.read_barcodes(gray, formats=zxingcpp.BarcodeFormat.QRCode, binarizer=binarizer)
        ]

    return run


def decoders() -> dict[str, Callable[[np.ndarray], list[str]]]:
    return {
        "chosen_zxing_retry": qr.decode,
        "zxing_plain": qr.decode_zxing_plain,
        "zxing_then_globalhist": _zxing_with(zxingcpp.Binarizer.GlobalHistogram),
        "opencv_qrcodedetector": _opencv(cv2.QRCodeDetector()),
        "opencv_qrcodedetector_aruco": _opencv(cv2.QRCodeDetectorAruco()),
    }


def run(n: int, seed: int) -> dict[str, object]:
    cv2.setNumThreads(1)
    results: dict[str, object] = {"images_per_set": n, "seed": seed}
    for difficulty in ("moderate", "hard"):
        for w, h in RESOLUTIONS:
            rng = np.random.default_rng([seed, w, 1 if difficulty == "hard" else 0])
            images = []
            for _ in range(n):
                text = random_text(rng)
                images.append((text, make_image(text, (w, h), difficulty, rng)))
            for name, fn in decoders().items():
                times, ok = [], 0
                for text, img in images:
                    t0 = time.perf_counter()
                    got = fn(img)
                    times.append((time.perf_counter() - t0) * 1000)
                    ok += text in got
                key = f"{difficulty}_{w}x{h}_{name}"
                results[f"{key}_success_pct"] = round(100.0 * ok / n, 2)
                results[f"{key}_median_ms"] = round(statistics.median(times), 2)
                results[f"{key}_p95_ms"] = round(sorted(times)[int(0.95 * (n - 1))], 2)
                print(
                    f"{key}: {100.0 * ok / n:.1f}% median {statistics.median(times):.2f} ms",
                    file=sys.stderr,
                    flush=True,
                )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=120, help="images per set and resolution")
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args()
    print(json.dumps(run(args.n, args.seed)))


if __name__ == "__main__":
    main()
