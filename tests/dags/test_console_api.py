"""The operator console (plugins/pfi_airflow/console.py and console_web/) inside Airflow's own api-server app:
every endpoint, unauthenticated, with the wrong role and with the right one.

Airflow's ``create_app`` loads the project's plugins folder, as the api-server does; users are
the simple auth manager's, their JWTs made by the auth manager itself (the UI's ``_token``
cookie carries the same). The ledger is the test's own database.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from pfi.ledger import Ledger, upgrade
from pfi_fixtures.ledger import record_document

pytestmark = pytest.mark.airflow

INS = "279035121518989"  # official ANS test INS
GEO = "750712184"
ROLES = {"lecteur": "viewer", "operateur": "user", "superviseur": "op", "admin": "admin"}


@pytest.fixture(scope="module")
def ledger(postgres_server) -> Iterator[Ledger]:
    url = postgres_server.create_database()
    upgrade(url)
    ledger = Ledger.from_url(url)
    yield ledger
    ledger.dispose()
    postgres_server.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture(scope="module")
def client(airflow_db, ledger) -> Iterator[object]:
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from fastapi.testclient import TestClient
    from starlette.routing import Mount

    secret = "AIRFLOW__API_AUTH__JWT_SECRET"
    kept = os.environ.get(secret)
    os.environ[secret] = os.environ.get(secret) or "pfi-console-test-" + "s" * 64
    app = create_app("all")
    (console,) = [r.app for r in app.routes if isinstance(r, Mount) and r.path == "/pfi"]
    console.state.ledger = ledger
    with TestClient(app, base_url="http://testserver") as client:
        yield client
    purge_cached_app()
    if kept is None:
        del os.environ[secret]


def token(user: str) -> dict[str, str]:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    jwt = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=user, role=ROLES[user]))
    return {"Authorization": f"Bearer {jwt}"}


@pytest.fixture(scope="module")
def docs(ledger) -> dict[str, int]:
    """A document sent to the DMP (and refused to a professional), and one whose DMP delivery
    failed: the console's cases."""
    sent = record_document(
        ledger,
        "1.2.250.1.999.1.1^console-sent",
        "dmp",
        ("mss_professional", "dr.test@test.mssante.fr"),
        control_id="MSG-CONSOLE-1",
        type_code="11490-0",
        finess_geo=GEO,
        ins_matricule=INS,
        ins_oid="1.2.250.1.213.1.4.10",
        ins_qualified=True,
    )
    dmp, mss = sent.delivery_ids
    ledger.mark_delivery(dmp, "sent", partner_ref="urn:dmp:1", actor="deliver_dmp/send/run1[0]")
    ledger.mark_delivery(mss, "refused", reason_code="MSS_REFUSED", actor="deliver_mssante/s/r")
    failed = record_document(
        ledger,
        "1.2.250.1.999.1.1^console-failed",
        "dmp",
        control_id="MSG-CONSOLE-2",
        finess_geo=GEO,
        ins_matricule=INS,
        ins_oid="1.2.250.1.213.1.4.10",
        ins_qualified=True,
    )
    ledger.mark_delivery(failed.delivery_id, "failed", reason_code="DMP_DOWN", actor="cli")
    held = record_document(ledger, "1.2.250.1.999.1.1^console-held", "dmp", finess_geo=GEO)
    return {
        "sent_doc": sent.document_id,
        "sent_dmp": dmp,
        "refused_mss": mss,
        "failed_doc": failed.document_id,
        "failed_dmp": failed.delivery_id,
        "pending_dmp": held.delivery_id,
    }


GETS = [
    "/pfi/api/me",
    "/pfi/api/search",
    "/pfi/api/search?what=items",
    "/pfi/api/documents/{sent_doc}",
    "/pfi/api/audit",
    "/pfi/api/documents/{sent_doc}/identity",
    "/pfi/api/items/1/original",
    "/pfi/api/dashboard",
    "/pfi/",
    "/pfi/documents/{sent_doc}",
    "/pfi/documents/{sent_doc}/identity",
    "/pfi/items/1/original",
    "/pfi/audit",
    "/pfi/indicateurs",
    "/pfi/indicateurs.csv?month=2026-01",
]
POSTS = [
    ("/pfi/api/replay", {"deliveries": ["{failed_dmp}"], "reason": "x"}),
    ("/pfi/api/replay/plan", {"deliveries": ["{failed_dmp}"]}),
    ("/pfi/api/hold", {"deliveries": ["{pending_dmp}"]}),
    ("/pfi/api/release", {"deliveries": ["{pending_dmp}"]}),
]


