"""The 情景推演 panel of map.html, in a real browser: toggling candidates shows what ``covplan compare`` gives.

The demo is run once; two candidates whose catchments overlap are toggled in the page (as
elderly-care sites, and one as a school site) and the figures the page shows are compared with an independent comparison of the plan
that adds those candidates (``extends:`` the demo baseline, ``changes.add`` with the facility type
:func:`coverage.plans.candidate_ftypes` proposes, as the panel says).
"""

from __future__ import annotations

import json
import re
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from browser import CHROME_FLAGS, CHROMIUM, require_chromium
from coverage import pipeline, plans


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> tuple[pipeline.RunResult, Path, dict]:
    out = tmp_path_factory.mktemp("whatif") / "demo"
    result = pipeline.run_scenario(repo_root / "scenarios" / "demo_baseline.yaml", out)
    text = (out / "map.html").read_text(encoding="utf-8")
    m = re.search(r"covWhatIf\((\{.*?\}), \{", text)
    assert m, "map.html has no what-if panel"
    return result, out, json.loads(m.group(1))


def _best_sites(data: dict, service: str, n: int) -> list[int]:
    """The ``n`` candidates with the most groups of newly covered people for ``service``."""
    s = next(x for x in data["services"] if x["key"] == service)
    ranked = sorted(s["sites"], key=lambda i: (-len(s["sites"][i]), int(i)))
    return [int(i) for i in ranked[:n]]


def _overlapping_pair(data: dict, service: str) -> list[int]:
    """Two candidates that would newly cover the most people in common (counted once on the page)."""
    s = next(x for x in data["services"] if x["key"] == service)
    shared = {(i, j): sum(s["w"][g] for g in set(s["sites"][i]) & set(s["sites"][j]))
              for i, j in combinations(sorted(s["sites"], key=int), 2)}
    i, j = max(shared, key=lambda k: shared[k])
    assert shared[(i, j)] > 100 * 100, "the demo should have candidates whose catchments overlap"
    return [int(i), int(j)]


def _compare_plan(result: pipeline.RunResult, repo_root: Path, tmp: Path, picks: dict[str, list[int]]) -> pd.DataFrame:
    """``covplan compare`` of the baseline and the plan that adds the picked candidates."""
    model = result.model
    cands = model.inputs.candidates
    lonlat = cands.to_crs(4326).geometry
    add: list[dict[str, Any]] = []
    for service, idx in picks.items():
        ftypes = plans.candidate_ftypes(model, service, cands)
        add += [{"id": f"W{service}{i}", "name": str(cands["name"].iloc[i]), "category": service,
                 "ftype": str(ftypes[i]), "lon": float(lonlat.x.iloc[i]), "lat": float(lonlat.y.iloc[i])}
                for i in idx]
    base = repo_root / "scenarios" / "demo_baseline.yaml"
    plan = tmp / "plan.yaml"
    plan.write_text(yaml.safe_dump({"extends": str(base), "name": "what-if plan", "changes": {"add": add}},
                                   allow_unicode=True), encoding="utf-8")
    _, diff = plans.compare_scenarios(base, plan, tmp / "compare")
    return diff


def _page_figures(html: Path, profile: Path, service: str, picks: dict[str, list[int]], tick: bool = True) -> dict[str, Any]:
    """Open the map, tick (or untick) the picked sites per service, read the figures and the 乡镇 table of ``service``."""
    sync_api = require_chromium()
    url = html.resolve().as_uri()
    errors: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(str(profile), executable_path=str(CHROMIUM), args=CHROME_FLAGS,
                                                    headless=True, viewport={"width": 1280, "height": 860})
        try:
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.route("**/*", lambda route: route.continue_() if route.request.url == url else route.abort())
            page.goto(url, wait_until="load")
            page.click("#cov-whatif > summary")  # the panel opens folded, leaving the map free
            page.wait_for_selector("#cov-whatif .cov-wi-cov")
            before = {e.get_attribute("data-service"): e.inner_text() for e in page.locator(".cov-wi-cov").all()}
            note = page.locator(".cov-wi-note").inner_text()
            for sv, idx in picks.items():
                page.select_option("#cov-wi-service", label=_label(page, sv))
                for i in idx:
                    page.locator(f'#cov-wi-sites input[data-site="{i}"]').set_checked(tick)
            page.select_option("#cov-wi-service", label=_label(page, service))
            after = {e.get_attribute("data-service"): e.inner_text() for e in page.locator(".cov-wi-cov").all()}
            shares = {e.get_attribute("data-service"): e.inner_text() for e in page.locator(".cov-wi-share").all()}
            units = [[c.inner_text() for c in r.locator("td").all()] for r in page.locator(".cov-wi-unit").all()]
        finally:
            ctx.close()
    return {"before": before, "after": after, "shares": shares, "units": units, "errors": errors,
            "requests": [r for r in requests if r != url], "note": note}


def _label(page: Any, service: str) -> str:
    """The option text of ``service`` in the panel's service list (index of the ``data-service`` cell)."""
    keys = [e.get_attribute("data-service") for e in page.locator(".cov-wi-cov").all()]
    return page.locator("#cov-wi-service option").nth(keys.index(service)).inner_text()


def _people(text: str) -> float:
    return float(text.replace(",", ""))


