"""Tests of coverage.standards: built-in presets, extends/merge by id, bad presets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from coverage import categories
from coverage.errors import InputError
from coverage.standards import BUILTIN_DIR, describe, list_presets, load_preset
from coverage.standards.documents import cite, documents, seeds_cited

SEEDS = Path(__file__).resolve().parents[1].parent / "shared" / "seeds"
BUILTINS = ["cn-default", "gb50180", "huaibei", "kongtong", "nanqiao", "renhuai"]


def test_list_presets_has_all_builtins():
    assert list_presets() == BUILTINS


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_loads_and_every_rule_has_source(name):
    p = load_preset(name)
    assert p.name == name
    rules = [*p.circles, *p.presence, *p.provision]
    assert rules
    for r in rules:
        assert r.source.strip(), r.id
        assert isinstance(r.verified, bool)
        assert set(r.ftypes) <= set(categories.FTYPES)
    for t in p.projects.values():
        assert t.source.strip()
    # every service has a headline with at least one enabled rule, urban and rural
    for service in categories.SERVICES:
        sides = p.headline(service)
        assert "urban" in sides and "rural" in sides, (name, service)


def _seed_line(seed: str, line: int) -> str:
    files = sorted(SEEDS.glob(f"{int(seed[1:]):03d}_*.txt"))
    return files[0].read_text(encoding="utf-8").splitlines()[line - 1]


def test_seed_citations_point_at_the_quoted_text():
    """Every "Sx Lnnn <quote>" of a circle or presence rule cites the line holding the quote (needs
    ../shared/seeds)."""
    if not SEEDS.is_dir():
        pytest.skip("seeds not available")
    checked = 0
    for name in BUILTINS:
        p = load_preset(name)
        rules = [*p.circles, *p.presence, *([p.urban_rural_circle] if p.urban_rural_circle else [])]
        for r in rules:
            for part in r.source.split(";"):
                m = re.match(r"\s*(S\d) L(\d+) ([^;(]+)", part)
                if not m:
                    continue
                quote = m.group(3).strip().split("…")[0][:8]
                assert quote in _seed_line(m.group(1), int(m.group(2))), (name, r.id, part)
                checked += 1
    assert checked >= 40


def test_cn_default_core_values():
    p = load_preset("cn-default")
    assert p.circle("clinic_urban_15min").minutes == 15
    assert p.circle("clinic_urban_15min").mode == "walk"
    assert p.circle("clinic_rural_30min").minutes == 30
    assert p.circle("clinic_rural_30min").applies_to == "rural"
    assert p.circle("school_primary_rural_15min").verified is False  # our assumption
    urc = p.urban_rural()
    assert urc is not None and urc.metres == 15000 and urc.column == "t_urban_rural_15km"
    pres = {r.id: r for r in p.presence}
    assert pres["clinic_village_clinic_per_village"].unit_kind == "行政村"
    assert pres["clinic_village_clinic_per_village"].within_m == 1000
    assert pres["elderly_regional_center_half_units"].target_share == 0.5
    assert p.population_basis == "常住"


def test_gb50180_tiers_are_metres_and_non_inclusive():
    p = load_preset("gb50180")
    tiers = {r.id: r for r in p.active_circles() if r.id.startswith("gb")}
    assert tiers["gb5_kindergarten"].metres == 300
    # we do not hold GB 50180's text: no tier is verified, the 300 m 幼儿园 radius included
    assert not any(r.verified for r in tiers.values())
    assert {r.basis for r in tiers.values()} == {"national"} and p.document == "GB50180"
    assert tiers["gb10_primary"].metres == 500
    assert tiers["gb15_chsc"].metres == 1000
    assert all(r.mode == "walk" and r.unit == "metres" for r in tiers.values())
    # non-inclusive: the 5-minute health-station tier does not count a 社区卫生服务中心
    assert "community_health_center" not in tiers["gb5_health_station"].ftypes
    # cn-default urban circles are switched off, rural ones kept
    assert not p.circle("clinic_urban_15min").enabled
    assert p.circle("clinic_rural_30min").enabled


def test_county_presets_carry_their_targets():
    prov = lambda n: {r.id: r for r in load_preset(n).active_provision()}
    assert prov("kongtong")["childcare_places_per_1000"].target == 4.5
    assert prov("kongtong")["medical_beds_per_1000"].target == 9
    assert prov("kongtong")["elderly_beds_total"].per is None
    assert prov("renhuai")["childcare_places_per_1000"].target == 4.8
    assert prov("renhuai")["sports_area_per_person"].target == 2.37
    assert prov("huaibei")["sports_area_per_person"].comparison == ">"
    assert prov("huaibei")["childcare_places_per_1000"].target == 4.6
    assert prov("nanqiao")["elderly_beds_per_1000_aged"].group == "age60plus"
    assert prov("nanqiao")["medical_beds_per_1000"].target == 3
    assert "childcare_places_per_1000" not in prov("nanqiao")
    assert load_preset("renhuai").lead("clinic") == "市卫生健康局"
    assert load_preset("nanqiao").lead("school", "nursery") == "区卫计委"


def test_user_preset_overrides_adds_and_disables(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text(
        """
