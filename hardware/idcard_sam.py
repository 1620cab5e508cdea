"""Chinese resident ID card readers (二代证阅读器) speaking the SAM serial protocol (GA 467).

Request:  ``AA AA AA 96 69`` · LEN (2 bytes BE) · CMD · PARA · data · CHK
Response: ``AA AA AA 96 69`` · LEN (2 bytes BE) · SW1 SW2 SW3 · data · CHK
LEN counts the bytes after itself, CHK included; CHK is the XOR of LEN and everything after it.
We poll find card (20 01) → select (20 02) → read base info (30 01). From the base-info text block
(256 bytes of UCS-2 LE) we keep only the ID number (hashed by the kiosk, never stored raw) and the name
(for the masked greeting); photo, address and the rest are dropped here, at the edge, so they never
enter the kiosk's memory or logs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from hardware.base import CredentialKind, ProtocolError, ReadCallback, ReaderState, ReadTimeout, options_as
from hardware.frames import FrameResult
from hardware.options import DriverOptions, option
from hardware.profiles import ReaderProfile
from hardware.reconnect import SessionEnd
from hardware.serial_port import SerialReader, SerialTransport

logger = logging.getLogger(__name__)

DRIVER_KEY = "idcard_sam"


@dataclass(frozen=True)
class IdCardSamOptions(DriverOptions):
    poll_interval_ms: int = option(200, minimum=1, help="Pause between 'find card' polls.")
    timeout_ms: int = option(1000, minimum=1, help="How long to wait for each SAM answer.")


PREAMBLE = b"\xaa\xaa\xaa\x96\x69"
MAX_LEN = 4096

CMD_FIND = (0x20, 0x01)
CMD_SELECT = (0x20, 0x02)
CMD_READ_BASE = (0x30, 0x01)

SW3_OK = 0x90
SW3_FOUND = 0x9F
SW3_NO_CARD = 0x80
SW3_SELECT_FAILED = 0x81

#: SAM status (SW3) -> (English, Chinese); from GA 467-2013 annex.
SAM_STATUS: dict[int, tuple[str, str]] = {
    0x90: ("success", "操作成功"),
    0x9F: ("card found", "寻找证/卡成功"),
    0x10: ("checksum error in command received by SAM", "接收业务终端数据的校验和错"),
    0x11: ("length error in command received by SAM", "接收业务终端数据的长度错"),
    0x21: ("invalid command or parameters", "接收业务终端的命令错误"),
    0x23: ("operation not permitted", "越权操作"),
    0x24: ("unrecognised error", "无法识别的错误"),
    0x31: ("card failed to authenticate the reader", "证/卡认证机具失败"),
    0x32: ("reader failed to authenticate the card", "机具认证证/卡失败"),
    0x33: ("information verification error", "信息验证错误"),
    0x40: ("unrecognised card type", "无法识别的卡类型"),
    0x41: ("reading the card failed", "读证/卡操作失败"),
    0x47: ("getting a random number failed", "取随机数失败"),
    0x60: ("SAM self-test failed", "SAM_A 自检失败"),
    0x66: ("SAM not authorised", "SAM_A 没经过授权"),
    0x80: ("no card found", "寻找证/卡失败"),
    0x81: ("selecting the card failed", "选取证/卡失败"),
}

# base-info text block layout: (field, byte length), UCS-2 LE, space padded
TEXT_LAYOUT = (
    ("name", 30),
    ("gender", 2),
    ("nation", 4),
    ("birth", 16),
    ("address", 70),
    ("id_number", 36),
    ("authority", 30),
    ("valid_from", 16),
    ("valid_to", 16),
    ("reserved", 36),
)
TEXT_LEN = 256
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


class SamStatusError(ProtocolError):
    """The SAM answered with an error status; ``code`` is SW3."""

    def __init__(self, code: int) -> None:
        en, zh = SAM_STATUS.get(code, ("unknown status", "未知状态"))
        super().__init__(f"ID-card SAM status {code:02X}: {en} / 身份证模块状态 {code:02X}：{zh}")
        self.code = code


@dataclass(frozen=True)
class SamResponse:
    sw1: int
    sw2: int
    sw3: int
    data: bytes


@dataclass(frozen=True)
class BaseInfo:
    id_number: str
    name: str


def _xor(data: bytes) -> int:
    x = 0
    for b in data:
        x ^= b
    return x


def build_command(cmd: int, para: int, data: bytes = b"") -> bytes:
    body = (len(data) + 3).to_bytes(2, "big") + bytes([cmd, para]) + data
    return PREAMBLE + body + bytes([_xor(body)])


def build_response(sw3: int, data: bytes = b"", sw1: int = 0, sw2: int = 0) -> bytes:
    """A SAM answer (for the simulator and tests)."""
    body = (len(data) + 4).to_bytes(2, "big") + bytes([sw1, sw2, sw3]) + data
    return PREAMBLE + body + bytes([_xor(body)])


def id_number_valid(number: str) -> bool:
    """18 characters, ISO 7064 MOD 11-2 check digit (GB 11643)."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == number[17]


