"""Seed 001's scheduler management routes as written: ``GET /api/admin/schedulers`` and
``POST /api/admin/schedulers/{group}/pause|resume``, behind the operate scope, on a real ``broker-jobs serve``."""

from __future__ import annotations

import httpx
import pytest

from tests.support import bearer

pytestmark = pytest.mark.rabbitmq


def test_scheduler_management_needs_the_operate_scope(server):
    for method, path in (("GET", "/api/admin/schedulers"), ("POST", "/api/admin/schedulers/all/pause"),
                         ("POST", "/api/admin/schedulers/default/resume")):
        assert httpx.request(method, server + path, timeout=10).status_code == 401, path
        assert httpx.request(method, server + path, headers=bearer("read"), timeout=10).status_code == 403, path


def test_schedulers_list_pause_and_resume_in_the_seeds_shape(server):
    admin = server + "/api/admin/schedulers"
    listed = httpx.get(admin, headers=bearer("operate"), timeout=10)
    assert listed.status_code == 200, listed.text
    report = listed.json()
    # The seed's response format: healthy, status, timestamp, schedulers {total, running, errors}, details.
    assert set(report) >= {"healthy", "status", "timestamp", "schedulers", "details"}
    assert {"total", "running", "errors"} <= set(report["schedulers"])
    assert set(report["details"]) == {"default"}  # this server's one job names no group
    assert set(report["details"]["default"]) >= {"status", "healthy", "lastSuccess"}
    assert report["details"]["default"]["status"] == "STOPPED"  # no scheduler process runs here

    paused = httpx.post(admin + "/all/pause", headers=bearer("operate"), json={"note": "deploy"}, timeout=10)
    assert paused.status_code == 200, paused.text
    assert paused.json() == {"scheduler": "all", "paused": True, "note": "deploy"}
    report = httpx.get(admin, headers=bearer("operate"), timeout=10).json()
    assert report["paused"] is True and report["details"]["default"]["status"] == "PAUSED"
    assert report["details"]["default"]["note"] == "deploy"
    assert httpx.post(admin + "/all/resume", headers=bearer("operate"), timeout=10).json()["paused"] is False

    group = httpx.post(admin + "/default/pause", headers=bearer("operate"), timeout=10)  # no body: no note
    assert group.status_code == 200 and group.json()["scheduler"] == "default"
    assert httpx.get(admin, headers=bearer("operate"), timeout=10).json()["schedulers"]["paused"] == 1
    assert httpx.post(admin + "/default/resume", headers=bearer("operate"), timeout=10).status_code == 200


def test_an_unknown_group_is_a_404_naming_the_groups(server):
    response = httpx.post(server + "/api/admin/schedulers/csv-import/pause", headers=bearer("operate"), timeout=10)
    assert response.status_code == 404
    assert "no job is in group 'csv-import' (groups: default)" in response.json()["detail"]


def test_the_admin_routes_are_in_the_openapi_document(server):
    paths = httpx.get(server + "/openapi.json", timeout=10).json()["paths"]
    assert paths["/api/admin/schedulers"]["get"]["security"] == [{"HTTPBearer": []}]
    for action in ("pause", "resume"):
        assert f"/api/admin/schedulers/{{group}}/{action}" in paths