@pytest.mark.parametrize("path", GETS)
def test_without_login_the_api_answers_401_and_a_page_redirects_to_the_login(client, docs, path):
    answer = client.get(path.format(**docs), follow_redirects=False)
    if path.startswith("/pfi/api"):
        assert answer.status_code == 401
    else:
        assert answer.status_code == 303
        assert "/auth/login" in answer.headers["location"]
        assert "next=%2Fpfi%2F" in answer.headers["location"]


@pytest.mark.parametrize("path", ["/pfi/", "/pfi/actions", "/pfi/replay-matching"])
def test_without_login_no_form_is_taken(client, docs, ledger, path):
    form = {"action": "hold", "delivery": str(docs["pending_dmp"]), "status": "failed"}
    before = ledger.get_delivery(docs["pending_dmp"]).status
    answer = client.post(path, data=form, follow_redirects=False)
    assert answer.status_code == 401 and "Console PFI" in answer.text
    assert ledger.get_delivery(docs["pending_dmp"]).status == before


@pytest.mark.parametrize(("path", "body"), POSTS)
def test_without_login_no_action_is_taken(client, docs, ledger, path, body):
    ids = [int(i.format(**docs)) for i in body["deliveries"]]
    before = [ledger.get_delivery(i).status for i in ids]
    payload = {**body, "deliveries": ids}
    assert client.post(path, json=payload).status_code == 401
    assert client.post(
        path, json=payload, headers={"Authorization": "Bearer nope"}
    ).status_code in (
        401,
        403,
    )
    assert [ledger.get_delivery(i).status for i in ids] == before


def test_rights_follow_the_auth_managers_roles(client):
    rights = {u: client.get("/pfi/api/me", headers=token(u)).json()["rights"] for u in ROLES}
    assert rights["lecteur"] == ["metadata"]
    assert rights["operateur"] == ["metadata", "replay"]
    assert rights["superviseur"] == ["admin", "content", "metadata", "replay"]
    assert rights["admin"] == ["admin", "content", "metadata", "replay"]


def test_search_finds_a_document_by_each_criterion_with_identity_masked_for_a_viewer(client, docs):
    viewer, admin = token("lecteur"), token("admin")
    by_id = client.get(
        "/pfi/api/search", params={"unique_id": "1.2.250.1.999.1.1^console-sent"}, headers=viewer
    ).json()
    assert {r["id"] for r in by_id["rows"]} == {docs["sent_dmp"], docs["refused_mss"]}
    assert {r["ins"] for r in by_id["rows"]} == {"•••"}
    assert INS not in str(by_id)
    by_control = client.get(
        "/pfi/api/search", params={"control_id": "MSG-CONSOLE-2"}, headers=viewer
    ).json()
    assert [r["id"] for r in by_control["rows"]] == [docs["failed_dmp"]]
    failed = client.get(
        "/pfi/api/search", params={"status": "failed", "channel": "dmp"}, headers=viewer
    ).json()
    assert docs["failed_dmp"] in [r["id"] for r in failed["rows"]]
    today = datetime.now(UTC).date().isoformat()
    dated = client.get(
        "/pfi/api/search",
        params={"since": today, "until": today, "finess_geo": GEO, "source": "dpi"},
        headers=viewer,
    ).json()
    assert len(dated["rows"]) == 4
    assert (
        client.get(
            "/pfi/api/search", params={"since": "2001-01-01", "until": "2001-01-02"}, headers=viewer
        ).json()["rows"]
        == []
    )
    # searching by INS is for the roles that may see identities
    assert client.post("/pfi/api/search", json={"ins": INS}, headers=viewer).status_code == 403
    by_ins = client.post("/pfi/api/search", json={"ins": INS}, headers=admin).json()
    assert len(by_ins["rows"]) == 3 and {r["ins"] for r in by_ins["rows"]} == {INS}
    items = client.get(
        "/pfi/api/search", params={"what": "items", "control_id": "MSG-CONSOLE-1"}, headers=viewer
    ).json()
    assert [r["control_id"] for r in items["rows"]] == ["MSG-CONSOLE-1"]


