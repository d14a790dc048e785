"""Tests of coverage.standards: built-in presets, extends/merge by id, bad presets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from coverage import categories
from coverage.errors import InputError
from coverage.standards import BUILTIN_DIR, load_preset, list_presets

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
    """Spot-check that "Sx Lnnn <quote>" sources cite the right line (needs ../shared/seeds)."""
    if not SEEDS.is_dir():
        pytest.skip("seeds not available")
    checked = 0
    for name in BUILTINS:
        for r in [*load_preset(name).circles, *load_preset(name).presence]:
            m = re.match(r"(S\d) L(\d+) ([^;(]+)", r.source)
            if not m:
                continue
            quote = m.group(3).strip().split("…")[0][:8]
            assert quote in _seed_line(m.group(1), int(m.group(2))), (name, r.id, r.source)
            checked += 1
    assert checked >= 10


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
    assert tiers["gb5_kindergarten"].metres == 300 and tiers["gb5_kindergarten"].verified
    assert tiers["gb10_primary"].metres == 500
    assert tiers["gb15_chsc"].metres == 1000
    assert all(r.mode == "walk" and r.unit == "metres" for r in tiers.values())
    # non-inclusive: the 5-minute health-station tier does not count a 社区卫生服务中心
    assert "community_health_center" not in tiers["gb5_health_station"].ftypes
    # cn-default urban circles are switched off, rural ones kept
    assert not p.circle("clinic_urban_15min").enabled
    assert p.circle("clinic_rural_30min").enabled


def test_county_presets_carry_their_targets():
    prov = lambda n: {r.id: r for r in load_preset(n).active_provision()}  # noqa: E731
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
