"""Derive a country profile from reference indicators, with fixed, documented bounds.

Every derived value says which indicators and years it came from. Bounds are
constants chosen once against the real distribution of the shipped snapshot
(quantiles noted beside each) and never refitted to a request, so one
country's profile never moves because another country was added.
A value whose indicators are all missing stays missing: it is reported and
lowers the match's confidence; nothing is imputed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from scoring.profile import (
    LOW_UPPER,
    MEDIUM_UPPER,
    CountryProfile,
    Stage,
    piecewise_linear,
    rd_intensity_to_scale,
)


@dataclass(frozen=True, slots=True)
class Indicator:
    column: str  # column in data/country_indicators.csv
    code: str
    name: str
    publisher: str


INDICATORS: dict[str, Indicator] = {
    i.column: i
    for i in (
        Indicator(
            "rd_exp_pct_gdp",
            "GB.XPD.RSDV.GD.ZS",
            "R&D expenditure, % of GDP",
            "UNESCO UIS via World Bank WDI",
        ),
        Indicator(
            "researchers_per_million",
            "SP.POP.SCIE.RD.P6",
            "Researchers in R&D per million people",
            "UNESCO UIS via World Bank WDI",
        ),
        Indicator("gdp_per_capita_usd", "NY.GDP.PCAP.CD", "GDP per capita, current US$", "World Bank WDI"),
        Indicator(
            "gdp_per_capita_ppp_intl",
            "NY.GDP.PCAP.PP.CD",
            "GDP per capita, PPP, current intl $",
            "World Bank WDI (ICP)",
        ),
        Indicator("population", "SP.POP.TOTL", "Population, total", "World Bank WDI"),
        Indicator(
            "health_exp_per_capita_usd",
            "SH.XPD.CHEX.PC.CD",
            "Current health expenditure per capita, US$",
            "WHO GHED via World Bank WDI",
        ),
        Indicator(
            "gov_health_exp_pct_gdp",
            "GHED_GGHE-DGDP_SHA2011",
            "Domestic general government health expenditure, % of GDP",
            "WHO Global Health Expenditure Database",
        ),
        Indicator(
            "hospital_beds_per_1000",
            "SH.MED.BEDS.ZS",
            "Hospital beds per 1,000 people",
            "WHO/OECD via World Bank WDI",
        ),
        Indicator(
            "physicians_per_1000",
            "SH.MED.PHYS.ZS",
            "Physicians per 1,000 people",
            "WHO GHWF via World Bank WDI",
        ),
        Indicator(
            "manufacturing_va_pct_gdp",
            "NV.IND.MANF.ZS",
            "Manufacturing, value added, % of GDP",
            "World Bank WDI (2022-05 release)",
        ),
        Indicator(
            "hightech_exports_pct_manuf_exports",
            "TX.VAL.TECH.MF.ZS",
            "High-technology exports, % of manufactured exports",
            "UN Comtrade via World Bank WDI",
        ),
        Indicator("gov_effectiveness_est", "GE.EST", "Government Effectiveness, estimate", "World Bank WGI"),
        Indicator(
            "patent_apps_resident", "IP.PAT.RESD", "Patent applications, residents", "WIPO via World Bank WDI"
        ),
        Indicator(
            "fdi_net_inflows_pct_gdp",
            "BX.KLT.DINV.WD.GD.ZS",
            "Foreign direct investment, net inflows, % of GDP",
            "IMF BoP via World Bank WDI",
        ),
    )
}

# (value knots, scale knots): piecewise linear onto [0, 1]; the 1/3 and 2/3 knots are the level boundaries.
Bounds = tuple[tuple[float, ...], tuple[float, ...]]
_THIRDS = (0.0, LOW_UPPER, MEDIUM_UPPER, 1.0)
BOUNDS: dict[str, Bounds] = {
    # Snapshot quantiles (33 %, 67 %): 2.07, 4.52.
    "gov_health_exp_pct_gdp": ((0.0, 2.0, 5.0, 8.0), _THIRDS),
    # WGI estimates run about -2.5..+2.5 (a standard-normal score); 0 is the world average.
    "gov_effectiveness_est": ((-2.5, -0.5, 0.5, 2.5), _THIRDS),
    # Snapshot quantiles: 0.72, 2.93.
    "physicians_per_1000": ((0.0, 1.0, 3.0, 5.0), _THIRDS),
    # Snapshot quantiles: 1.59, 3.24.
    "hospital_beds_per_1000": ((0.0, 1.5, 4.0, 8.0), _THIRDS),
    # Snapshot quantiles: 314, 2116.
    "researchers_per_million": ((0.0, 500.0, 2500.0, 6000.0), _THIRDS),
    # Snapshot quantiles: 7.8, 13.4.
    "manufacturing_va_pct_gdp": ((0.0, 8.0, 15.0, 25.0), _THIRDS),
    # Snapshot quantiles: 2.8, 10.0.
    "hightech_exports_pct_manuf_exports": ((0.0, 3.0, 10.0, 30.0), _THIRDS),
    # Snapshot quantiles: 1.15, 3.36.
    "fdi_net_inflows_pct_gdp": ((0.0, 1.5, 4.0, 10.0), _THIRDS),
    # Snapshot quantiles of GDP per capita (US$): 3,900, 21,000; PPP figures run higher.
    "gdp_per_capita_ppp_intl": ((1000.0, 10000.0, 35000.0, 70000.0), _THIRDS),
}

# How each profile input is derived: the indicators, each with its share.
# The government-will proxy leans on public health spending (a revealed willingness to fund
# health from the budget) and only partly on government effectiveness, because governance
# quality alone would make poorer but willing countries look unwilling (shared/DESIGN.md).
RECIPES: dict[str, tuple[tuple[str, float], ...]] = {
    "public_investment_will": (("gov_health_exp_pct_gdp", 2 / 3), ("gov_effectiveness_est", 1 / 3)),
    "healthcare_capacity": (("physicians_per_1000", 0.5), ("hospital_beds_per_1000", 0.5)),
    "research_capacity": (("researchers_per_million", 1.0),),
    "manufacturing_base": (("manufacturing_va_pct_gdp", 0.5), ("hightech_exports_pct_manuf_exports", 0.5)),
    "private_sector_strength": (("fdi_net_inflows_pct_gdp", 0.5), ("gdp_per_capita_ppp_intl", 0.5)),
}
PROXIES = {"public_investment_will", "private_sector_strength"}

# Countries whose stage seeds/000 (note under Table 2) names outright; the seed wins over the rule.
STAGE_STATED: dict[str, Stage] = {
    "USA": Stage.LEADER,
    "GBR": Stage.LEADER,
    "DEU": Stage.LEADER,
    "SGP": Stage.CHASER,
    "KOR": Stage.CHASER,
    "CHN": Stage.CHASER,
}
STAGE_RULE = (
    "leader: high income, R&D >= 2.5 % of GDP and >= 4,000 researchers per million; "
    "chaser: any other high-income economy, and upper-middle income with R&D >= 1.0 % of GDP or "
    ">= 1,000 researchers per million; developing: low and lower-middle income, and upper-middle "
    "income below both bars. Countries named in seeds/000 (note under Table 2) take the stage the "
    "seed gives them."
)

Observation = tuple[float, int]  # (value, year)


@dataclass(frozen=True, slots=True)
class DerivedValue:
    value: Stage | float | None
    indicators: tuple[str, ...]  # columns used
    year: int | None  # latest year among the indicators used
    note: str


def _scale(column: str, value: float) -> float:
    return piecewise_linear(value, *BOUNDS[column])


def _blend(name: str, obs: Mapping[str, Observation]) -> DerivedValue:
    recipe = RECIPES[name]
    used = [(col, share) for col, share in recipe if col in obs]
    if not used:
        cols = ", ".join(col for col, _ in recipe)
        return DerivedValue(None, (), None, f"missing: no figure for {cols}")
    total = sum(share for _, share in used)
    value = sum(_scale(col, obs[col][0]) * share for col, share in used) / total
    parts = ", ".join(f"{col}={obs[col][0]:.4g} ({obs[col][1]})" for col, _ in used)
    absent = [col for col, _ in recipe if col not in obs]
    note = ("proxy from " if name in PROXIES else "from ") + parts
    if absent:
        note += f"; without {', '.join(absent)} (no figure)"
    return DerivedValue(
        min(1.0, max(0.0, value)), tuple(c for c, _ in used), max(obs[c][1] for c, _ in used), note
    )


def derive_stage(iso3: str, income_group: str | None, obs: Mapping[str, Observation]) -> DerivedValue:
    """Innovation stage by the seed's statement where it names the country, else by STAGE_RULE."""
    if iso3 in STAGE_STATED:
        return DerivedValue(STAGE_STATED[iso3], (), None, "stated in seeds/000, note under Table 2")
    rd = obs.get("rd_exp_pct_gdp")
    researchers = obs.get("researchers_per_million")
    used = tuple(c for c in ("rd_exp_pct_gdp", "researchers_per_million") if c in obs)
    year = max((obs[c][1] for c in used), default=None)
    if income_group in ("Low income", "Lower middle income"):
        return DerivedValue(Stage.DEVELOPING, used, year, f"{income_group} (World Bank FY2026)")
    if income_group not in ("High income", "Upper middle income"):
        return DerivedValue(None, used, year, "missing: no World Bank income group")
    if rd is None and researchers is None:
        return DerivedValue(
            None, (), None, "missing: no R&D or researcher figure for a middle/high-income economy"
        )
    rd_v = rd[0] if rd else math.nan
    res_v = researchers[0] if researchers else math.nan
    figures = f"{income_group}; R&D {rd_v:.2f} % of GDP; researchers {res_v:.0f} per million"
    if income_group == "High income" and rd_v >= 2.5 and res_v >= 4000:
        return DerivedValue(Stage.LEADER, used, year, figures)
    # A high-income economy below the leader bar has the means to catch up by government-led
    # clusters (the seed's chaser); "developing" is for economies that need donor support too.
    if income_group == "High income" or rd_v >= 1.0 or res_v >= 1000:
        return DerivedValue(Stage.CHASER, used, year, figures)
    return DerivedValue(Stage.DEVELOPING, used, year, figures)


def derive_rd(obs: Mapping[str, Observation]) -> DerivedValue:
    if "rd_exp_pct_gdp" not in obs:
        return DerivedValue(None, (), None, "missing: no R&D expenditure figure")
    value, year = obs["rd_exp_pct_gdp"]
    return DerivedValue(
        rd_intensity_to_scale(value), ("rd_exp_pct_gdp",), year, f"R&D {value:.4g} % of GDP ({year})"
    )


def derive_profile(
    iso3: str, income_group: str | None, obs: Mapping[str, Observation]
) -> tuple[CountryProfile, dict[str, DerivedValue]]:
    """The reference profile of one economy and how each value was derived."""
    derived: dict[str, DerivedValue] = {
        "innovation_stage": derive_stage(iso3, income_group, obs),
        "rd": derive_rd(obs),
    }
    for name in RECIPES:
        derived[name] = _blend(name, obs)
    stage = derived["innovation_stage"].value
    profile = CountryProfile(
        innovation_stage=stage if isinstance(stage, Stage) else None,
        **{k: v.value for k, v in derived.items() if k != "innovation_stage"},  # type: ignore[arg-type]
    )
    return profile, derived