def test_an_ins_is_never_taken_from_a_url_access_logs_keep(client, docs):
    for path in ("/pfi/api/search", "/pfi/"):
        answer = client.get(path, params={"ins": INS}, headers=token("admin"))
        assert answer.status_code == 400 and INS not in answer.text
    page = client.post("/pfi/", data={"ins": INS}, headers=token("admin"))
    assert page.status_code == 200 and page.text.count(INS) >= 3  # the field and the rows
    assert client.post("/pfi/", data={"ins": INS}, headers=token("lecteur")).status_code == 403


def test_search_pages_are_keyset_and_capped(client, docs):
    viewer = token("lecteur")
    first = client.get("/pfi/api/search", params={"size": 2}, headers=viewer).json()
    assert len(first["rows"]) == 2 and first["next_before"] == first["rows"][-1]["id"]
    second = client.get(
        "/pfi/api/search", params={"size": 2, "before": first["next_before"]}, headers=viewer
    ).json()
    assert {r["id"] for r in first["rows"]}.isdisjoint({r["id"] for r in second["rows"]})
    assert all(r["id"] < first["next_before"] for r in second["rows"])
    big = client.get("/pfi/api/search", params={"size": 100000}, headers=viewer).json()
    assert len(big["rows"]) <= 100


def test_timeline_links_each_task_step_to_its_airflow_task_instance(client, docs):
    found = client.get(f"/pfi/api/documents/{docs['sent_doc']}", headers=token("lecteur")).json()
    assert found["document"]["ins"] == "•••" and not found["identity"]
    assert {d["id"] for d in found["deliveries"]} == {docs["sent_dmp"], docs["refused_mss"]}
    urls = {s["task_url"] for s in found["steps"] if s["task_url"]}
    assert "/dags/deliver_dmp/runs/run1/tasks/send/mapped/0" in urls
    assert "/dags/deliver_mssante/runs/r/tasks/s" in urls
    kinds = [s["kind"] for s in found["steps"]]
    assert "delivery.created" in kinds and "delivery.status" in kinds
    assert client.get("/pfi/api/documents/999999", headers=token("lecteur")).status_code == 404


def test_identity_and_originals_are_for_the_content_role_and_each_view_is_audited(
    client, docs, ledger
):
    path = f"/pfi/api/documents/{docs['sent_doc']}/identity"
    assert client.get(path, headers=token("lecteur")).status_code == 403
    assert client.get(path, headers=token("operateur")).status_code == 403
    shown = client.get(path, headers=token("superviseur")).json()
    assert shown["ins"] == INS
    timeline = client.get(f"/pfi/api/documents/{docs['sent_doc']}", headers=token("admin")).json()
    assert timeline["document"]["ins"] == INS
    item = timeline["items"][0]["id"]
    assert (
        client.get(f"/pfi/api/items/{item}/original", headers=token("lecteur")).status_code == 403
    )
    assert client.get(f"/pfi/api/items/{item}/original", headers=token("admin")).status_code == 200
    audit = client.get("/pfi/api/audit", headers=token("lecteur")).json()["rows"]
    seen = [
        (r["operator"], r["detail"].get("what")) for r in audit if r["kind"] == "operator.viewed"
    ]
    assert ("superviseur", "identity_full") in seen
    assert ("admin", "identity") in seen and ("admin", "original") in seen


def test_replay_needs_the_replay_role_and_a_reason(client, docs, ledger):
    body = {"deliveries": [docs["failed_dmp"]], "reason": "DMP rétabli"}
    assert client.post("/pfi/api/replay", json=body, headers=token("lecteur")).status_code == 403
    assert ledger.get_delivery(docs["failed_dmp"]).status == "failed"
    too_long = {"deliveries": [docs["failed_dmp"]], "reason": "x" * 501}
    assert (
        client.post("/pfi/api/replay", json=too_long, headers=token("operateur")).status_code == 400
    )
    no_reason = {"deliveries": [docs["failed_dmp"]], "reason": " "}
    assert (
        client.post("/pfi/api/replay", json=no_reason, headers=token("operateur")).status_code
        == 400
    )
    plan = client.post(
        "/pfi/api/replay/plan",
        json={"deliveries": [docs["failed_dmp"], docs["sent_dmp"], docs["pending_dmp"]]},
        headers=token("operateur"),
    ).json()
    assert plan == {
        "attempt": [docs["failed_dmp"]],
        "duplicate": [docs["sent_dmp"]],
        "waiting": [docs["pending_dmp"]],
    }
    done = client.post("/pfi/api/replay", json=body, headers=token("operateur")).json()
    assert done["attempt"] == [docs["failed_dmp"]]
    again = ledger.get_delivery(docs["failed_dmp"])
    assert again.status == "pending" and again.reason_code == "DMP_REPLAY"
    audit = client.get("/pfi/api/audit", headers=token("lecteur")).json()["rows"]
    line = next(r for r in audit if r["kind"] == "operator.replay")
    assert (line["operator"], line["reason"], line["delivery_id"]) == (
        "operateur",
        "DMP rétabli",
        docs["failed_dmp"],
    )


