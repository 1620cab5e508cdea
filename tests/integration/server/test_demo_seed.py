from __future__ import annotations

import sqlalchemy as sa

from server.demo_seed import MEMBER_COUNT, seed_demo
from server.models import Credential, Member, User
from tests.factories import TEST_CREDENTIAL_KEY


def _counts(session) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    return tuple(
        session.scalar(sa.select(sa.func.count()).select_from(m)) for m in (Member, Credential, User)
    )


def test_demo_seed_is_idempotent_and_complete(db_session):
    accounts, creds = seed_demo(db_session, TEST_CREDENTIAL_KEY)
    db_session.commit()
    first = _counts(db_session)
    assert first == (MEMBER_COUNT, MEMBER_COUNT, len(accounts))
    accounts2, creds2 = seed_demo(db_session, TEST_CREDENTIAL_KEY)
    db_session.commit()
    assert _counts(db_session) == first
    assert creds2 == creds and accounts2 == accounts
    assert len({c.card_uid for c in creds}) == MEMBER_COUNT
    assert {a.role for a in accounts} == {"admin", "community_staff", "unit_secretary", "auditor"}