name: mine
extends: cn-default
circles:
  - id: clinic_rural_30min
    minutes: 20
  - id: fitness_rural_15min
    enabled: false
  - id: clinic_rural_ebike
    service: clinic
    ftypes: [village_clinic]
    applies_to: rural
    mode: ebike
    minutes: 10
    source: my county
    verified: false
services:
  clinic:
    lead: 某县卫生健康局
""",
        encoding="utf-8",
    )
    p = load_preset(f)
    r = p.circle("clinic_rural_30min")
    assert r.minutes == 20 and r.mode == "drive"  # only minutes overridden
    assert r.source.startswith("S1 L75")
    assert not p.circle("fitness_rural_15min").enabled
    assert "fitness_rural_15min" not in [c.id for c in p.active_circles()]
    assert p.circle("clinic_rural_ebike").minutes == 10
    assert p.lead("clinic") == "某县卫生健康局"
    assert p.services["clinic"].headline["urban"] == ["clinic_urban_15min"]  # kept from parent
    assert p.headline("fitness") == {"urban": [p.circle("fitness_urban_15min")]}
    assert p.files == ["builtin:cn-default", str(f.resolve())]


def test_extends_chain_through_a_file(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: kongtong\nprovision:\n  - {id: elderly_beds_total, target: 4000}\n",
                                     encoding="utf-8")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nname: b\n", encoding="utf-8")
    p = load_preset(tmp_path / "b.yaml")
    assert {r.id: r for r in p.provision}["elderly_beds_total"].target == 4000
    assert p.county == "崆峒区"
    assert len(p.files) == 4


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("circles:\n  - {id: clinic_rural_30min, minutes: -5}\n", "circles[id=clinic_rural_30min].minutes"),
        ("circles:\n  - {id: clinic_rural_30min, metres: 500}\n", "circles[id=clinic_rural_30min]"),
        ("circles:\n  - {id: clinic_rural_30min, ftypes: [hospitalx]}\n", "circles[id=clinic_rural_30min].ftypes"),
        ("circles:\n  - {id: clinic_rural_30min, group: age99}\n", "circles[id=clinic_rural_30min].group"),
        ("circles:\n  - {id: new_rule, service: school}\n", "circles[id=new_rule]"),
        ("presence:\n  - {id: clinic_thc_per_township, unit_kind: 省}\n", "presence[id=clinic_thc_per_township].unit_kind"),
        ("circles:\n  - {minutes: 5}\n", "circles[0].id"),
        ("services:\n  clinic:\n    headline: {urban: [nope]}\n", "services"),
    ],
)
def test_bad_preset_names_file_and_key(tmp_path, body, key):
    f = tmp_path / "bad.yaml"
    f.write_text("extends: cn-default\n" + body, encoding="utf-8")
    with pytest.raises(InputError) as ei:
        load_preset(f)
    prob = ei.value.problem
    assert prob.file == str(f.resolve()) or prob.file == str(f)
    assert prob.field is not None and prob.field.startswith(key)
    assert prob.zh and prob.en


def test_unknown_name_missing_file_bad_yaml_and_cycle(tmp_path):
    with pytest.raises(InputError, match="cn-default"):
        load_preset("no-such-preset")
    with pytest.raises(InputError):
        load_preset(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("circles: [\n", encoding="utf-8")
    with pytest.raises(InputError) as ei:
        load_preset(bad)
    assert ei.value.problem.row is not None
    (tmp_path / "x.yaml").write_text("extends: y.yaml\n", encoding="utf-8")
    (tmp_path / "y.yaml").write_text("extends: x.yaml\n", encoding="utf-8")
    with pytest.raises(InputError, match="cycle"):
        load_preset(tmp_path / "x.yaml")


def test_presets_are_package_data():
    assert BUILTIN_DIR.name == "standards"
    assert (BUILTIN_DIR / "__init__.py").is_file()
    assert all((BUILTIN_DIR / f"{n}.yaml").is_file() for n in BUILTINS)


def test_project_template_size_and_cost():
    p = load_preset("cn-default")
    t = p.project("regional_elderly_center")
    assert t.size_for(0) == 60
    assert t.size_for(2000) == 90  # 2000 × 45 / 1000
    assert t.size_for(10**6) == 150  # capped
    assert t.cost_for(60) == 600
    assert p.project("day_care").cost_for(20) == pytest.approx(30.6)


# --- provenance: basis own / national / reference ------------------------------------------------

COUNTIES = {"kongtong": "S0", "renhuai": "S1", "huaibei": "S2", "nanqiao": "S4"}


@pytest.mark.parametrize(("name", "seed"), sorted(COUNTIES.items()))
def test_county_rule_cites_its_own_plan_or_is_reference(name, seed):
    """Every rule a county preset runs either cites that county's plan (and only it) or is 参考."""
    p = load_preset(name)
    assert p.document == seed and p.county
    assert documents()[seed].place == p.county
    for r in p.rules():
        if p.is_reference(r):
            assert r.basis in ("national", "reference"), (name, r.id)
            assert p.basis_label(r).startswith("参考"), (name, r.id)
        else:
            assert r.basis == "own", (name, r.id)
            assert seeds_cited(r.source) == {seed}, (name, r.id, r.source)
            assert p.basis_label(r) == "本规划"
    # a rule citing only another county's plan is never the county's own
    for r in p.rules(active=False):
        cited = seeds_cited(r.source)
        if cited and seed not in cited:
            assert r.basis != "own", (name, r.id)


