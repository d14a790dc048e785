"""Tests of the service vocabulary and the type-name classifier."""

from __future__ import annotations

import re

import pandas as pd
import pyogrio
import pytest

from coverage.categories import FTYPES, SERVICES, classify, ftypes_of, unmapped_report
from coverage.settings import AGE_GROUPS

# Messy names and the keys a planner would expect (written by hand).
CASES = [
    ("社区卫生服务中心", "community_health_center"),
    ("城关街道社区卫生服务中心", "community_health_center"),
    ("东关第二社区卫生服务站", "community_health_station"),
    ("XX街道卫生服务中心", "community_health_center"),
    ("城关镇中心卫生院", "township_health_center"),
    ("乡镇卫生院", "township_health_center"),
    ("石门乡卫生院", "township_health_center"),
    ("南村村卫生室", "village_clinic"),
    ("示例县人民医院", "county_hospital"),
    ("示例县中医医院", "county_hospital"),
    ("医疗保健服务;综合医院;综合医院", "county_hospital"),
    ("诊所", "private_clinic"),
    ("李氏门诊部", "private_clinic"),
    ("amenity=clinic", "private_clinic"),
    ("doctors", "private_clinic"),
    ("hospital", "county_hospital"),
    ("区域养老服务中心", "regional_elderly_center"),
    ("乡镇区域性养老服务中心", "regional_elderly_center"),
    ("柳湖镇综合养老服务中心", "regional_elderly_center"),
    ("县级养老服务中心", "county_care_center"),
    ("示例县失能半失能特困人员供养服务中心", "county_care_center"),
    ("老年人日间照料中心", "day_care"),
    ("幸福长者之家", "elder_home"),
    ("农村互助幸福院", "elder_home"),
    ("互助老人幸福院", "elder_home"),
    ("老年助餐点", "meal_point"),
    ("老年食堂", "meal_point"),
    ("敬老院", "nursing_home"),
    ("县社会福利院", "nursing_home"),
    ("social_facility=nursing_home", "nursing_home"),
    ("nursing home", "nursing_home"),
    ("托育机构", "nursery"),
    ("阳光托儿所", "nursery"),
    ("幼儿园", "kindergarten"),
    ("科教文化服务;学校;幼儿园|生活服务;生活服务场所;生活服务场所", "kindergarten"),
    ("kindergarten", "kindergarten"),
    ("小学", "primary"),
    ("amenity=school", "primary"),
    ("初中", "junior"),
    ("第二初级中学", "junior"),
    ("中学", "junior"),
    ("九年一贯制学校", "nine_year"),
    ("教学点", "teaching_point"),
    ("全民健身中心", "fitness_center"),
    ("leisure=fitness_centre", "fitness_center"),
    ("sports_centre", "fitness_center"),
    ("体育公园", "sports_park"),
    ("健身路径", "fitness_path"),
    ("fitness_station", "fitness_path"),
    ("笼式足球场", "multi_court"),
    ("多功能运动场", "multi_court"),
    ("篮球场", "multi_court"),
    ("leisure=pitch", "multi_court"),
    ("健身步道", "trail"),
    ("体育场", "stadium"),
    ("体育休闲服务;运动场馆;综合体育馆", "stadium"),
    ("  幼儿园 ", "kindergarten"),
    ("ＫＩＮＤＥＲＧＡＲＴＥＮ", "kindergarten"),  # full-width
    ("day_care", "day_care"),  # a key is itself
    ("village_clinic", "village_clinic"),
]
# Names that must NOT map (and the reason a broader rule would catch them).
NOT_MAPPED = ["宠物医院", "大药房", "药店", "驾校", "培训学校", "澳门大学", "高级中学", "疗养院",
              "养老保险服务中心", "courthouse", "park", "restaurant", "", None]


@pytest.mark.parametrize(("name", "ftype"), CASES)
def test_classify_table(name, ftype):
    out = classify([name])
    assert out.loc[0, "ftype"] == ftype
    assert out.loc[0, "category"] == FTYPES[ftype].service


@pytest.mark.parametrize("name", NOT_MAPPED)
def test_not_mapped(name):
    out = classify([name])
    assert pd.isna(out.loc[0, "ftype"]) and pd.isna(out.loc[0, "category"])


def test_vocabulary_consistent():
    assert set(SERVICES) == {"school", "clinic", "elderly", "fitness"}
    assert SERVICES["school"].label == "学校/教育"
    for t in FTYPES.values():
        assert t.service in SERVICES
        assert t.tier in {"county", "township", "village", "community"}
        assert all(g in AGE_GROUPS for g in t.age_groups)
    assert FTYPES["nine_year"].age_groups == ("age6_11", "age12_14")
    assert FTYPES["nursery"].capacity_unit == "托位"
    assert FTYPES["day_care"].age_group == "age60plus"
    assert FTYPES["village_clinic"].age_group == "all"
    assert ftypes_of("fitness") == ["fitness_center", "sports_park", "fitness_path", "multi_court", "trail", "stadium"]


def test_classify_keeps_order_and_length():
    names = ["敬老院", None, "小学", "敬老院", float("nan"), "药房"]
    out = classify(names)
    assert list(out.columns) == ["name", "category", "ftype", "rule"]
    assert len(out) == 6
    assert out["ftype"].tolist()[0] == "nursing_home" and out["ftype"].tolist()[3] == "nursing_home"
    assert out["ftype"].tolist()[2] == "primary"
    assert out["rule"].tolist()[5].startswith("excluded")


def test_unmapped_report_counts():
    rep = unmapped_report(["药房", "药房", "殡仪馆", "小学", "", None, "殡仪馆", "殡仪馆"])
    assert rep["name"].tolist() == ["殡仪馆", "药房"]
    assert rep["count"].tolist() == [3, 2]
    assert rep["excluded"].tolist() == [False, True]


