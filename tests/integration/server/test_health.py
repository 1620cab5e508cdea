from __future__ import annotations


def test_healthz_reports_status_and_backend(client, db_url):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["database"]["backend"] == ("sqlite" if db_url.startswith("sqlite") else "postgresql")
    assert body["database"]["ok"] is True


def test_healthz_reports_a_dead_database_as_degraded(tmp_path):
    from server import create_app
    from tests.conftest import TEST_KEYS

    app = create_app({"DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none", **TEST_KEYS})
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["database"]["ok"] is False
    app.extensions["baodao_db"].dispose()
