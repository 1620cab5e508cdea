"""``baodao audit verify-chain``: recompute every kiosk's chain from the stored events, on both databases.

Intact chains (including one whose member id the server does not know, stored as a flag) exit 0; a gap
that arrived as such, an event edited in the database and an event deleted from it exit 1 with their
positions named, in Chinese and English. Through Click's runner and through the installed ``baodao``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from baodao.cli import main
from protocol.chain import BreakReason
from server.chain_audit import kiosks_to_verify, verify_kiosks
from tests.chain_cases import build_chain_cases
from tests.conftest import REPO_ROOT, TEST_KEYS

BAODAO = str(Path(sys.executable).with_name("baodao"))


def _env(db_url: str) -> dict[str, str]:
    return {"BAODAO_DATABASE_URL": db_url, **{f"BAODAO_{k}": v for k, v in TEST_KEYS.items()}}


def test_findings_name_every_gap_and_break_with_its_position(client, db_session):
    cases = build_chain_cases(client, db_session)
    reports = {r.kiosk_uid: r for r in verify_kiosks(db_session, kiosks_to_verify(db_session))}
    intact = reports[cases.intact.kiosk_uid]
    assert intact.ok and intact.events == intact.verified == 6
    gapped = reports[cases.gapped_edited.kiosk_uid]
    assert gapped.events == 6 and gapped.verified == 5  # everything but the edited event
    assert [(f.position, f.seq, f.reason, f.expected) for f in gapped.gaps] == [
        (4, 6, BreakReason.GAP, "4–5")
    ]
    assert [(f.position, f.seq, f.reason) for f in gapped.breaks] == [(5, 7, BreakReason.HASH_MISMATCH)]
    deleted = reports[cases.deleted.kiosk_uid]
    assert [(f.position, f.seq, f.reason, f.expected) for f in deleted.findings] == [
        (3, 4, BreakReason.GAP, "3")
    ]


def test_cli_exit_status_and_output(db_url, client, db_session):
    cases = build_chain_cases(client, db_session)
    runner = CliRunner()
    whole = runner.invoke(main, ["audit", "verify-chain"], env=_env(db_url))
    assert whole.exit_code == 1, whole.output
    out = whole.stdout
    assert (
        f"{cases.intact.kiosk_uid} ({cases.intact.name}): 6 条记录 / events — 哈希链完整 / chain intact"
        in out
    )
    assert (
        "第 4 条（序号 6）：记录缺失，缺少序号 4–5 / position 4 (seq 6): Missing records, seq 4–5 missing"
        in out
    )
    assert "第 5 条（序号 7）：" in out and "position 5 (seq 7): " in out
    assert "第 3 条（序号 4）" in out
    assert "共核验 3 台终端，2 台有问题 / verified 3 kiosks, 2 with problems" in out
    assert "[3/3]" in whole.stderr  # progress, on stderr so stdout stays the report
    one = runner.invoke(main, ["audit", "verify-chain", "--kiosk", cases.intact.kiosk_uid], env=_env(db_url))
    assert one.exit_code == 0, one.output
    assert "共核验 1 台终端，0 台有问题" in one.stdout
    missing = runner.invoke(main, ["audit", "verify-chain", "--kiosk", "NO-SUCH"], env=_env(db_url))
    assert missing.exit_code == 2 and "未找到终端 NO-SUCH / no kiosk NO-SUCH" in missing.stderr


def test_the_installed_command(db_url, client, db_session):
    cases = build_chain_cases(client, db_session)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), **_env(db_url)}
    bad = subprocess.run(
        [BAODAO, "audit", "verify-chain", "--kiosk", cases.gapped_edited.kiosk_uid],
        env=env, capture_output=True, text=True, cwd=REPO_ROOT, check=False,
    )  # fmt: skip
    assert bad.returncode == 1, bad.stderr
    assert "1 处缺失、1 处断裂 / 1 gaps, 1 breaks" in bad.stdout
    good = subprocess.run(
        [BAODAO, "audit", "verify-chain", "--kiosk", cases.intact.kiosk_uid],
        env=env, capture_output=True, text=True, cwd=REPO_ROOT, check=False,
    )  # fmt: skip
    assert good.returncode == 0, good.stderr
