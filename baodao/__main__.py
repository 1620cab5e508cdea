"""``python -m baodao`` — the same as the ``baodao`` console script (used by the demo's child processes)."""

from baodao.cli import main

main()
