"""QR images rendered on the server as compact SVG, so the member's page needs no QR JavaScript library.

``qrcode``'s own SVG factories write one path segment per module (~13 kB for a version 6 code); merging
each row's dark runs into one ``h…v1h…z`` segment gives ~3-4 kB, which matters because the phone page
carries several steps ahead for offline use. ``crispEdges`` keeps the browser from anti-aliasing seams
between runs, which a camera would otherwise see as grey lines.
"""

from __future__ import annotations

import functools
import logging

import qrcode
from qrcode.constants import ERROR_CORRECT_M

logger = logging.getLogger(__name__)

QUIET_ZONE = 4  # modules; the QR standard's minimum, and cameras need it


def qr_matrix(text: str) -> list[list[bool]]:
    """Module matrix (quiet zone included) at error correction M, smallest version that fits."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=QUIET_ZONE)
    code.add_data(text, optimize=0)
    code.make(fit=True)
    return code.get_matrix()


@functools.lru_cache(maxsize=1024)
def qr_svg(text: str, *, title: str = "") -> str:
    """A standalone ``<svg>`` (white background, black modules) scaled by CSS to any size.

    Cached: Ed25519 signatures are deterministic, so a step's token — fetched again by every refresh of
    the page while it is ahead — renders to the same image."""
    matrix = qr_matrix(text)
    size = len(matrix)
    parts: list[str] = []
    for y, row in enumerate(matrix):
        x = 0
        while x < size:
            if row[x]:
                start = x
                while x < size and row[x]:
                    x += 1
                parts.append(f"M{start} {y}h{x - start}v1h-{x - start}z")
            else:
                x += 1
    label = f"<title>{title}</title>" if title else ""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" shape-rendering="crispEdges"'
        f' role="img">{label}<rect width="{size}" height="{size}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(parts)}"/></svg>'
    )
