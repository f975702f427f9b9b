"""Side-by-side comparisons: what-if scenarios on one request, or several countries; never stored."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import InvalidInput, ServiceError, located_in
from app.schemas import CriterionName, MatchRequest, Method, ProfileIn
from app.schemas_weights import COUNTRY_MODE_FIELDS, CompareRequest, Scenario
from app.services import matching, weight_profiles
from app.services.classifier_runtime import classifier_for_matching
from scoring.cluster_models import BY_ID, MODEL_IDS

MAX_ITEMS = 50
# rd_level and rd_intensity_pct are one input given two ways: a scenario's choice replaces the base's.
_SAME_INPUT = {"rd_level": "rd_intensity_pct", "rd_intensity_pct": "rd_level"}


def _merged_profile(base: ProfileIn, change: ProfileIn) -> ProfileIn:
    values = base.model_dump(exclude_none=True)
    for field, value in change.model_dump(exclude_none=True).items():
        values.pop(_SAME_INPUT.get(field, ""), None)
        values[field] = value
    return ProfileIn.model_validate(values)


def _scenario_request(base: MatchRequest, scenario: Scenario) -> MatchRequest:
    weights: dict[CriterionName, float] = {**(base.weights or {}), **(scenario.weights or {})}
    other_profile = scenario.weight_profile is not None
    return base.model_copy(
        update={
            "profile": _merged_profile(base.profile, scenario.profile),
            "weights": weights or None,
            "weight_profile": scenario.weight_profile if other_profile else base.weight_profile,
            # A scenario naming another profile means its latest version unless it pins one.
            "weight_profile_version": scenario.weight_profile_version
            if other_profile or scenario.weight_profile_version is not None
            else base.weight_profile_version,
        }
    )


def _scenario_changes(scenario: Scenario) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    profile = scenario.profile.model_dump(mode="json", exclude_none=True)
    if profile:
        changes["profile"] = profile
    if scenario.weights:
        changes["weights"] = scenario.weights
    if scenario.weight_profile is not None:
        changes["weight_profile"] = scenario.weight_profile
    if scenario.weight_profile_version is not None:
        changes["weight_profile_version"] = scenario.weight_profile_version
    return changes


Item = tuple[str, str, MatchRequest, dict[str, Any]]  # label, location in the body, request, changes


def _items(request: CompareRequest) -> tuple[str, list[Item]]:
    """The mode and the items to score, the base first."""
    scenario_mode = request.base is not None or request.scenarios is not None
    country_fields = {f for f in COUNTRY_MODE_FIELDS[1:] if getattr(request, f) is not None}
    if scenario_mode and (request.countries is not None or country_fields):
        named = sorted({"countries", *country_fields} & request.model_fields_set) or ["countries"]
        raise InvalidInput(
            named[0], "give either base with scenarios, or countries with common overrides, not both"
        )
    if scenario_mode:
        if request.base is None:
            raise InvalidInput("base", "scenarios need a base request to start from")
        if not request.scenarios:
            raise InvalidInput("scenarios", "give at least one scenario to compare with the base")
        count = 1 + len(request.scenarios)
        if count > MAX_ITEMS:
            raise InvalidInput(
                "scenarios", f"a comparison holds at most {MAX_ITEMS} items, the base included; got {count}"
            )
        names = [s.name for s in request.scenarios]
        for i, name in enumerate(names):
            if name == "base" or name in names[:i]:
                raise InvalidInput(f"scenarios.{i}.name", f"{name!r} is used twice; names identify the items")
        items: list[Item] = [("base", "base", request.base, {})]
        items += [
            (s.name, f"scenarios.{i}", _scenario_request(request.base, s), _scenario_changes(s))
            for i, s in enumerate(request.scenarios)
        ]
        return "scenarios", items

    if not request.countries:
        raise InvalidInput("countries", "give base with scenarios, or a list of countries")
    if len(request.countries) > MAX_ITEMS:
        raise InvalidInput(
            "countries", f"a comparison holds at most {MAX_ITEMS} items; got {len(request.countries)}"
        )
    codes = [c.upper() for c in request.countries]
    for i, code in enumerate(codes):
        if code in codes[:i]:
            raise InvalidInput(f"countries.{i}", f"{code} is listed twice")
    common: dict[str, Any] = {
        "profile": request.profile or ProfileIn.model_validate({}),
        "weights": request.weights,
        "weight_profile": request.weight_profile or "default",
        "weight_profile_version": request.weight_profile_version,
        "method": request.method or Method.HYBRID,
    }
    return "countries", [
        (code, f"countries.{i}", MatchRequest(country=code, **common), {"country": code})
        for i, code in enumerate(codes)
    ]


def _located(exc: ServiceError, where: str, *, shared: bool) -> ServiceError:
    """The same error, saying which item of the comparison it came from.

    A scenario (or the base) has fields of its own, so its errors sit under it (`scenarios.0.weights`).
    The countries of a comparison share the body's profile and weights: an error in those keeps its
    place in the body (`shared`), and only what concerns the country itself (an unknown code, reference
    data that leaves nothing to score) sits under the country (`countries.1`).
    """
    prefix = where.split(".")
    exc.detail = f"{where}: {exc.detail}"
    msg = str(exc.args[0]) if exc.args else exc.detail
    if not exc.errors or (shared and isinstance(exc, matching.Unscorable)):
        exc.errors = [{"loc": located_in([], *prefix), "msg": exc.errors[0]["msg"] if exc.errors else msg}]
    elif not shared:
        exc.errors = [{**e, "loc": located_in(e.get("loc", []), *prefix)} for e in exc.errors]
    return exc


def _summary(label: str, body: dict[str, Any], base: dict[str, Any] | None) -> str:
    top = BY_ID[body["recommended_model"]].name_en
    if base is None:
        return f"{label}: {top} first (robustness {body['robustness']:.2f})."
    if body["recommended_model"] == base["recommended_model"]:
        return f"{label}: {top} stays first (robustness {body['robustness']:.2f})."
    was = BY_ID[base["recommended_model"]].name_en
    return f"{label}: {top} now first, was {was} (robustness {body['robustness']:.2f})."


def _item(
    label: str, changes: dict[str, Any], body: dict[str, Any], base: dict[str, Any] | None
) -> dict[str, Any]:
    ranking = [{"model": r["model"], "rank": r["rank"], "score": r["score"]} for r in body["ranking"]]
    reference = {r["model"]: r for r in (base or body)["ranking"]}
    mine = {r["model"]: r for r in ranking}
    return {
        "label": label,
        "country": body["country"],
        "changes": changes,
        "recommended_model": body["recommended_model"],
        "recommendation_changed": base is not None and body["recommended_model"] != base["recommended_model"],
        "ranking": ranking,
        "robustness": body["robustness"],
        "first_place_shares": body["first_place_shares"],
        "counterfactual": body["counterfactual"],
        "differences": [
            {
                "model": m,
                "score_change": round(mine[m]["score"] - reference[m]["score"], 6),
                "rank_change": mine[m]["rank"] - reference[m]["rank"],
            }
            for m in MODEL_IDS
        ],
        "summary": _summary(label, body, base),
        "profile_used": body["profile_used"],
        "weight_profile": body["weight_profile"],
        "weights_used": body["weights_used"],
        "method": body["method"],
        "method_note": body["method_note"],
    }


def compare(session: Session, *, request: CompareRequest, settings: Settings) -> dict[str, Any]:
    """Score every item with the same code path as a match and set them side by side against the first."""
    mode, items = _items(request)
    classifier, why = None, None
    if any(m.method is not Method.RULES for _, _, m, _ in items):
        classifier, why = classifier_for_matching(session, settings=settings)
    out: list[dict[str, Any]] = []
    base_body: dict[str, Any] | None = None
    for label, where, match_request, changes in items:
        try:
            resolved = matching.resolve_profile(session, match_request)
            weights = weight_profiles.resolve(
                session,
                name=match_request.weight_profile,
                version=match_request.weight_profile_version,
                overrides={str(c): w for c, w in (match_request.weights or {}).items()},
            )
            matching.check_scorable(resolved, weights)
            body = matching.compute(
                request=match_request,
                resolved=resolved,
                weights=weights,
                classifier=classifier if match_request.method is not Method.RULES else None,
                settings=settings,
                classifier_note=why or "",
            )
        except ServiceError as exc:
            raise _located(exc, where, shared=mode == "countries") from exc
        out.append(_item(label, changes, body, base_body))
        if base_body is None:
            base_body = body
    return {"mode": mode, "stored": False, "items": out}