def test_own_and_reference_counts():
    """The split per county (own, 参考) of enabled rules; a change here must be deliberate."""
    got = {n: describe.counts(load_preset(n)) for n in BUILTINS}
    assert got == {
        "cn-default": (8, 14),
        "gb50180": (18, 10),
        "huaibei": (12, 10),
        "kongtong": (17, 6),
        "nanqiao": (5, 18),
        "renhuai": (8, 14),
    }


def test_cn_default_is_national_plus_reference():
    p = load_preset("cn-default")
    assert not p.county and p.document is None
    for r in p.rules():
        assert r.basis in ("national", "reference"), r.id
        cites = cite(r.source)
        if r.basis == "national":  # names a national text
            assert any(not c.doc.is_seed for c in cites), r.id
            assert not p.is_reference(r) and p.basis_label(r) == "国家"
        else:  # a seed plan's rule or our assumption
            assert p.is_reference(r) and p.basis_label(r) == "参考"
            assert seeds_cited(r.source) or not r.verified, r.id
    prov = {r.id: r for r in p.provision}
    # the national 2025 target (《“十四五”体育发展规划》); 2.5 was 崆峒区's own target
    assert prov["sports_area_per_person"].target == 2.6
    assert prov["sports_area_per_person"].basis == "national"
    assert not prov["sports_area_per_person"].verified  # quoted from memory, no text at hand
    assert prov["elderly_beds_per_1000_aged"].basis == "reference"  # 南谯区's 45
    pres = {r.id: r for r in p.presence}
    for rid in ("elderly_regional_center_half_units", "school_kindergarten_per_street"):
        assert pres[rid].basis == "reference"
    assert p.urban_rural().basis == "reference"  # 崆峒区's 15 km circle
    assert p.rule("urban_rural_15km") is p.urban_rural_circle
    with pytest.raises(KeyError):
        p.rule("no_such_rule")
    assert p.circle("clinic_rural_30min").basis == "reference"  # 仁怀市's 30-minute circle
    # a county inherits the national rule as 参考·国家
    k = load_preset("kongtong")
    care = k.rule("elderly_county_care_per_county")
    assert k.is_reference(care) and k.basis_label(care) == "参考·国家"


