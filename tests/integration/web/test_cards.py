"""Cards: bind, revoke with reason, replace, history; UIDs stored only as keyed hashes. Badge sheets: a PDF
and a PNG per unit whose QR codes decode (zxing-cpp) to the signed badge tokens."""

from __future__ import annotations

import io

import zxingcpp
from PIL import Image
from sqlalchemy import select

from protocol.hashing import credential_hash
from server.models import AuditRecord, Credential, QrBadge
from tests.factories import TEST_CREDENTIAL_KEY, make_member, web_csrf, web_session

UID = "04:a2:3b:1c:5d:6e:7f"
NORMAL = "04A23B1C5D6E7F"


def _post(client, url: str, **data: str):  # type: ignore[no-untyped-def]
    return client.post(url, data={"csrf_token": web_csrf(client), **data}, follow_redirects=True)


def _cards(db_session, member_id: int) -> list[Credential]:  # type: ignore[no-untyped-def]
    db_session.expire_all()
    return list(
        db_session.scalars(
            select(Credential).where(Credential.member_id == member_id).order_by(Credential.id)
        )
    )


def test_bind_stores_only_the_keyed_hash(client, db_session, world) -> None:
    web_session(client, world.users["staff_a"])
    member = world.a.member
    page = _post(client, f"/members/{member.id}/cards", uid=UID).get_data(as_text=True)
    assert "…6E7F" in page
    [card] = _cards(db_session, member.id)
    assert card.value_hash == credential_hash(TEST_CREDENTIAL_KEY, "card", NORMAL)
    assert card.label == "…6E7F" and card.status == "active" and card.issued_by == world.users["staff_a"].id
    record = db_session.scalars(select(AuditRecord).where(AuditRecord.action == "card.bind")).one()
    dump = repr((record.before, record.after, record.reason))
    assert NORMAL not in dump and "04:a2" not in dump


def test_bad_uid_and_card_in_use_are_refused(client, db_session, world) -> None:
    web_session(client, world.users["staff_a"])
    other = make_member(db_session, world.a.unit, world.a.community)
    db_session.commit()
    assert "十六进制" in _post(client, f"/members/{world.a.member.id}/cards", uid="zz-12").get_data(
        as_text=True
    )
    _post(client, f"/members/{world.a.member.id}/cards", uid=UID)
    page = _post(client, f"/members/{other.id}/cards", uid=NORMAL.lower()).get_data(as_text=True)
    assert "已绑定在其他党员名下" in page
    assert _cards(db_session, other.id) == []


def test_revoke_needs_reason_and_replace_keeps_history(client, db_session, world) -> None:
    web_session(client, world.users["staff_a"])
    member = world.a.member
    _post(client, f"/members/{member.id}/cards", uid=UID)
    [card] = _cards(db_session, member.id)
    assert "请填写原因" in _post(client, f"/members/{member.id}/cards/{card.id}/revoke", reason="").get_data(
        as_text=True
    )
    assert _cards(db_session, member.id)[0].status == "active"
    _post(client, f"/members/{member.id}/cards/{card.id}/replace", uid="AABBCCDD", reason="卡片遗失")
    old, new = _cards(db_session, member.id)
    assert (old.status, old.revoked_reason, old.replaced_by_id) == ("revoked", "卡片遗失", new.id)
    assert new.status == "active" and new.label == "…CCDD"
    page = client.get(f"/members/{member.id}/cards").get_data(as_text=True)
    assert "卡片遗失" in page and "替换为 …CCDD" in page
    _post(client, f"/members/{member.id}/cards/{new.id}/revoke", reason="退出")
    assert [c.status for c in _cards(db_session, member.id)] == ["revoked", "revoked"]
    # The old card is free again and may be bound to someone else.
    other = make_member(db_session, world.a.unit, world.a.community)
    db_session.commit()
    _post(client, f"/members/{other.id}/cards", uid=UID)
    assert [c.status for c in _cards(db_session, other.id)] == ["active"]


def test_credentials_of_other_members_are_out_of_reach(client, db_session, world) -> None:
    admin = client.application.test_client()
    web_session(admin, world.users["admin"])
    _post(admin, f"/members/{world.b.member.id}/cards", uid=UID)
    [b_card] = _cards(db_session, world.b.member.id)
    web_session(client, world.users["staff_a"])
    # B's credential id under A's member URL: 404, and B's card stays active.
    response = client.post(
        f"/members/{world.a.member.id}/cards/{b_card.id}/revoke",
        data={"csrf_token": web_csrf(client), "reason": "x"},
    )
    assert response.status_code == 404
    assert _cards(db_session, world.b.member.id)[0].status == "active"
    secretary = client.application.test_client()
    web_session(secretary, world.users["sec_a"])
    assert secretary.get(f"/members/{world.a.member.id}/cards").status_code == 200
    assert (
        secretary.post(
            f"/members/{world.a.member.id}/cards", data={"csrf_token": web_csrf(secretary), "uid": "AABBCCDD"}
        ).status_code
        == 403
    )


def test_badge_sheet_pdf_and_png_decode_to_badge_tokens(client, db_session, world, test_output) -> None:
    for i in range(8):  # nine members: two pages of eight
        make_member(db_session, world.a.unit, world.a.community, name=f"甲方成员{i}")
    db_session.commit()
    web_session(client, world.users["staff_a"])
    url = f"/units/{world.a.unit.id}/badges"
    assert "9 名党员还没有胸卡" in client.get(url).get_data(as_text=True)
    assert "已生成 9 张胸卡" in _post(client, f"{url}/issue").get_data(as_text=True)
    db_session.expire_all()
    serials = set(db_session.scalars(select(QrBadge.serial)))
    assert len(serials) == 9
    pdf = client.get(f"{url}/sheet?format=pdf")
    assert pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
    assert (
        pdf.data.count(b"/Type /Page\n") + pdf.data.count(b"/Type /Page\r") + pdf.data.count(b"/Type /Page ")
        >= 2
    )
    png = client.get(f"{url}/sheet?format=png&page=1")
    image = Image.open(io.BytesIO(png.data))
    assert image.size == (1240, 1754)
    image.save(test_output / "badge-sheet.png")
    decoded = [r.text for r in zxingcpp.read_barcodes(image)]
    assert len(decoded) == 8
    from server.qr.badges import badge_token
    from server.qr.keys import sealing_key

    seal = sealing_key(client.application.config)
    expected = {badge_token(db_session, s, seal=seal) for s in serials}
    assert set(decoded) <= expected
    page2 = Image.open(io.BytesIO(client.get(f"{url}/sheet?format=png&page=2").data))
    assert len(zxingcpp.read_barcodes(page2)) == 1
    # Revoking a badge through the cards page removes it from the next sheet.
    member_id = db_session.scalars(select(QrBadge.member_id)).first()
    credential = db_session.scalars(
        select(Credential).where(Credential.member_id == member_id, Credential.kind == "badge_qr")
    ).one()
    _post(client, f"/members/{member_id}/cards/{credential.id}/revoke", reason="胸卡遗失")
    assert "8 名党员有胸卡" in client.get(url).get_data(as_text=True)


def test_badges_of_another_unit_are_out_of_reach(client, world) -> None:
    web_session(client, world.users["staff_a"])
    assert client.get(f"/units/{world.b.unit.id}/badges/sheet?format=pdf").status_code == 404
