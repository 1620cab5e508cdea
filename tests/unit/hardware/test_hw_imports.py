"""hardware/ imports nothing of ours (DESIGN.md: stdlib, pyscard, pyserial, cv2 only)."""

import subprocess
import sys
from pathlib import Path

import hardware


def test_hardware_imports_no_project_package():
    modules = sorted(
        f"hardware.{p.stem}" for p in Path(hardware.__file__).parent.glob("*.py") if p.stem != "__init__"
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('protocol', 'kiosk', 'server', 'baodao', 'bench'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "hardware.cli" in modules and "hardware.camera" in modules
    assert out.stdout.strip() == ""
