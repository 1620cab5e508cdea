"""The fleet page's chain verification: the same check as ``baodao audit verify-chain``, in scope."""

from __future__ import annotations

import re

from tests.chain_cases import build_chain_cases
from tests.factories import web_session


def _rows(page: str) -> dict[str, str]:
    return dict(re.findall(r'<tr data-kiosk="(\d+)" data-chain="(\w+)">', page))


def test_one_kiosk_shows_its_gaps_and_breaks_with_positions(client, db_session, world) -> None:
    cases = build_chain_cases(client, db_session)
    web_session(client, world.users["auditor"])
    detail = client.get(f"/fleet/{cases.gapped_edited.id}").get_data(as_text=True)
    assert f'href="/fleet/{cases.gapped_edited.id}/chain"' in detail and "核验哈希链" in detail
    page = client.get(f"/fleet/{cases.gapped_edited.id}/chain").get_data(as_text=True)
    assert _rows(page) == {str(cases.gapped_edited.id): "broken"}
    assert "1 处缺失、1 处断裂" in page and "共核验 1 台终端，1 台有问题。" in page
    findings = re.findall(r'<li data-position="(\d+)" data-reason="(\w+)">([^<]*)</li>', page)
    assert [(p, r) for p, r, _ in findings] == [("4", "gap"), ("5", "hash_mismatch")]
    assert findings[0][2] == "第 4 条（序号 6）：记录缺失，缺少序号 4–5"
    intact = client.get(f"/fleet/{cases.intact.id}/chain").get_data(as_text=True)
    assert _rows(intact) == {str(cases.intact.id): "ok"} and "哈希链完整" in intact


def test_every_kiosk_in_scope_and_in_english(client, db_session, world) -> None:
    cases = build_chain_cases(client, db_session)
    web_session(client, world.users["staff_a"])
    mine = client.get("/fleet/chain").get_data(as_text=True)
    assert set(_rows(mine)) == {str(world.a.kiosk.id)}  # the other community's kiosks are not shown
    assert client.get(f"/fleet/{cases.intact.id}/chain").status_code == 404
    web_session(client, world.users["auditor"])
    with client.session_transaction() as sess:
        sess["locale"] = "en"
    everyone = client.get("/fleet/chain").get_data(as_text=True)
    rows = _rows(everyone)
    assert rows[str(cases.intact.id)] == "ok" and rows[str(cases.deleted.id)] == "broken"
    assert "position 3 (seq 4): Missing records, seq 3 missing" in everyone
    assert 'href="/fleet/chain"' in client.get("/fleet/").get_data(as_text=True)
