"""The JSON API of covplan serve (docs/serve.md) on a real uvicorn server: edits, undo/redo, reset,
variants, plan YAML that covplan run reproduces, every bad request refused with the bilingual
message and the state unchanged, and the token."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from coverage.cli import app as cli_app
from coverage.serve.app import create_app, start_server

# an uncovered place of the demo county (elderly, rural): a day-care centre here covers new people
ADD = {"name": "测试日间照料中心", "category": "elderly", "ftype": "day_care", "lon": 108.1215, "lat": 35.2313}


def covered(summary: dict, service: str = "elderly") -> float:
    return summary["categories"][service]["population_covered"]


def test_summary_has_the_categories_block_and_no_change(client):
    s = client.get("/api/summary").json()
    assert set(s["categories"]) == {"school", "clinic", "elderly", "fitness"}
    cat = s["categories"]["elderly"]
    assert {"population", "population_covered", "share_covered", "by_unit", "change"} <= set(cat)
    assert cat["change"] == {"population_covered": 0.0, "share_covered": 0.0}
    assert s["urban_rural_circle"]["population_covered"] > 0


def test_add_undo_redo_reset(client):
    base = covered(client.get("/api/summary").json())
    r = client.post("/api/changes", json={"add": [ADD]})
    assert r.status_code == 200
    s = r.json()
    assert covered(s) > base and s["elapsed_ms"] >= 0
    assert s["categories"]["elderly"]["change"]["population_covered"] == pytest.approx(covered(s) - base)
    fac = client.get("/api/facilities").json()["features"]
    new = [f for f in fac if f["properties"]["new"]]
    assert [f["properties"]["name"] for f in new] == [ADD["name"]]
    assert covered(client.post("/api/undo").json()) == base
    assert covered(client.post("/api/redo").json()) == covered(s)
    assert covered(client.post("/api/reset").json()) == base


BAD = [
    ({"remove": ["NO-SUCH-ID"]}, "change_unknown_id"),
    ({"upgrade": [{"id": "NO-SUCH-ID", "capacity": 3}]}, "change_unknown_id"),
    ({"move": [{"id": "NO-SUCH-ID", "lon": 107.9, "lat": 35.3}]}, "change_unknown_id"),
    ({"add": [{**ADD, "ftype": "no_such_type"}]}, "change_unknown_ftype"),
    ({"add": [{**ADD, "category": "no_such_service", "ftype": None}]}, "change_unknown_category"),
    ({"add": [{**ADD, "lon": 100.0, "lat": 30.0}]}, "change_far_outside"),
    ({"add": [{**ADD, "lon": ADD["lat"], "lat": ADD["lon"]}]}, "change_lonlat_swapped"),
    ({"add": [{**ADD, "lon": "east"}]}, "schema"),
    ({"add": [ADD], "rename": []}, "schema"),
    ({"move": [{"id": "x"}]}, "schema"),
    ([1, 2], "schema"),
]


@pytest.mark.parametrize(("body", "code"), BAD)
def test_bad_changes_are_refused_and_change_nothing(client, body, code):
    before = client.get("/api/summary").json()
    r = client.post("/api/changes", json=body)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == code
    assert err["zh"] and err["en"] and err["zh"] != err["en"]
    after = client.get("/api/summary").json()
    assert after["version"] == before["version"] and after["categories"] == before["categories"]


def test_a_bad_item_among_good_ones_changes_nothing(client):
    before = client.get("/api/summary").json()
    r = client.post("/api/changes", json={"add": [ADD], "remove": ["NO-SUCH-ID"]})
    assert r.status_code == 400
    assert client.get("/api/summary").json()["categories"] == before["categories"]
    assert not any(f["properties"]["new"] for f in client.get("/api/facilities").json()["features"])


def test_malformed_json_and_other_bad_requests(client):
    r = client.post("/api/changes", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_json"
    assert client.get("/api/summary", params={"variant": "nope"}).status_code == 404
    assert client.get("/api/layers/nope").status_code == 400
    assert client.post("/api/best", json={"service": "elderly", "n": 0}).status_code == 400
    assert client.post("/api/best", json={"service": "nope", "n": 2}).status_code == 400
    assert client.post("/api/variants", json={"name": "a/b"}).status_code == 400
    assert client.get("/assets/leaflet/../../../../etc/passwd").status_code == 404


def test_best_sites_proposals_can_be_accepted(client):
    base = covered(client.get("/api/summary").json())
    props = client.post("/api/best", json={"service": "elderly", "n": 2}).json()["proposals"]
    assert len(props) == 2 and props[0]["new_covered"] >= props[1]["new_covered"] > 0
    s = client.post("/api/changes", json={"add": [{k: p[k] for k in ("name", "ftype", "lon", "lat", "capacity")}
                                                  | {"category": p["service"]} for p in props]}).json()
    # the greedy order's marginal gains add up to the new figure
    assert covered(s) == pytest.approx(base + sum(p["new_covered"] for p in props), rel=1e-9)


def test_variants_are_independent(client):
    client.post("/api/changes", json={"add": [ADD]})
    one = client.get("/api/summary").json()
    r = client.post("/api/variants", json={"name": "空白方案"})
    assert r.status_code == 200 and r.json()["current"] == "空白方案"
    blank = client.get("/api/summary").json()
    assert blank["categories"]["elderly"]["change"]["population_covered"] == 0
    cmp = client.get("/api/compare", params={"a": "方案1", "b": "空白方案"}).json()
    assert covered(cmp["a"]) == covered(one) and covered(cmp["b"]) == covered(blank)
    assert client.post("/api/variants", json={"name": "空白方案"}).status_code == 400


def test_plan_yaml_is_reproduced_by_covplan_run(client, session, tmp_path):
    fac = session.inputs.facilities
    fid_move, fid_up, fid_rm = (str(fac["fid"].iloc[i]) for i in (5, 7, 40))
    client.post("/api/changes", json={"add": [ADD]}).raise_for_status()
    client.post("/api/changes", json={"move": [{"id": fid_move, "lon": 107.93, "lat": 35.31}],
                                      "upgrade": [{"id": fid_up, "capacity": 99, "ftype": "township_health_center"}],
                                      "remove": [fid_rm]}).raise_for_status()
    live = client.get("/api/summary").json()
    text = client.get("/api/plan.yaml").text
    doc = yaml.safe_load(text)
    assert doc["extends"] == "base.yaml" and doc["changes"]["remove"] == [fid_rm, fid_move]
    saved = Path(client.post("/api/save").json()["path"])
    assert saved.parent == session.path.parent and saved.read_text(encoding="utf-8") == text
    out = tmp_path / "run"
    res = CliRunner().invoke(cli_app, ["run", str(saved), "--out", str(out)])
    assert res.exit_code == 0, res.output
    ran = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    for key, cat in ran["categories"].items():
        assert live["categories"][key]["population_covered"] == pytest.approx(cat["population_covered"], rel=1e-9)
        assert [u["covered"] for u in live["categories"][key]["by_unit"]] == pytest.approx(
            [u["covered"] for u in cat["by_unit"]], rel=1e-9)


def test_token_is_required_when_set(session):
    srv, thread, port = start_server(create_app(session, token="s3cret"), "127.0.0.1", 0)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            assert c.get("/api/summary").status_code == 403
            assert c.get("/api/summary", params={"token": "wrong"}).status_code == 403
            assert c.post("/api/reset").status_code == 403
            assert c.get("/", params={"token": "s3cret"}).status_code == 200
            assert c.get("/api/summary", headers={"X-Covplan-Token": "s3cret"}).status_code == 200
    finally:
        srv.should_exit = True
        thread.join(5)


def test_cli_refuses_an_open_host_without_serving_files_elsewhere(tmp_path):
    # a bad --tiles is refused before anything is read
    res = CliRunner().invoke(cli_app, ["serve", str(tmp_path / "none.yaml"), "--tiles", "nope", "--no-browser"])
    assert res.exit_code == 1 and "tiles" in res.output