def test_verified_rests_on_a_text_we_hold():
    """``verified: true`` needs a cited seed line: national texts are not held."""
    assert not any(d.held for d in documents().values() if not d.is_seed)
    for name in BUILTINS:
        for r in load_preset(name).rules(active=False):
            if r.verified:
                assert any(c.doc.held for c in cite(r.source)), (name, r.id, r.source)


def test_provenance_fixes():
    hb = {r.id: r for r in load_preset("huaibei").presence}["elderly_center_per_township"]
    assert not hb.verified and "S2 L145" in hb.source and hb.basis == "own"
    rh = load_preset("renhuai").circle("elderly_rural_15min")
    assert "含农村" not in rh.note and not rh.verified
    assert "含农村" not in load_preset("cn-default").circle("elderly_rural_15min").note
    k = load_preset("kongtong")
    for rid in ("clinic_urban_15min", "elderly_urban_15min"):
        assert k.circle(rid).source.startswith("S0 L722") and k.circle(rid).basis == "own"
    assert {r.id: r for r in k.provision}["sports_area_per_person"].target == 2.5


def test_kongtong_childcare_circle():
    r = load_preset("kongtong").circle("childcare_urban_15min")
    assert (r.ftypes, r.group, r.mode, r.minutes, r.applies_to) == (["nursery"], "age0_2", "walk", 15, "urban")
    assert r.column == "t_childcare_urban_15min" and r.basis == "own"
    # not in cn-default: the demo's outputs keep their rules
    with pytest.raises(KeyError):
        load_preset("cn-default").circle("childcare_urban_15min")