def test_toggling_candidates_shows_the_compare_figures(demo: tuple, repo_root: Path, tmp_path: Path) -> None:
    result, out, data = demo
    # two elderly-care sites that share people (a person counts once), one school site
    picks = {"elderly": _overlapping_pair(data, "elderly"), "school": _best_sites(data, "school", 1)}
    page = _page_figures(out / "map.html", tmp_path / "profile", "elderly", picks)
    assert page["errors"] == [] and page["requests"] == []
    assert "仅可切换" in page["note"] and "Only the listed sites" in page["note"]
    summary = result.summary["categories"]
    for sv, text in page["before"].items():  # nothing toggled: the run's own figures
        assert abs(_people(text) - summary[sv]["population_covered"]) <= 1, sv
    diff = _compare_plan(result, repo_root, tmp_path, picks)
    county = diff[diff["unit_code"] == ""].set_index("service")
    for sv, text in page["after"].items():
        want = county.at[sv, "covered_plan"]
        assert abs(_people(text) - want) <= 1, (sv, text, want)
        assert page["shares"][sv] == f"{100 * want / county.at[sv, 'population_plan']:.1f}%"
    assert county.at["elderly", "gained"] > 100 and county.at["school", "gained"] > 10  # the toggles mattered
    units = diff[(diff["service"] == "elderly") & (diff["unit_code"] != "")]
    shown = {row[0]: _people(row[1]) for row in page["units"]}
    assert len(shown) == len(units)
    for r in units.itertuples():
        assert abs(shown[r.unit_name] - r.covered_plan) <= 1, r.unit_name


def test_unticking_the_sites_covplan_site_proposed_gives_the_baseline(demo: tuple, repo_root: Path, tmp_path: Path) -> None:
    result, _, _ = demo
    run = plans.site_scenario(repo_root / "scenarios" / "demo_baseline.yaml", tmp_path / "site", "elderly", add=2)
    html = tmp_path / "site" / "map.html"
    data = json.loads(re.search(r"covWhatIf\((\{.*?\}), \{", html.read_text(encoding="utf-8")).group(1))
    elderly = next(x for x in data["services"] if x["key"] == "elderly")
    assert len(elderly["on"]) == len(run.proposed) == 2
    assert [data["sites"][i][1] for i in elderly["on"]] == ["p", "p"]
    # the chosen candidates are listed once, as proposed sites
    assert not set(run.proposed["name"].str.split("（").str[0]) & {n for n, k in data["sites"] if k == "c"}
    page = _page_figures(html, tmp_path / "profile", "elderly", {"elderly": elderly["on"]}, tick=False)
    assert page["errors"] == []
    plan, base = run.plan.summary["categories"], result.summary["categories"]
    for sv, text in page["before"].items():  # opened: the plan's figures
        assert abs(_people(text) - plan[sv]["population_covered"]) <= 1, sv
    for sv, text in page["after"].items():  # proposed sites off: the baseline's
        assert abs(_people(text) - base[sv]["population_covered"]) <= 1, sv
    assert plan["elderly"]["population_covered"] - base["elderly"]["population_covered"] > 100


def _site_groups_reference(new, col_site, row_unit, weights):
    """The plain loop the what-if grouping replaced: one dict lookup per row."""
    groups, w, gu, site_groups = {}, [], [], {}
    for r in np.flatnonzero(np.diff(new.indptr) > 0):
        key = (int(row_unit[r]), tuple(sorted(col_site[new.indices[new.indptr[r]:new.indptr[r + 1]]].tolist())))
        g = groups.get(key)
        if g is None:
            g = groups[key] = len(w)
            w.append(0.0)
            gu.append(key[0])
            for s in key[1]:
                site_groups.setdefault(s, []).append(g)
        w[g] += float(weights[r])
    return w, gu, site_groups


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(0, 40), st.integers(1, 7), st.integers(1, 4), st.floats(0.0, 0.9))
def test_site_groups_equal_plain_loop(seed, n_rows, n_cols, n_units, density):
    """Vectorised grouping of the what-if rows equals the plain per-row loop exactly (groups, order, sums)."""
    import scipy.sparse as sp

    from coverage.pipeline import _site_groups

    rng = np.random.default_rng(seed)
    dense = rng.random((n_rows, n_cols)) < density
    new = sp.csr_matrix(dense.astype(float))
    col_site = rng.permutation(n_cols + 3)[:n_cols]  # distinct, not in column order
    row_unit = rng.integers(-1, n_units, n_rows)
    weights = rng.random(n_rows) * 100
    got = _site_groups(new, col_site, row_unit, weights)
    want = _site_groups_reference(new, col_site, row_unit, weights)
    assert got[1] == want[1] and got[2] == want[2]
    assert got[0] == want[0]  # same rows summed in the same order: bit-identical


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(0, 60), st.integers(1, 5), st.integers(1, 4))
def test_unique_rows_equal_numpy_unique(seed, n_rows, n_cols, span):
    """The lexsort grouping of rows equals ``np.unique(axis=0)``: first rows and groups, in order."""
    from coverage.pipeline import _unique_rows

    keys = np.random.default_rng(seed).integers(-1, span, (n_rows, n_cols))
    first, inv = _unique_rows(keys)
    if n_rows == 0:
        assert len(first) == 0 and len(inv) == 0
        return
    _, want_first, want_inv = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    assert first.tolist() == want_first.tolist()
    assert inv.tolist() == want_inv.ravel().tolist()


def test_panel_given_later_gives_the_same_page(demo: tuple, tmp_path: Path) -> None:
    """``write_map(whatif=callable)`` (the run computes the panel in a thread meanwhile) writes the
    same page as the panel's data given at once; the callable is called exactly once."""
    from coverage.report.map import write_map

    result, _out, data = demo
    calls = []

    def later() -> dict:
        calls.append(1)
        return data

    kw = {"units": result.model.inputs.units, "facilities": result.model.inputs.facilities,
          "title": "t", "run": result.summary.get("run")}
    now, lazy = write_map(tmp_path / "now.html", whatif=data, **kw), write_map(tmp_path / "lazy.html", whatif=later, **kw)
    assert calls == [1]
    assert now.read_bytes() == lazy.read_bytes()
    assert b"covWhatIf(" in lazy.read_bytes()
