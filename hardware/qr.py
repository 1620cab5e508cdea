"""QR decoding as one pure function, so any image set can be measured against it.

Chosen by measurement (``python -m bench.qr_decode``, figures in docs/readme-hardware.md): zxing-cpp
finds and decodes far more codes than OpenCV's ``QRCodeDetector`` / ``QRCodeDetectorAruco`` at a
tenth of the time. When the first pass finds nothing we try again on a 3×3 median-filtered image
(sensor noise breaks the binariser on low-contrast codes), then — below 1000 px only, where modules
are few pixels wide — on a 2× cubic upscale. On the hard set these rescue about a third of the
first pass's failures and lift the moderate set from 99 % to 100 %; they cost ~4 ms on a 640×480
frame without any code (the camera driver's ``decode_every`` trades that back if a CPU is short). CLAHE, a global
histogram binariser, sharpening and adaptive thresholding were measured too and helped less.
OpenCV stays for capture and image work.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import cv2
import numpy as np
import zxingcpp

logger = logging.getLogger(__name__)

_FORMATS = zxingcpp.BarcodeFormat.QRCode
_UPSCALE_BELOW_PX = 1000


class DecodeOutcome(NamedTuple):
    texts: list[str]
    failures: int  # symbols found but not decodable (for camera health)


def _gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    raise ValueError(f"unsupported image shape {image.shape}")


def _zxing(gray: np.ndarray) -> tuple[list[str], int]:
    texts: list[str] = []
    failures = 0
    for r in zxingcpp.read_barcodes(gray, formats=_FORMATS, return_errors=True):
        if r.valid:
            if r.text not in texts:
                texts.append(r.text)
        else:
            failures += 1
    return texts, failures


def decode_zxing_plain(image: np.ndarray) -> list[str]:
    """zxing-cpp alone, no second attempt (a baseline for the bench)."""
    return _zxing(_gray(np.ascontiguousarray(image)))[0]


def decode_detailed(image: np.ndarray, *, second_attempt: bool = True) -> DecodeOutcome:
    """Texts of all QR codes in ``image`` (BGR, BGRA or grayscale uint8) plus the undecodable count."""
    if image is None or image.size == 0:
        return DecodeOutcome([], 0)
    gray = _gray(np.ascontiguousarray(image))
    if gray.dtype != np.uint8:
        gray = cv2.normalize(gray, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    texts, failures = _zxing(gray)
    if texts or not second_attempt:
        return DecodeOutcome(texts, failures)
    attempts = [lambda: cv2.medianBlur(gray, 3)]
    if max(gray.shape) < _UPSCALE_BELOW_PX:
        attempts.append(lambda: cv2.resize(gray, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC))
    for make in attempts:
        texts, more = _zxing(make())
        if texts:
            return DecodeOutcome(texts, 0)
        failures = max(failures, more)
    return DecodeOutcome([], failures)


def decode(image: np.ndarray) -> list[str]:
    """Decoded texts of the QR codes in an OpenCV image, in reading order, without duplicates."""
    return decode_detailed(image).texts
