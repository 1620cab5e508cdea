"""The sync agent's pacing comes from the kiosk's configuration module, not from environment reads of
its own: operators and the fault tests set it with ``BAODAO_SYNC_*`` / ``BAODAO_HEARTBEAT_S``."""

from __future__ import annotations

from kiosk.config import sync_pacing_from_env


def test_set_variables_become_options_and_empty_ones_are_ignored():
    env = {"BAODAO_SYNC_IDLE_S": "0.5", "BAODAO_SYNC_BACKOFF_CAP_S": "30", "BAODAO_HEARTBEAT_S": ""}
    assert sync_pacing_from_env(env) == {"idle_s": 0.5, "backoff_cap_s": 30.0}
    assert sync_pacing_from_env({}) == {}