def id_check_digit(first17: str) -> str:
    return _ID_CHECK[sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


def build_text_block(name: str, id_number: str, **fields: str) -> bytes:
    """A base-info text block (tests and simulator); unset fields are spaces."""
    values = {"name": name, "id_number": id_number, **fields}
    out = b""
    for key, length in TEXT_LAYOUT:
        chunk = values.get(key, "").encode("utf-16-le")[:length]
        out += chunk + " ".encode("utf-16-le") * ((length - len(chunk)) // 2)
    return out


def parse_base_info(data: bytes) -> BaseInfo:
    """Data of a 30 01 answer -> ID number and name; everything else is discarded unread."""
    if len(data) < 4:
        raise ProtocolError("base info shorter than its header")
    text_len = int.from_bytes(data[0:2], "big")
    photo_len = int.from_bytes(data[2:4], "big")
    if text_len < TEXT_LEN or 4 + text_len + photo_len > len(data):
        raise ProtocolError(f"base info lengths {text_len}+{photo_len} do not fit {len(data)} bytes")
    text = data[4 : 4 + TEXT_LEN]
    fields: dict[str, str] = {}
    pos = 0
    for key, length in TEXT_LAYOUT:
        if key in ("name", "id_number"):
            try:
                fields[key] = text[pos : pos + length].decode("utf-16-le").strip(" \x00")
            except UnicodeDecodeError as exc:
                raise ProtocolError(f"{key} is not UCS-2 text") from exc
        pos += length
    number = fields["id_number"].upper()
    if not id_number_valid(number):
        raise ProtocolError("ID number fails its check digit / 身份证号码校验位错误")
    return BaseInfo(id_number=number, name=fields["name"])


class SamResponseParser:
    """Bytes in any chunking -> responses (or bad frames), resyncing on the preamble; never raises."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def reset(self) -> None:
        self._buf.clear()

    def feed(self, data: bytes) -> list[SamResponse | FrameResult]:
        out: list[SamResponse | FrameResult] = []
        buf = self._buf
        buf += data
        while True:
            start = buf.find(PREAMBLE)
            if start < 0:
                # keep a possible partial preamble at the end
                keep = next((k for k in range(4, 0, -1) if buf.endswith(PREAMBLE[:k])), 0)
                if len(buf) > keep:
                    out.append(FrameResult.bad(f"{len(buf) - keep} bytes of noise"))
                    del buf[: len(buf) - keep]
                break
            if start > 0:
                out.append(FrameResult.bad(f"{start} bytes of noise"))
                del buf[:start]
            if len(buf) < 7:
                break
            length = int.from_bytes(buf[5:7], "big")
            if length < 4 or length > MAX_LEN:
                out.append(FrameResult.bad(f"impossible length {length}"))
                del buf[:1]
                continue
            if len(buf) < 7 + length:
                break
            body = bytes(buf[5 : 7 + length])
            if _xor(body[:-1]) != body[-1]:
                out.append(FrameResult.bad("checksum mismatch"))
                del buf[:1]
                continue
            del buf[: 7 + length]
            out.append(SamResponse(body[2], body[3], body[4], body[5:-1]))
        return out


def interpret(resp: SamResponse) -> FrameResult | None:
    """A base-info response -> good result with the ID number, or bad; None for other statuses."""
    if resp.sw3 != SW3_OK:
        return None
    try:
        info = parse_base_info(resp.data)
    except ProtocolError as exc:
        return FrameResult.bad(str(exc))
    return FrameResult.good(info.id_number, info.name or None)


class IdCardSamReader(SerialReader):
    """Resident ID card reader with a SAM on a serial port (GA 467)."""

    driver_key = DRIVER_KEY
    Options = IdCardSamOptions
    kind = CredentialKind.ID_CARD
    max_silent = 3  # unanswered commands in a row before the reader reports ERROR

    def __init__(
        self,
        reader_id: str,
        callback: ReadCallback,
        transport: SerialTransport,
        *,
        debounce_ms: int = 3000,
        poll_interval_ms: int = 200,
        timeout_ms: int = 1000,
    ) -> None:
        super().__init__(reader_id, callback, transport, debounce_ms=debounce_ms)
        self.poll_interval = poll_interval_ms / 1000.0
        self.timeout = timeout_ms / 1000.0
        self.parser = SamResponseParser()
        self._silent = 0

    @classmethod
    def from_profile(
        cls, profile: ReaderProfile, callback: ReadCallback, port: str | None
    ) -> IdCardSamReader:
        o = options_as(profile, IdCardSamOptions)
        return cls(
            profile.reader_id,
            callback,
            cls.transport_for(profile, port),
            debounce_ms=profile.debounce_ms,
            poll_interval_ms=o.poll_interval_ms,
            timeout_ms=o.timeout_ms,
        )

    def _on_close(self) -> None:
        self.parser.reset()

    def _transact(self, cmd: tuple[int, int]) -> SamResponse:
        """Send one command, wait for its answer; bad frames meanwhile are counted, not fatal."""
        self.transport.write(build_command(*cmd))
        waited = 0.0
        while not self._stop.is_set() and waited < self.timeout:
            data = self.transport.read()
            waited += self.transport.read_timeout if not data else 0.0
            for item in self.parser.feed(data) if data else []:
                if isinstance(item, SamResponse):
                    return item
                self._bad_frame(item.value)
        self.parser.reset()  # a corrupted length header must not swallow the next answer
        raise ReadTimeout(f"SAM did not answer {cmd[0]:02X} {cmd[1]:02X} / 身份证模块无应答")

    def _poll_once(self) -> None:
        resp = self._transact(CMD_FIND)
        if resp.sw3 == SW3_NO_CARD:
            return
        if resp.sw3 != SW3_FOUND:
            raise SamStatusError(resp.sw3)
        resp = self._transact(CMD_SELECT)
        if resp.sw3 == SW3_SELECT_FAILED:
            return  # card pulled between find and select
        if resp.sw3 != SW3_OK:
            raise SamStatusError(resp.sw3)
        resp = self._transact(CMD_READ_BASE)
        if resp.sw3 != SW3_OK:
            raise SamStatusError(resp.sw3)
        result = interpret(resp)
        if result is not None:
            self._handle([result])

    def _session(self, handle: str) -> SessionEnd | None:
        self.parser.reset()
        self.transport.reset_input()

        while not self._stop.is_set():
            try:
                self._poll_once()
                self._silent = 0
                if self.health().state is not ReaderState.READY:
                    self._set_state(ReaderState.READY)
            except ReadTimeout as exc:
                self._silent += 1
                self._bad_frame(str(exc))
                if self._silent >= self.max_silent:
                    self._set_state(ReaderState.ERROR, str(exc))
            except SamStatusError as exc:
                logger.warning("reader %s: %s", self.reader_id, exc)
                self._note_error(str(exc))
                self._set_extra("sam_status", f"{exc.code:02X}")
            self._stop.wait(self.poll_interval)
        return None
