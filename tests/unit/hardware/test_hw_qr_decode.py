"""hardware.qr.decode on generated images (the same generator as bench.qr_decode)."""

import cv2
import numpy as np

from bench.qr_decode import make_image, qr_matrix, random_text
from hardware import qr


def test_clean_code_decodes_in_any_colour_layout():
    img = cv2.resize(qr_matrix("BD1.hello"), (300, 300), interpolation=cv2.INTER_NEAREST)
    assert qr.decode(img) == ["BD1.hello"]
    assert qr.decode(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)) == ["BD1.hello"]
    assert qr.decode(cv2.cvtColor(img, cv2.COLOR_GRAY2BGRA)) == ["BD1.hello"]


def test_moderate_set_all_decoded():
    rng = np.random.default_rng(5)
    for _ in range(15):
        text = random_text(rng)
        assert qr.decode(make_image(text, (640, 480), "moderate", rng)) == [text]


def test_two_codes_and_no_code():
    a = cv2.resize(qr_matrix("BD1.a"), (200, 200), interpolation=cv2.INTER_NEAREST)
    b = cv2.resize(qr_matrix("BD1.b"), (200, 200), interpolation=cv2.INTER_NEAREST)
    assert sorted(qr.decode(np.hstack([a, np.full((200, 40), 255, np.uint8), b]))) == ["BD1.a", "BD1.b"]
    assert qr.decode(np.full((480, 640, 3), 128, np.uint8)) == []


def test_retry_rescues_some_hard_frames_plain_misses():
    rng = np.random.default_rng(11)
    rescued = 0
    for _ in range(40):
        text = random_text(rng)
        img = make_image(text, (640, 480), "hard", rng)
        if text not in qr.decode_zxing_plain(img) and text in qr.decode(img):
            rescued += 1
    assert rescued >= 1