def test_amap_macau(shared_data):
    """Every Amap Macau file classifies without error; the known school/clinic/sports types map."""
    shares = {}
    for f in sorted((shared_data / "macau" / "amap_poi_csv").glob("*.csv")):
        d = pd.read_csv(f, encoding="utf-8-sig")
        c = classify(d["type"])
        assert len(c) == len(d)
        shares[f.stem] = c["category"].notna().mean()
        # smallType keys a planner would map by hand
        small = d["smallType"].str.split("|").str[0]
        for st, ft in {"幼儿园": "kindergarten", "小学": "primary", "中学": "junior", "综合医院": "county_hospital",
                       "诊所": "private_clinic", "卫生院": "township_health_center", "综合体育馆": "stadium",
                       "健身中心": "fitness_center"}.items():
            if (small == st).any():
                got = classify(small[small == st])["ftype"]
                assert (got == ft).all(), (st, got.unique())
        # pharmacies and pet clinics never become clinics
        assert not c.loc[d["type"].str.contains("药房|宠物"), "category"].notna().any()
    # measured: education 22 %, medical 49 %, sports 20 % of all POIs are mission facilities
    assert 0.15 < shares["macau_amap_education_culture"] < 0.35
    assert 0.4 < shares["macau_amap_medical_healthcare"] < 0.6
    assert 0.1 < shares["macau_amap_sports_leisure"] < 0.3


def test_jiangsu_osm_fclass(shared_data):
    d = pyogrio.read_dataframe(shared_data / "china_provinces_osm_pois" / "jiangsu_gis_osm_pois_free_1.shp", read_geometry=False)
    c = classify(d["fclass"])
    counts = c.groupby("ftype").size()
    # Geofabrik fclass counts quoted in SOURCES.md: school 217, kindergarten 93, hospital 174, clinic 159
    assert counts["kindergarten"] == (d["fclass"] == "kindergarten").sum() == 93
    assert counts["county_hospital"] == 174
    assert (c.loc[d["fclass"] == "school", "ftype"] == "primary").all()
    assert (c.loc[d["fclass"].isin(["restaurant", "bank", "pharmacy", "university", "college"]), "category"].isna()).all()
    rep = unmapped_report(d["fclass"])
    assert rep["count"].sum() == c["category"].isna().sum()


# Abbreviated and colloquial names as they appear in county lists and Amap/OSM names.
ABBREVIATED = [
    ("县一中", "junior"), ("城关二中", "junior"), ("第十二中", "junior"), ("师大附中", "junior"),
    ("县民中", "junior"), ("实验中学", "junior"),
    ("城关镇中心小学", "primary"), ("东关村小学", "primary"), ("城关二小", "primary"), ("实验小学", "primary"),
    ("县实小", "primary"), ("师院附小", "primary"), ("城关一小", "primary"), ("城关镇中心校", "primary"),
    ("东山完小", "primary"), ("西河村小", "primary"),
    ("西河教学点", "teaching_point"), ("东山九年制学校", "nine_year"), ("城关十二年一贯制学校", "nine_year"),
    ("县一幼", "kindergarten"), ("城关中心幼", "kindergarten"),
    ("东山村卫生所", "village_clinic"), ("南岗村卫生站", "village_clinic"), ("李氏诊所", "private_clinic"),
    ("城东社区卫生服务站", "community_health_station"),
    ("西河乡敬老院", "nursing_home"), ("东山村互助幸福院", "elder_home"), ("福寿颐养院", "nursing_home"),
    ("朝阳养老驿站", "day_care"),
    ("县全民健身中心", "fitness_center"), ("东山村篮球场", "multi_court"), ("西河村健身广场", "fitness_path"),
]
# Forms that look like one of the above but are not a service facility.
ABBREVIATED_NOT = ["一中路", "一中家属院", "一中路口", "城关二小区", "一小时便民圈", "村小卖部", "县职中", "城关职高",
                   "市民中心", "健身器材店", "体育用品专卖店", "中心广场", "第三小组"]


@pytest.mark.parametrize(("name", "ftype"), ABBREVIATED)
def test_abbreviated_names(name, ftype):
    assert classify([name]).loc[0, "ftype"] == ftype


@pytest.mark.parametrize("name", ABBREVIATED_NOT)
def test_abbreviation_lookalikes_not_mapped(name):
    assert pd.isna(classify([name]).loc[0, "ftype"])


def test_centre_school_is_primary_not_a_centre_of_another_service():
    # 中心小学 is a primary school (township tier), not a 中心 of another service; 第一中心医院 a hospital
    c = classify(["城关镇中心小学", "第一中心医院", "东关小学"])
    assert c["ftype"].tolist() == ["primary", "county_hospital", "primary"]
    assert FTYPES["primary"].tier == "township"


def test_service_vocabulary_is_complete_and_distinct():
    """One place for every name of a service: long/short Chinese, English, colour, sheet."""
    from coverage.categories import service_label

    for key, s in SERVICES.items():
        assert s.key == key
        assert s.label and s.short and s.english and s.sheet
        assert s.short in s.label or s.short in s.sheet
        assert re.fullmatch(r"#[0-9a-f]{6}", s.colour)
        assert not set(s.sheet) & set('[]:*?/\\') and len(s.sheet) <= 31  # valid Excel sheet name
    for field in ("label", "short", "english", "colour", "sheet"):
        assert len({getattr(s, field) for s in SERVICES.values()}) == 4, field
    assert service_label("school") == "学校/教育" and service_label("school", short=True) == "学校"
    assert service_label("病有所医") == "病有所医" and service_label(None) == ""
