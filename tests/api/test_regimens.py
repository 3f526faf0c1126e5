"""The regimen catalog through the HTTP API."""

from __future__ import annotations

from tests.factories import auth_headers, make_clinic, make_patient, make_user

CODES = ["ocrelizumab-iv", "ocrelizumab-sc", "ofatumumab-sc", "rituximab-iv", "ublituximab-iv"]


def test_list_has_every_regimen_with_sources(client, session, settings):
    clinic = make_clinic(session)
    headers = auth_headers(settings, make_user(session, settings, clinic))
    response = client.get("/api/v1/regimens", headers=headers)
    assert response.status_code == 200
    body = response.get_json()
    assert (body["total"], body["page"]) == (5, 1)
    assert [r["code"] for r in body["items"]] == CODES
    for regimen in body["items"]:
        assert regimen["sources"], regimen["code"]
        assert regimen["default_variant"] in regimen["variants"]
        for rule in regimen["monitoring"]:
            assert rule["source"]
        for item in regimen["screening"]:
            assert item["source"]
        assert regimen["observation"]["source"]
    second = client.get("/api/v1/regimens?page=2&page_size=2", headers=headers).get_json()
    assert [r["code"] for r in second["items"]] == CODES[2:4]
    assert second["total"] == 5


def test_read_one_regimen_and_unknown_is_404(client, session, settings):
    clinic = make_clinic(session)
    headers = auth_headers(settings, make_user(session, settings, clinic))
    response = client.get("/api/v1/regimens/ocrelizumab-iv", headers=headers)
    assert response.status_code == 200
    assert response.headers["ETag"]
    body = response.get_json()
    assert body["drug"] == "ocrelizumab"
    assert "min_interval" in body["settings"]
    doses = body["variants"]["standard"]["doses"]
    assert [d["amount_mg"] for d in doses] == [300, 300, 600]
    missing = client.get("/api/v1/regimens/aspirin", headers=headers)
    assert missing.status_code == 404
    assert missing.content_type == "application/problem+json"


def test_patients_may_read_the_catalog_but_not_anonymously(client, session, settings):
    clinic = make_clinic(session)
    patient = make_patient(session, clinic)
    headers = auth_headers(
        settings, make_user(session, settings, clinic, "patient", patient=patient)
    )
    assert client.get("/api/v1/regimens", headers=headers).status_code == 200
    assert client.get("/api/v1/regimens/rituximab-iv", headers=headers).status_code == 200
    assert client.get("/api/v1/regimens").status_code == 401
    assert client.get("/api/v1/regimens?page=0", headers=headers).status_code == 422
