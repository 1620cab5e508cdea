"""The demo city: a few Puyang communities with service centres, paired units, ~200 members with cards,
and one account per role. Deterministic (fixed random seed) and idempotent: running it again changes
nothing and returns the same accounts and credentials."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.hashing import credential_hash

from .accounts import create_user
from .models import Community, Credential, Member, ServiceCentre, Unit, UnitCommunity, User

logger = logging.getLogger(__name__)

DEMO_PASSWORD = "baodao-demo-2026"

COMMUNITIES = [
    ("PY-HL-001", "华龙区胜利路社区", "华龙区"),
    ("PY-HL-002", "华龙区昆吾社区", "华龙区"),
    ("PY-HL-003", "华龙区绿城社区", "华龙区"),
    ("PY-KF-001", "开发区皇甫社区", "开发区"),
]
UNITS = [
    ("U-001", "濮阳市财政局机关党委"),
    ("U-002", "濮阳市教育局机关党委"),
    ("U-003", "濮阳市人民医院党委"),
    ("U-004", "濮阳市税务局机关党委"),
    ("U-005", "濮阳市供电公司党委"),
    ("U-006", "濮阳市第一中学党委"),
    ("U-007", "濮阳市市场监督管理局党委"),
    ("U-008", "濮阳市自然资源和规划局党委"),
]
SURNAMES = "王李张刘陈杨黄赵周吴徐孙马朱胡郭何林高罗郑梁谢宋唐许韩冯邓曹彭曾肖田董潘袁蔡蒋余于杜叶程魏苏吕丁任卢姚沈钟姜崔谭陆范汪廖石金韦贾夏付方邹熊白孟秦邱侯江尹薛闫段雷龙黎史陶贺毛郝顾龚邵万覃武钱戴严莫孔向常汤"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华红玉梅文斌鹏辉建国建华志强海燕春梅晓东"
MEMBER_COUNT = 200


@dataclass(frozen=True)
class DemoAccount:
    username: str
    password: str
    role: str
    scope: str


@dataclass(frozen=True)
class DemoCredential:
    member_no: str
    name: str
    unit: str
    community: str
    card_uid: str
    in_first_centre_roster: bool  # the demo kiosk stands at the first community's centre


def _get_or_add(session: Session, model: type, lookup: dict[str, object], **fields: object):  # type: ignore[no-untyped-def]
    row = session.scalar(select(model).filter_by(**lookup))
    if row is None:
        row = model(**lookup, **fields)
        session.add(row)
        session.flush()
    return row


def _pairs(communities: list[Community], unit_index: int) -> tuple[Community, Community]:
    """Each demo unit reports to two neighbouring communities (双报到)."""
    return communities[unit_index % len(communities)], communities[(unit_index + 1) % len(communities)]


def seed_demo(session: Session, credential_key: bytes) -> tuple[list[DemoAccount], list[DemoCredential]]:
    rng = random.Random(2026)
    communities = [
        _get_or_add(session, Community, {"code": c}, name=n, district=d) for c, n, d in COMMUNITIES
    ]
    for i, community in enumerate(communities, start=1):
        _get_or_add(
            session,
            ServiceCentre,
            {"code": f"{community.code}-C1"},
            community_id=community.id,
            name=f"{community.name}党群服务中心",
            address=f"濮阳市{community.district}{i}号",
            opens_at=time(8, 0),
            closes_at=time(21, 0),
        )
    units = [_get_or_add(session, Unit, {"code": c}, name=n) for c, n in UNITS]
    for i, unit in enumerate(units):
        for community in _pairs(communities, i):
            _get_or_add(session, UnitCommunity, {"unit_id": unit.id, "community_id": community.id})

    first = communities[0]
    paired_with_first = {u.id for i, u in enumerate(units) if first in _pairs(communities, i)}
    credentials: list[DemoCredential] = []
    for n in range(1, MEMBER_COUNT + 1):
        unit = units[rng.randrange(len(units))]
        community = communities[rng.randrange(len(communities))]
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
        uid = bytes([0x04, *(rng.randrange(256) for _ in range(6))]).hex().upper()
        member = _get_or_add(
            session,
            Member,
            {"member_no": f"PY{n:05d}"},
            name=name,
            unit_id=unit.id,
            community_id=community.id,
            phone=f"139{rng.randrange(10**8):08d}",
        )
        value_hash = credential_hash(credential_key, "card", uid)
        _get_or_add(
            session,
            Credential,
            {"member_id": member.id, "kind": "card", "value_hash": value_hash},
            label=f"…{uid[-4:]}",
        )
        in_roster = member.community_id == first.id or member.unit_id in paired_with_first
        credentials.append(
            DemoCredential(member.member_no, member.name, unit.name, community.name, uid, in_roster)
        )

    accounts = [DemoAccount("admin", DEMO_PASSWORD, "admin", "all / 全部")]
    accounts += [
        DemoAccount(f"staff{i}", DEMO_PASSWORD, "community_staff", c.code)
        for i, c in enumerate(communities[:2], 1)
    ]
    accounts += [
        DemoAccount("secretary1", DEMO_PASSWORD, "unit_secretary", units[0].code),
        DemoAccount("auditor", DEMO_PASSWORD, "auditor", "all / 全部"),
    ]
    for account in accounts:
        if session.scalar(select(User).where(User.username == account.username)) is None:
            create_user(
                session,
                username=account.username,
                password=account.password,
                role=account.role,
                community_code=account.scope if account.role == "community_staff" else None,
                unit_code=account.scope if account.role == "unit_secretary" else None,
            )
    logger.info("demo city seeded", extra={"members": MEMBER_COUNT, "communities": len(communities)})
    return accounts, credentials
