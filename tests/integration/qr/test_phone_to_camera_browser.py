"""End to end: the phone page in headless Chromium → screenshot → video file → camera driver → kiosk.

Two paths. The first ends at ``kiosk.qr.QrVerifier``: camera frames decoded by the real camera driver
(OpenCV capture + zxing) and verified offline with the public keys from the roster material; the same
screenshot is refused at the same kiosk as used and at another kiosk after the ±1-step window as expired.
The second is the real kiosk: an enrolled :class:`kiosk.service.KioskService` whose camera reader is
configured (profile ``usb-camera``) with the video file as its source, roster and public keys from one
heartbeat to the live server — the member is checked in with the masked name, and the replayed
screenshot is recorded as ``rejected`` (``qr_replayed``) for staff.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from werkzeug.serving import make_server

from hardware.camera import CameraQrReader
from kiosk.client import KioskClient
from kiosk.config import config_from_mapping
from kiosk.enrol import enrol
from kiosk.heartbeat import HeartbeatAgent
from kiosk.outcomes import OutcomeKind
from kiosk.qr import QrVerifier
from kiosk.service import KioskService
from protocol.masking import mask_name
from protocol.qrtoken import STEP_SECONDS
from server.api.enrolment import create_enrol_token
from server.passwords import hash_password
from server.qr.roster import qr_roster_material
from tests.conftest import require_service
from tests.factories import make_card, make_centre, make_community, make_member

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PIN = "135790"


@pytest.fixture
def live_server(app):  # type: ignore[no-untyped-def]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


def screenshot_phone_page(base_url: str, member_no: str, out: Path) -> tuple[np.ndarray, int]:
    """Log in on a mobile viewport and screenshot the code page; returns (BGR image, shown step).

    Runs Playwright in a thread of its own: its sync API refuses to start where an event loop already
    runs, which is the case when a session-scoped browser of another test package (tests/e2e) is up."""
    result: list[tuple[np.ndarray, int]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            result.append(_screenshot_phone_page(base_url, member_no, out))
        except BaseException as exc:  # re-raised in the test's thread (skips and failures alike)
            errors.append(exc)

    thread = threading.Thread(target=work, name="playwright-phone")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def _screenshot_phone_page(base_url: str, member_no: str, out: Path) -> tuple[np.ndarray, int]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require_service("playwright", "python package missing")
    if not Path(CHROMIUM).exists():
        require_service("chromium", f"{CHROMIUM} missing")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            context = browser.new_context(
                viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True
            )
            page = context.new_page()
            page.goto(f"{base_url}/m/")
            assert "党员编号" in page.content()
            page.fill("#member_no", member_no)
            page.fill("#pin", PIN)
            page.click("button[type=submit]")
            page.wait_for_selector("#code svg")
            step = int(page.get_attribute("#code", "data-step") or "0")
            png = page.screenshot(path=str(out))
        finally:
            browser.close()
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    return image, step


def write_video(image: np.ndarray, path: Path, frames: int = 12) -> None:
    """The screenshot as a phone held to a camera: scaled into a 640x480 grey frame, MJPG-compressed."""
    frame = np.full((480, 640, 3), 90, np.uint8)
    scale = 460 / image.shape[0]
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    x = (640 - small.shape[1]) // 2
    frame[10 : 10 + small.shape[0], x : x + small.shape[1]] = small
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 480))
    assert writer.isOpened()
    for _ in range(frames):
        writer.write(frame)
    writer.release()


def camera_reads(video: Path) -> list[str]:
    reads: list[str] = []
    done = threading.Event()

    def on_read(read) -> None:  # type: ignore[no-untyped-def]
        reads.append(read.value)
        done.set()

    reader = CameraQrReader("camera", on_read, str(video))
    reader.start()
    done.wait(30)
    reader.stop()
    return reads


@pytest.mark.browser
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_phone_screenshot_checks_in_once_and_fails_after_the_window(
    app, db_session, live_server, tmp_path, test_output
):  # type: ignore[no-untyped-def]
    member = make_member(db_session, pin_hash=hash_password(PIN))
    db_session.commit()

    image, shown_step = screenshot_phone_page(
        live_server, member.member_no, test_output / "qr-phone-page.png"
    )
    video = tmp_path / "phone.avi"
    write_video(image, video)

    keys, revoked = qr_roster_material(db_session)
    assert keys, "the page created the first signing key"
    now = [time.time()]
    kiosk = QrVerifier.in_state_dir(tmp_path / "kiosk-a", clock=lambda: now[0])
    kiosk.apply_qr_material(keys, revoked)

    [text] = camera_reads(video)
    check = kiosk.verify_scanned(text)
    assert check.accepted, check.code
    assert check.member_id == member.id and check.qr_step == shown_step and check.trust == "high"

    # The same screenshot again at this kiosk, within the window: refused as already used.
    assert kiosk.verify_scanned(camera_reads(video)[0]).code == "qr_replayed"

    # The same screenshot at another kiosk after the window (two steps later): refused as expired.
    now[0] = (shown_step + 2) * STEP_SECONDS + 1
    kiosk_b = QrVerifier.in_state_dir(tmp_path / "kiosk-b", clock=lambda: now[0])
    kiosk_b.apply_qr_material(keys, revoked)
    late = kiosk_b.verify_scanned(camera_reads(video)[0])
    assert late.code == "qr_expired" and late.member_id == member.id
    assert "过期" in late.message_zh and "expired" in late.message_en
    kiosk.close()
    kiosk_b.close()


@pytest.mark.browser
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_phone_screenshot_through_the_kiosk_service_checks_in_once(
    app, db_session, live_server, tmp_path, test_output
):  # type: ignore[no-untyped-def]
    community = make_community(db_session)
    centre = make_centre(db_session, community, closes_at=None)
    member = make_member(db_session, community=community, pin_hash=hash_password(PIN))
    make_card(db_session, member)  # the roster carries members through their credentials
    token, _ = create_enrol_token(db_session, centre.code, ttl=timedelta(hours=1))
    db_session.commit()

    image, shown_step = screenshot_phone_page(
        live_server, member.member_no, test_output / "qr-phone-page-kiosk.png"
    )
    video = tmp_path / "phone.avi"
    write_video(image, video)

    state = tmp_path / "kiosk"
    enrolment = enrol(live_server, token, state, device_name="camera kiosk")
    config = config_from_mapping(
        {"state_dir": str(state), "readers": [{"profile": "usb-camera", "port": str(video)}]}
    )
    service = KioskService(config, start_sync=False)
    client = KioskClient(live_server, enrolment.kiosk_id, bytes.fromhex(enrolment.kiosk_secret))
    try:
        # One heartbeat brings the roster (member id → masked name) and the QR public keys.
        HeartbeatAgent(service, client, state).beat()
        assert service.roster.member(member.id) is not None
        assert service.qr.key_ids() == sorted(qr_roster_material(db_session)[0])

        service.start()  # the camera plays the video once: one read
        first = service.wait_outcome(0, 30, "camera")
        assert first is not None, f"no read from the camera: {service.health()['readers']}"
        assert (first.kind, first.colour, first.credential_kind) == (OutcomeKind.IN, "green", "qr")
        assert first.masked_name == mask_name(member.name) and first.member_id == member.id

        service.readers.restart()  # the same screenshot shown to the camera again
        again = service.wait_outcome(first.n, 30, "camera")
        assert again is not None
        assert (again.kind, again.detail, again.recorded) == (OutcomeKind.QR_REFUSED, "qr_replayed", True)
        assert "已使用" in again.message_zh

        rows = service.outbox.all_taps()
        assert [(r.direction, r.member_id, r.qr_step, r.trust, r.reason) for r in rows] == [
            ("in", member.id, shown_step, "high", "shown:in"),  # what the screen said
            ("rejected", member.id, shown_step, "high", "qr_replayed"),
        ]
    finally:
        service.stop()
        client.close()