def test_user_rule_basis_default_and_override(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text(
        "extends: kongtong\ncircles:\n"
        "  - {id: clinic_urban_15min, minutes: 10}\n"
        "  - {id: clinic_rural_ebike, service: clinic, ftypes: [village_clinic], applies_to: rural,"
        " mode: ebike, minutes: 10, source: my county, verified: false}\n",
        encoding="utf-8",
    )
    p = load_preset(f)
    assert p.circle("clinic_urban_15min").basis == "own"  # kept from kongtong
    assert p.circle("clinic_rural_30min").basis == "reference"  # kept from cn-default
    assert p.circle("clinic_rural_ebike").basis == "own"  # a user's new rule is their own
    f.write_text("extends: cn-default\ncircles:\n  - {id: clinic_rural_30min, basis: ours}\n", encoding="utf-8")
    with pytest.raises(InputError) as ei:
        load_preset(f)
    assert ei.value.problem.field.startswith("circles[id=clinic_rural_30min].basis")


# --- documents: titles and headings instead of "S0 L722" ------------------------------------------


def test_citation_reads_as_title_and_section():
    text = describe.source_text("S0 L722 对幼儿园、小学…")
    assert text.startswith("《平凉市崆峒区“十四五”公共服务规划》")
    assert "(一)科学合理布局公共服务设施" in text and "1.优化公共服务设施布局" in text and "第722行" in text
    text = describe.source_text("S0 L440 每个行政村办好1个村卫生室")
    assert "专栏2 基本公共服务补短板重点工程" in text and "医疗卫生" in text
    text = describe.source_text("S2 L347–353 托位")
    assert "专栏2 “十四五”社会发展与公共服务主要指标" in text and "第347–353行" in text
    assert "第二节 补齐基本公共服务短板" in describe.source_text("S2 L631")
    assert "专栏" not in describe.source_text("S2 L631")  # after 专栏7 ended
    text = describe.source_text("《全民健身计划(2021—2025年)》 …; S2 L631 …")
    assert text.startswith("《全民健身计划(2021—2025年)》(原文未在手,待核);《淮北市")
    assert describe.source_text("my county") == "my county"  # no known document: as written


def test_heading_index_matches_the_seeds():
    """The stored heading index equals a rebuild from the seed text (needs ../shared/seeds)."""
    if not SEEDS.is_dir():
        pytest.skip("seeds not available")
    from standards.build_documents import rebuild

    stored = {k: d.headings for k, d in documents().items() if d.is_seed}
    rebuilt = rebuild(SEEDS)["documents"]
    for key, heads in stored.items():
        assert [[h.line, h.kind, h.text] for h in heads] == rebuilt[key].get("headings", []), key
        doc = documents()[key]
        lines = (SEEDS / doc.file).read_text(encoding="utf-8").splitlines()
        for t in doc.tables:  # a table's first line holds its number
            assert t.title.split()[0].removeprefix("专栏") in lines[t.start - 1].replace(" ", ""), (key, t)


def test_target_text():
    k = load_preset("kongtong")
    assert describe.target_text(k.circle("school_kindergarten_urban_15min")) == "城镇 3–5岁 步行≤15分钟 可达 幼儿园"
    assert describe.target_text(k.urban_rural()) == "全体人口 距城区 ≤15 公里(道路网络距离,驾车)"
    pres = {r.id: r for r in k.presence}
    assert describe.target_text(pres["elderly_regional_center_half_units"]).startswith("≥50% 的乡镇(街道) 有 ≥1 处")
    assert describe.target_text(pres["clinic_village_clinic_per_village"]).startswith("每个行政村(村点 1000 米内)")
    prov = {r.id: r for r in k.provision}
    assert describe.target_text(prov["childcare_places_per_1000"]).startswith("全县(区) 每千人 托位 ≥4.5")
    assert "床位总量 ≥3925" in describe.target_text(prov["elderly_beds_total"])
    n = {r.id: r for r in load_preset("nanqiao").provision}
    assert "每千名60岁及以上人口 床位 ≥45" in describe.target_text(n["elderly_beds_per_1000_aged"])
    h = {r.id: r for r in load_preset("huaibei").provision}
    assert "人均 m² >2.6" in describe.target_text(h["sports_area_per_person"])


@pytest.mark.parametrize("name", BUILTINS)
def test_cli_standards_prints_titles_targets_and_basis(name):
    from typer.testing import CliRunner

    from coverage.cli import app

    res = CliRunner().invoke(app, ["standards", name])
    assert res.exit_code == 0, res.output
    p = load_preset(name)
    out = res.output
    assert out.count("      目标: ") == len(p.rules())
    assert out.count("      出处: ") == len(p.rules())
    for line in out.splitlines():
        if line.startswith("      出处: 《"):
            assert not re.search(r"\bS\d L\d", line.split("》", 1)[1] if "》" in line else line), line
    for r in p.rules():
        assert f"  {r.id}  [{p.basis_label(r)}]" in out
    if p.county:
        own, ref = describe.counts(p)
        assert f"本规划 {own} 条, 参考 {ref} 条" in out


def test_cli_standards_lists_presets_with_counts():
    from typer.testing import CliRunner

    from coverage.cli import app

    res = CliRunner().invoke(app, ["standards"])
    assert res.exit_code == 0
    assert "nanqiao" in res.output and "(本规划 5 条, 参考 18 条)" in res.output
