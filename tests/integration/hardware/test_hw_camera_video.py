"""Camera QR driver reading video files written by OpenCV, with degraded QR frames."""

import queue
import time

import cv2
import numpy as np
import pytest

from bench.qr_decode import qr_matrix
from hardware.registry import create_reader
from hardware.schema import profile_from_mapping

W, H = 640, 480


def frame_with(text, rng, *, blur=0.0, tilt=0.0, glare=0.0, contrast=1.0):
    canvas = np.full((H, W), 170, np.float32)
    code = cv2.resize(qr_matrix(text), (220, 220), interpolation=cv2.INTER_NEAREST).astype(np.float32)
    src = np.float32([[0, 0], [220, 0], [220, 220], [0, 220]])
    d = tilt * 220
    dst = np.float32([[200 + d, 120], [420 - d, 130], [430, 350], [190, 340]])
    m = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(code, m, (W, H), borderValue=-1)
    mask = cv2.warpPerspective(np.ones_like(code), m, (W, H))
    img = canvas * (1 - mask) + (128 + (warped - 128) * contrast) * mask
    if glare:
        gy, gx = np.mgrid[0:H, 0:W]
        img += glare * np.exp(-((gx - 360) ** 2 + (gy - 180) ** 2) / (2 * 45.0**2))
    if blur:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    img += rng.normal(0, 3, img.shape)
    return cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


@pytest.fixture
def video(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "kiosk.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, (W, H))
    assert writer.isOpened()
    blank = np.full((H, W, 3), 170, np.uint8)
    scenes = [
        ("BD1.blurred", dict(blur=1.2)),
        ("BD1.tilted", dict(tilt=0.15)),
        ("BD1.glare", dict(glare=120.0)),
        ("BD1.lowcontrast", dict(contrast=0.3)),
    ]
    for text, kw in scenes:
        for _ in range(6):  # the same code held for several frames
            writer.write(frame_with(text, rng, **kw))
        for _ in range(3):
            writer.write(blank)
    writer.release()
    return path, [t for t, _ in scenes]


def test_each_degraded_code_delivered_once(video):
    path, texts = video
    reads = queue.Queue()
    profile = profile_from_mapping("cam", {"driver": "camera_qr", "options": {"source": str(path)}})
    reader = create_reader(profile, reads.put)
    reader.start()
    try:
        end = time.monotonic() + 30
        while reader.health().extra.get("end_of_file") != 1 and time.monotonic() < end:
            time.sleep(0.02)
        h = reader.health()
        got = []
        while not reads.empty():
            got.append(reads.get_nowait().value)
    finally:
        reader.stop()
    assert h.extra["end_of_file"] == 1
    assert got == texts  # in order, each once despite six frames per code
    assert h.extra["frames"] == 36
    assert h.extra["frames_without_code"] >= 12
    assert h.extra["fps"] > 0
    assert h.extra.get("decode_failures", 0) <= h.bad_frames


def test_missing_source_stays_connecting(tmp_path):
    profile = profile_from_mapping(
        "cam", {"driver": "camera_qr", "options": {"source": str(tmp_path / "none.avi")}}
    )
    reader = create_reader(profile, lambda r: None)
    reader.start()
    try:
        end = time.monotonic() + 10
        while reader.health().last_error is None and time.monotonic() < end:
            time.sleep(0.02)
        assert "cannot open camera source" in reader.health().last_error
        assert reader.health().state.value == "connecting"
    finally:
        reader.stop()