def test_a_sent_delivery_is_replayed_only_when_forced_as_a_new_linked_delivery(
    client, docs, ledger
):
    body = {"deliveries": [docs["sent_dmp"]], "reason": "entrée supprimée par erreur au DMP"}
    warned = client.post("/pfi/api/replay", json=body, headers=token("operateur")).json()
    assert warned["duplicate"] == [docs["sent_dmp"]] and not warned["forced"]
    forced = client.post(
        "/pfi/api/replay", json={**body, "force": True}, headers=token("operateur")
    ).json()
    (new_id,) = forced["forced"]
    replay = ledger.get_delivery(new_id)
    assert (replay.replay_of, replay.replay_seq, replay.status) == (docs["sent_dmp"], 1, "pending")
    assert ledger.get_delivery(docs["sent_dmp"]).status == "sent"
    timeline = client.get(f"/pfi/api/documents/{docs['sent_doc']}", headers=token("lecteur")).json()
    original = next(d for d in timeline["deliveries"] if d["id"] == docs["sent_dmp"])
    assert original["replays"] == [new_id]
    forced_lines = [s for s in timeline["steps"] if s["kind"] == "operator.replay_forced"]
    assert {s["delivery_id"] for s in forced_lines} == {docs["sent_dmp"], new_id}
    assert forced_lines[0]["actor"] == "operator:operateur"


def test_hold_and_release_from_the_console_are_in_the_trail(client, docs, ledger):
    ids = {"deliveries": [docs["pending_dmp"]], "reason": "document à vérifier"}
    assert client.post("/pfi/api/hold", json=ids, headers=token("lecteur")).status_code == 403
    held = client.post("/pfi/api/hold", json=ids, headers=token("operateur")).json()
    assert held == {"changed": [docs["pending_dmp"]]}
    assert ledger.get_delivery(docs["pending_dmp"]).status == "held"
    released = client.post("/pfi/api/release", json=ids, headers=token("operateur")).json()
    assert released == {"changed": [docs["pending_dmp"]]}
    kinds = [
        r["kind"] for r in client.get("/pfi/api/audit", headers=token("lecteur")).json()["rows"]
    ]
    assert "operator.hold" in kinds and "operator.release" in kinds
    assert client.post("/pfi/api/nothing", json=ids, headers=token("operateur")).status_code == 404


def test_cross_origin_posts_are_refused(client, docs):
    headers = {**token("operateur"), "Origin": "http://evil.example"}
    body = {"deliveries": [docs["pending_dmp"]]}
    assert client.post("/pfi/api/hold", json=body, headers=headers).status_code == 403


def test_pages_render_in_french_and_mask_identity_for_a_viewer(client, docs):
    viewer = token("lecteur")
    search = client.get("/pfi/", params={"what": "deliveries"}, headers=viewer)
    assert search.status_code == 200 and "Identifiant unique du document" in search.text
    assert INS not in search.text and "masqué" in search.text
    page = client.get(f"/pfi/documents/{docs['sent_doc']}", headers=viewer)
    assert page.status_code == 200 and "Chronologie" in page.text and INS not in page.text
    assert "Rejouer" not in page.text  # a viewer has no action buttons
    assert client.get(f"/pfi/documents/{docs['sent_doc']}", headers=token("admin")).text.count(INS)
    found = client.get(
        "/pfi/",
        params={"ref": "1.2.250.1.999.1.1^console-failed"},
        headers=viewer,
        follow_redirects=False,
    )
    assert found.status_code == 303 and found.headers["location"].endswith(
        f"/pfi/documents/{docs['failed_doc']}"
    )
    assert "Journal des opérateurs" in client.get("/pfi/audit", headers=viewer).text
    assert (
        client.get(f"/pfi/documents/{docs['sent_doc']}/identity", headers=viewer).status_code == 403
    )


def test_the_replay_form_replays_and_redirects_to_the_timeline(client, docs, ledger):
    ledger.mark_delivery(docs["failed_dmp"], "failed", reason_code="DMP_DOWN", actor="cli")
    form = {
        "action": "replay",
        "delivery": str(docs["failed_dmp"]),
        "reason": "essai",
        "back": f"/documents/{docs['failed_doc']}",
    }
    answer = client.post(
        "/pfi/actions", data=form, headers=token("operateur"), follow_redirects=False
    )
    assert answer.status_code == 303
    assert answer.headers["location"].startswith(f"/pfi/documents/{docs['failed_doc']}?done=")
    assert ledger.get_delivery(docs["failed_dmp"]).status == "pending"
    assert client.post("/pfi/actions", data=form, headers=token("lecteur")).status_code == 403


def test_the_plugin_adds_a_menu_entry_to_the_airflow_ui(client):
    answer = client.get("/api/v2/plugins", headers=token("admin"))
    assert answer.status_code == 200
    assert "pfi-console" in answer.text and "Console PFI" in answer.text


def test_the_indicators_dashboard_counts_this_months_sends_per_finess_and_channel(client, docs):
    assert client.get("/pfi/api/dashboard").status_code == 401
    figures = client.get("/pfi/api/dashboard", headers=token("lecteur")).json()
    (site,) = [s for s in figures["sites"] if s["key"] == GEO]
    month = {c["channel"]: c for c in site["periods"]["month"]["summary"]}
    assert month["DMP (flux)"]["success"] >= 1 and month["DMP (flux)"]["failure"] >= 0
    assert month["MSSanté professionnels"]["failure"] == 1  # the refused mail
    assert site["periods"]["previous_year"]["types"] == []
    page = client.get("/pfi/indicateurs", params={"period": "year"}, headers=token("lecteur"))
    assert page.status_code == 200 and "Année en cours" in page.text and GEO in page.text


def test_the_monthly_csv_is_the_report_dags_file(client, docs, ledger, tmp_path):
    from pfi.flows.stats import HEADERS, build_reports, months_covered, to_csv

    month = datetime.now(UTC).astimezone(ZoneInfo("Europe/Paris")).date().replace(day=1)
    answer = client.get(
        "/pfi/indicateurs.csv",
        params={"finess": GEO, "month": f"{month:%Y-%m}"},
        headers=token("lecteur"),
    )
    assert answer.status_code == 200
    assert answer.headers["content-disposition"] == (
        f'attachment; filename="indicateurs_{GEO}_{month:%Y-%m}.csv"'
    )
    months = months_covered(month)
    following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    expected = build_reports(ledger.indicator_counts(months[0], following), months, [GEO])[GEO]
    assert answer.content == to_csv(expected)
    assert answer.content.startswith("\ufeff".encode() + ";".join(HEADERS).encode())
    bad = client.get("/pfi/indicateurs.csv", params={"month": "x"}, headers=token("lecteur"))
    assert bad.status_code == 400


def test_a_searchs_deliveries_are_replayed_after_their_plan_is_shown(client, ledger):
    geo = "130000000"
    failed = record_document(ledger, "1.2.250.1.999.1.1^bulk-1", "dmp", finess_geo=geo)
    sent = record_document(ledger, "1.2.250.1.999.1.1^bulk-2", "dmp", finess_geo=geo)
    ledger.mark_delivery(failed.delivery_id, "failed", reason_code="DMP_DOWN", actor="cli")
    ledger.mark_delivery(sent.delivery_id, "sent", partner_ref="urn:b", actor="cli")
    form = {"finess_geo": geo, "channel": "dmp"}
    assert client.post("/pfi/replay-matching", data=form, headers=token("lecteur")).status_code == (
        403
    )
    plan = client.post("/pfi/replay-matching", data=form, headers=token("operateur"))
    assert plan.status_code == 200 and 'id="plan-duplicate">1<' in plan.text
    assert 'id="plan-attempt">1<' in plan.text and "doublon" in plan.text
    assert ledger.get_delivery(failed.delivery_id).status == "failed"  # a plan changes nothing
    done = client.post(
        "/pfi/replay-matching",
        data={**form, "confirm": "1", "reason": "panne DMP terminée"},
        headers=token("operateur"),
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"].startswith("/pfi/audit?done=")
    assert ledger.get_delivery(failed.delivery_id).status == "pending"
    assert not [d for d in ledger.deliveries_of(sent.document_id) if d.replay_of]  # no force
