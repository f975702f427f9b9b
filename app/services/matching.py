"""Matching: resolve the profile, score with the rules (and the classifier), explain, store."""

from __future__ import annotations

import asyncio
import functools
import math
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import numpy as np
import orjson
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db import database_key
from app.errors import MAX_ERRORS, InvalidInput, ServiceError, located_in
from app.observability import MATCHES
from app.schemas import PROFILE_INPUTS, BatchItemError, MatchRequest, Method, ProfileIn
from app.services import classifier_runtime, reference, weight_profiles
from app.services.classifier_runtime import ActiveClassifier, classifier_for_matching
from app.services.rounds import Rounds
from app.services.writer import AssessmentWriter
from models.base import time_ordered_id, utcnow
from scoring.cluster_models import BY_ID, MODEL_IDS
from scoring.criteria import CRITERIA
from scoring.engine import ENGINE_VERSION, Explained, WeightsError, encode
from scoring.profile import (
    CountryProfile,
    Level,
    Stage,
    as_scale,
    level_of,
    rd_intensity_to_scale,
    scale_to_rd_intensity,
)
from scoring.rationale import rationale
from scoring.robustness import Analysis, Counterfactual, analyse

CORE_INPUTS = ("innovation_stage", "rd", "government_investment_will")


@dataclass(frozen=True, slots=True)
class ResolvedProfile:
    profile: CountryProfile
    used: dict[str, dict[str, Any]]
    country: reference.ReferenceCountry | None
    data_version: str | None


def _caller_value(profile_in: ProfileIn, name: str) -> tuple[Any, float | None, str | None]:
    """(value as given, value on the [0, 1] scale, note) for one input the caller gave, else (None, None, None)."""
    if name == "rd":
        if profile_in.rd_level is not None and profile_in.rd_intensity_pct is not None:
            raise InvalidInput("profile.rd_intensity_pct", "give rd_level or rd_intensity_pct, not both")
        if profile_in.rd_intensity_pct is not None:
            pct = profile_in.rd_intensity_pct
            return pct, rd_intensity_to_scale(pct), f"R&D intensity {pct:g} % of GDP, given by the caller"
        level = profile_in.rd_level
        return (level.value, as_scale(level), None) if level is not None else (None, None, None)
    given = getattr(profile_in, name)
    if given is None:
        return None, None, None
    if isinstance(given, Stage):
        return given.value, None, None
    return (given.value if isinstance(given, Level) else given), as_scale(given), None


def _weight_overrides(request: MatchRequest) -> dict[str, float] | None:
    return {str(k): v for k, v in request.weights.items()} if request.weights else None


def _provenance(
    value: Any,
    source: str,
    *,
    level: str | None = None,
    year: int | None = None,
    indicator: str | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """Where one profile value came from (the ProfileValue shape of the API)."""
    return {
        "value": value,
        "level": level,
        "source": source,
        "year": year,
        "indicator": indicator,
        "note": note,
    }


def resolve_profile(
    session: Session, request: MatchRequest, *, current_data_version: str | None = None
) -> ResolvedProfile:
    """Merge the caller's values over the reference data and say where each came from.

    `current_data_version` saves a query when the caller (a batch) already knows it.
    """
    country = None
    if request.country is not None:
        table, country = reference.get_country(session, iso3=request.country)  # an unknown one: 404 first
        data_version: str | None = table.version
        callers = {name: _caller_value(request.profile, name) for name in PROFILE_INPUTS}
    else:
        callers = {name: _caller_value(request.profile, name) for name in PROFILE_INPUTS}
        missing = [n for n in CORE_INPUTS if callers[n][0] is None]
        if missing:
            field = "rd_level" if missing[0] == "rd" else missing[0]
            raise InvalidInput(
                f"profile.{field}",
                "required when no country is given (core inputs: innovation_stage, rd_level or "
                "rd_intensity_pct, government_investment_will)",
            )
        # Named even when unused, so every stored match says which snapshot was current.
        data_version = current_data_version or reference.current_version(session)

    values: dict[str, Any] = {}
    used: dict[str, dict[str, Any]] = {}
    for name, field in PROFILE_INPUTS.items():
        given, scaled, note = callers[name]
        if given is not None:
            values[field] = Stage(given) if name == "innovation_stage" else scaled
            level = None if scaled is None else level_of(scaled).value
            used[name] = _provenance(given, "caller", level=level, note=note)
            continue
        derived = country.derived.get(field) if country is not None else None
        if derived is None or derived.value is None:
            values[field] = None
            used[name] = _provenance(None, "missing", note=derived.note if derived else "not given")
            continue
        values[field] = derived.value
        # A figure used as it stands (R&D intensity), or the seed's own statement of a stage, is
        # "reference"; anything computed from several figures is "derived".
        direct = (name == "rd") or (name == "innovation_stage" and not derived.indicators)
        value: str | float
        if isinstance(derived.value, Stage):
            value, level = derived.value.value, None
        else:
            value, level = round(float(derived.value), 4), level_of(float(derived.value)).value
        used[name] = _provenance(
            value,
            "reference" if direct else "derived",
            level=level,
            year=derived.year,
            indicator=", ".join(derived.indicators) or ("seeds/000" if name == "innovation_stage" else None),
            note=derived.note,
        )
    return ResolvedProfile(CountryProfile(**values), used, country, data_version)


# How a caller gives the input each criterion reads, in the request's `profile`.
_CALLER_INPUT = {
    "stage" if field == "innovation_stage" else field: "rd_level or rd_intensity_pct"
    if name == "rd"
    else name
    for name, field in PROFILE_INPUTS.items()
}


class Unscorable(InvalidInput):
    """A profile with no value for any weighted criterion: names the inputs that would do (as a
    caller gives them) and why they are missing, at `field` (in `where`), with `remedy`."""

    def __init__(
        self,
        inputs: list[str],
        country: reference.ReferenceCountry | None,
        *,
        field: str = "profile",
        where: str = "body",
        remedy: str = "give at least one of them in profile, or weight a criterion that has a value",
    ) -> None:
        self.inputs, self.country = inputs, country
        why = (
            f"the reference data of {country.iso3} ({country.name}) has none of them"
            if country
            else "none is given"
        )
        super().__init__(
            field,
            f"no value for any criterion with a weight > 0 ({', '.join(inputs)}): {why}; {remedy}",
            where=where,
        )


def check_scorable(resolved: ResolvedProfile, weights: weight_profiles.ResolvedWeights) -> None:
    """Refuse a profile that has no value for any weighted criterion (`Unscorable`) before its
    analysis, which would only say that the weights have nothing to weigh."""
    weighted = [criterion for criterion, weight in weights.weights.items() if weight > 0]
    if not any(resolved.profile.value_of(criterion) is not None for criterion in weighted):
        raise Unscorable([_CALLER_INPUT[w] for w in weighted], resolved.country)


# The profile field each criterion reads, in criterion order (CountryProfile.value_of, unrolled).
_CRITERION_FIELDS = tuple("innovation_stage" if c == "stage" else c for c in CRITERIA)


def _displayed(profile: CountryProfile) -> list[str | float | None]:
    """The profile's input for each criterion, in criterion order, as an answer shows it."""
    shown: list[str | float | None] = []
    for name in _CRITERION_FIELDS:
        value = getattr(profile, name)
        if value is None:
            shown.append(None)
        elif isinstance(value, Stage):
            shown.append(value.value)
        else:
            shown.append(round(float(value), 4))
    return shown


# Criterion -> the request field a caller would change (R&D as intensity, % of GDP).
_CHANGE_FIELD = {
    "stage": "innovation_stage",
    "innovation_stage": "innovation_stage",
    "rd": "rd_intensity_pct",
    "public_investment_will": "government_investment_will",
    "healthcare_capacity": "healthcare_capacity",
    "research_capacity": "research_capacity",
    "manufacturing_base": "manufacturing_base",
    "private_sector_strength": "private_sector_strength",
}


def _away(value: float, current: float) -> float:
    """Round to 4 decimals away from `current`, so the rounded change still crosses the boundary."""
    return math.ceil(value * 1e4) / 1e4 if value > current else math.floor(value * 1e4) / 1e4


def _counterfactual_out(cf: Counterfactual) -> dict[str, Any]:
    """The runner-up's smallest winning change, named as a caller would send it."""
    name = BY_ID[cf.target_model].name_en
    change = cf.change
    if change is None:
        return {
            "target_model": cf.target_model,
            "change": None,
            "summary": f"In the rule engine, no single input change within one level step puts {name} first.",
        }
    field = _CHANGE_FIELD[change.input]
    from_value, to_value = change.from_value, change.to_value
    if field == "rd_intensity_pct":
        current = scale_to_rd_intensity(float(from_value))
        from_value, to_value = round(current, 4), _away(scale_to_rd_intensity(float(to_value)), current)
    if field == "innovation_stage":
        summary = f"In the rule engine, {name} would rank first if the innovation stage were {to_value} instead of {from_value}."
    else:
        direction = "rose" if float(to_value) > float(from_value) else "fell"
        unit = " % of GDP" if field == "rd_intensity_pct" else ""
        summary = (
            f"In the rule engine, {name} would rank first if {field} {direction} from {float(from_value):.4g}{unit} "
            f"({change.from_level}) to {float(to_value):.4g}{unit} ({change.to_level})."
        )
    return {
        "target_model": cf.target_model,
        "change": {
            "input": field,
            "from_value": from_value,
            "to_value": to_value,
            "from_level": change.from_level,
            "to_level": change.to_level,
            "size": round(change.size, 6),
        },
        "summary": summary,
    }


def _ranking(
    explained: Explained,
    index: int,
    profile: CountryProfile,
    classifier_probs: dict[str, float] | None,
    blend: float,
) -> list[dict[str, Any]]:
    """The ranking of profile `index` of `explained` as the API shows it, best first."""
    out: list[dict[str, Any]] = []
    # The input shown and its weight are the same for every model.
    shown = _displayed(profile)
    weights = [round(w, 6) for w in explained.weights[index]]
    fits_shown, contributions_shown = explained.fits_shown[index], explained.contributions_shown[index]
    scores, strongest = explained.scores[index], explained.strongest[index]
    gates, missing = explained.gate_results(index), explained.missing_inputs(index)
    for rank, m in enumerate(explained.order[index], start=1):
        model = MODEL_IDS[m]
        rule_score = scores[m]
        en, ko = rationale(model, rank, rule_score, strongest[m], gates[m], missing)
        prob = classifier_probs.get(model) if classifier_probs else None
        score = rule_score if prob is None else (1 - blend) * rule_score + blend * prob
        out.append(
            {
                "model": model,
                "rank": rank,
                "name_en": BY_ID[model].name_en,
                "name_ko": BY_ID[model].name_ko,
                "score": round(score, 6),
                "rule_score": round(rule_score, 6),
                "classifier_probability": None if prob is None else round(prob, 6),
                "contributions": [
                    {
                        "criterion": criterion,
                        "value": value,
                        "weight": weight,
                        "fit": None if fit != fit else fit,  # NaN: not assessed
                        "contribution": contribution,
                    }
                    for criterion, value, weight, fit, contribution in zip(
                        CRITERIA, shown, weights, fits_shown[m], contributions_shown[m], strict=True
                    )
                ],
                # GateResult's fields are the API's gate fields, in order; orjson writes a dataclass
                # as that object, and the few results there are are shared, never copied.
                "gates": gates[m],
                "rationale": en,
                "rationale_ko": ko,
            }
        )
    if classifier_probs:
        out.sort(key=lambda r: (-r["score"], r["rank"]))
        for rank, r in enumerate(out, start=1):
            r["rank"] = rank
            # The rationale above explains the rule engine's place; say how the blend placed it.
            r["rationale"] += (
                f" Blended with the classifier (probability {r['classifier_probability']:.2f}, "
                f"weight {blend:.2f}) it ranks {rank}."
            )
            r["rationale_ko"] += (
                f" 분류기 확률({r['classifier_probability']:.2f}, 가중치 {blend:.2f})과 결합한 순위는 {rank}위."
            )
    return out


def compute(
    *,
    request: MatchRequest,
    resolved: ResolvedProfile,
    weights: weight_profiles.ResolvedWeights,
    classifier: ActiveClassifier | None,
    settings: Settings,
    analysis: Analysis | None = None,
    index: int = 0,
    classifier_note: str = "no classifier version is active",
) -> dict[str, Any]:
    """The full match response for one resolved request (no id yet, nothing stored).

    `analysis` (row `index`) is the rules' work for this profile when a batch computed it for many.
    """
    profile = resolved.profile
    if analysis is None:
        analysis, index = _analyse([profile], weights, settings), 0
    explained = analysis.explained
    rules_recommended = MODEL_IDS[explained.order[index][0]]
    robust = analysis.robustness_of(index)
    cf = analysis.counterfactual_of(index)

    method = request.method
    note = None
    classifier_view = None
    probs = None
    if method is not Method.RULES:
        if classifier is None:
            note = f"{classifier_note}: {method.value} answered with the rules alone"
            method_used = Method.RULES
        else:
            probs, contributions = classifier.explain(profile)
            top = max(probs, key=lambda m: probs[m])
            classifier_view = {
                "top_model": top,
                "probabilities": {m: round(p, 6) for m, p in probs.items()},
                "agrees_with_rules": top == rules_recommended,
                "feature_contributions": [
                    {"feature": f, "contribution": round(c, 6)} for f, c in contributions
                ],
            }
            method_used = method
    else:
        method_used = Method.RULES

    blend = 1.0 if method_used is Method.CLASSIFIER else settings.hybrid_classifier_weight
    ranking = _ranking(explained, index, profile, probs if method_used is not Method.RULES else None, blend)
    c = resolved.country
    return {
        "method": method_used.value,
        "method_note": note,
        "recommended_model": ranking[0]["model"],
        "rules_recommended_model": rules_recommended,
        "ranking": ranking,
        "confidence": round(explained.confidence[index], 6),
        "missing_inputs": [n for n in PROFILE_INPUTS if resolved.used[n]["source"] == "missing"],
        "robustness": robust.robustness,
        "first_place_shares": robust.first_place_shares,
        "robustness_detail": {
            "samples": robust.samples,
            "concentration": robust.concentration,
            "seed": robust.seed,
            "leave_one_out": [
                {"criterion": r.criterion, "top_model": r.top_model, "changes_top": r.changes_top}
                for r in analysis.leave_one_out_of(index)
            ],
        },
        "counterfactual": _counterfactual_out(cf),
        "classifier": classifier_view,
        "profile_used": resolved.used,
        "country": None
        if c is None
        else {"iso3": c.iso3, "name": c.name, "region": c.region, "income_group": c.income_group},
        "weight_profile": {"name": weights.name, "version": weights.version},
        "weights_used": weights.weights,
        "engine_version": ENGINE_VERSION,
        "model_version": classifier.version
        if classifier is not None and method_used is not Method.RULES
        else None,
        "data_version": resolved.data_version,
    }


def _analyse(
    profiles: list[CountryProfile], weights: weight_profiles.ResolvedWeights, settings: Settings
) -> Analysis:
    """The rules' full analysis of several profiles that share one set of weights."""
    try:
        return analyse(
            np.stack([encode(p) for p in profiles]),
            weights.weights,
            samples=settings.robustness_samples,
            concentration=settings.robustness_concentration,
        )
    except WeightsError as exc:
        raise InvalidInput(exc.field, str(exc)) from exc


@dataclass(frozen=True, slots=True)
class Scored:
    """One scored request, ready to be stored under any number of assessment ids."""

    tail: bytes  # the response's JSON after its opening brace, without id and time
    columns: dict[str, Any]  # the assessment's indexed columns (method, recommended model, versions...)

    @classmethod
    def of(cls, body: dict[str, Any]) -> Scored:
        columns = {
            "method": body["method"],
            "country_iso3": body["country"]["iso3"] if body["country"] else None,
            "recommended_model": body["recommended_model"],
            "weight_profile_name": body["weight_profile"]["name"],
            "weight_profile_version": body["weight_profile"]["version"],
            "engine_version": body["engine_version"],
            "model_version": body["model_version"],
            "data_version": body["data_version"],
        }
        return cls(orjson.dumps(body)[1:], columns)

    def row(self, request: MatchRequest) -> tuple[dict[str, Any], bytes]:
        """A new assessment: (its row, whose "response" is the JSON to store, and that same JSON as
        the bytes to send). A fresh id and time go in front of the scored body; ids and ISO times need
        no JSON escaping. The row holds the very bytes sent, as UTF-8: nothing is decoded or encoded
        again on the way out, nor on PostgreSQL on the way in (see `JSONText` and `MultiRowInsert`).
        """
        created_at = utcnow()
        assessment_id = time_ordered_id(created_at)
        separator = "," if self.tail != b"}" else ""
        head = f'{{"assessment_id":"{assessment_id}","created_at":"{created_at.isoformat()}"{separator}'
        body = head.encode() + self.tail
        row = {
            "id": assessment_id,
            "created_at": created_at,
            **self.columns,
            "request": request.model_dump(mode="json", exclude_none=True),
            "response": body,
        }
        return row, body


class _Memo:
    """Answers already scored in this process, for requests that come again (a portal re-asking for a
    country, a consultant re-opening a scenario). The key holds everything an answer depends on:
    the request as validated, the versions of the reference data, the weight profile (and its
    weights) and the classifier in use, and the scoring settings, so a new version of any of them is
    a miss, never a stale answer. Failed requests are never remembered."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[tuple[Any, ...], Scored] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> Scored | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def put(self, key: tuple[Any, ...], scored: Scored) -> None:
        with self._lock:
            self._items[key] = scored
            if len(self._items) > self._size:
                self._items.popitem(last=False)


MEMO = _Memo(size=1024)  # about 10 KB an answer: ~10 MB at most a process


@dataclass(frozen=True, slots=True)
class _Lookup:
    """What a request is scored with, and the memo key of its answer."""

    weights: weight_profiles.ResolvedWeights
    classifier: ActiveClassifier | None
    why: str | None  # why no classifier is used, when the method asks for one
    key: tuple[Any, ...]


def _lookup(session: Session, request: MatchRequest, settings: Settings) -> _Lookup:
    weights = weight_profiles.resolve(
        session,
        name=request.weight_profile,
        version=request.weight_profile_version,
        overrides=_weight_overrides(request),
    )
    classifier, why = None, None
    if request.method is not Method.RULES:
        classifier, why = classifier_for_matching(session, settings=settings)
    key = (
        request.model_dump_json(),
        reference.current_version(session),
        weights.name,
        weights.version,
        tuple(weights.weights.values()),  # a profile's name and version are unique within one database only
        classifier.version if classifier is not None else why,
        (settings.robustness_samples, settings.robustness_concentration, settings.hybrid_classifier_weight),
    )
    return _Lookup(weights, classifier, why, key)


def _scored(
    request: MatchRequest,
    resolved: ResolvedProfile,
    lookup: _Lookup,
    settings: Settings,
    analysis: Analysis | None = None,
    index: int = 0,
) -> Scored:
    """Build the answer (from `analysis` row `index` when given) and remember it."""
    body = compute(
        request=request,
        resolved=resolved,
        weights=lookup.weights,
        classifier=lookup.classifier,
        settings=settings,
        analysis=analysis,
        index=index,
        classifier_note=lookup.why or "",
    )
    scored = Scored.of(body)
    MEMO.put(lookup.key, scored)  # only reached when scoring succeeded: failures are never remembered
    return scored


def _look_up(
    sessions: sessionmaker[Session], request: MatchRequest, settings: Settings
) -> tuple[_Lookup, Scored | ResolvedProfile]:
    """What scoring `request` needs from the database: its look-ups, and either the answer already
    scored for it or its resolved profile. Raises for a request that cannot be scored."""
    with sessions() as session:
        lookup = _lookup(session, request, settings)
        scored = MEMO.get(lookup.key)
        if scored is not None:
            return lookup, scored
        resolved = resolve_profile(session, request)
        check_scorable(resolved, lookup.weights)
        return lookup, resolved


def _in_memory(sessions: sessionmaker[Session], request: MatchRequest, settings: Settings) -> bool:
    """Whether every look-up `_look_up` makes for this request is answered from the in-process caches."""
    db = database_key(sessions.kw["bind"])  # the key those caches use
    return (
        reference.in_memory(db, table=request.country is not None)
        and weight_profiles.in_memory(db, request.weight_profile, request.weight_profile_version)
        and (request.method is Method.RULES or classifier_runtime.in_memory(settings))
    )


# Per event loop: set while one request of that loop queries the database for its look-ups.
_QUERYING: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Event] = weakref.WeakKeyDictionary()


async def _look_up_off_loop(
    sessions: sessionmaker[Session], request: MatchRequest, settings: Settings
) -> tuple[_Lookup, Scored | ResolvedProfile]:
    """`_look_up` in a worker thread, one request of this event loop at a time.

    When a cache expires (each is re-read every 2 s), every request in flight finds it so at once;
    they used to query together, each in a thread and on a pooled connection of its own (on
    PostgreSQL, more than the pool keeps, so connections were opened and closed about once a second).
    Now the first queries, the others wait until it is done, then find the cache fresh and look up
    in memory. A request that still needs the database then (another weight profile, or the query
    failed) makes its own queries, so a failing database is not waited on twice in a row.
    """
    loop = asyncio.get_running_loop()
    querying = _QUERYING.get(loop)
    if querying is not None:
        await querying.wait()
        if _in_memory(sessions, request, settings):
            return _look_up(sessions, request, settings)
        return await anyio.to_thread.run_sync(_look_up, sessions, request, settings)
    done = _QUERYING[loop] = asyncio.Event()
    try:
        return await anyio.to_thread.run_sync(_look_up, sessions, request, settings)
    finally:
        del _QUERYING[loop]
        done.set()


def _round_analysis(
    profiles: list[CountryProfile], context: tuple[weight_profiles.ResolvedWeights, Settings]
) -> Analysis:
    return _analyse(profiles, *context)


# Single matches that reach their scoring in the same event-loop turn share one analysis pass.
ROUNDS: Rounds[CountryProfile, tuple[weight_profiles.ResolvedWeights, Settings], Analysis] = Rounds(
    _round_analysis
)


async def _analysed(
    request: MatchRequest, resolved: ResolvedProfile, lookup: _Lookup, settings: Settings
) -> Scored:
    """Score a resolved request in this event-loop turn's round, and remember the answer."""
    weights = lookup.weights
    round_key = (
        weights.name,
        weights.version,
        tuple(weights.weights.values()),
        settings.robustness_samples,
        settings.robustness_concentration,
    )
    analysis, index = await ROUNDS.analyse(
        round_key, (weights, settings), resolved.profile, wait=settings.match_round_wait_ms / 1000
    )
    return _scored(request, resolved, lookup, settings, analysis, index)


async def match(
    sessions: sessionmaker[Session], writer: AssessmentWriter, *, request: MatchRequest, settings: Settings
) -> bytes:
    """Score one request, store it (group commit) and return the response, the JSON that was stored
    (as bytes), once it is committed.

    Scoring is a fraction of a millisecond of CPU and runs on the event loop: requests that arrive
    together are analysed in one pass (`ROUNDS`), and a thread hop would cost more (worker threads
    scoring at once would also fight over the GIL). Its look-ups are in memory in the usual case
    (they are re-read every 2 s); when one is not, they run in a worker thread, so a query never
    blocks the loop, one request at a time (`_look_up_off_loop`). (A cache can expire between the check and the use; that costs one short query
    on the loop, at most once per cache and TTL.)
    """
    if _in_memory(sessions, request, settings):
        lookup, found = _look_up(sessions, request, settings)
    else:
        lookup, found = await _look_up_off_loop(sessions, request, settings)
    if isinstance(found, Scored):
        return await _store(writer, request, found)
    # In flight until answered, its commit included: a scoring round waits for the matches it expects
    # (app/services/rounds.py). Under load a match waiting for its commit is about to send its next
    # request, so counting it sizes the next round well; counting only up to the analysis gave about
    # 9 % fewer distinct matches a second (bench/RESULTS.md). The price: a match that comes alone
    # while another commits waits out the round's wait (MATCH_ROUND_WAIT_MS, 3 ms by default).
    with ROUNDS.in_flight():
        return await _store(writer, request, await _analysed(request, found, lookup, settings))


async def _store(writer: AssessmentWriter, request: MatchRequest, scored: Scored) -> bytes:
    row, body = scored.row(request)
    await writer.write([row])
    MATCHES.labels(row["recommended_model"], row["method"]).inc()
    return body


def _item_error(index: int, exc: ValidationError | ServiceError) -> dict[str, Any]:
    errors: list[dict[str, Any]] | None
    item = ("items", str(index))
    if isinstance(exc, ValidationError):
        errors = [{"loc": located_in([*map(str, e["loc"])], *item), "msg": e["msg"]} for e in exc.errors()]
        title, status, detail = "Invalid request", 422, str(errors[0]["msg"])
    else:
        errors = (
            [{**e, "loc": located_in(e.get("loc", []), *item)} for e in exc.errors] if exc.errors else None
        )
        title, status, detail = exc.title, exc.status, exc.detail
    omitted = len(errors) - MAX_ERRORS if errors is not None and len(errors) > MAX_ERRORS else None
    return BatchItemError(
        index=index,
        status=status,
        title=title,
        detail=detail,
        errors=errors[:MAX_ERRORS] if errors is not None else None,
        errors_omitted=omitted,
    ).model_dump(exclude={"errors_omitted"} if omitted is None else None)


# A batch result is the stored JSON of an item's assessment (as bytes), or the item's error as a dict.
BatchResult = bytes | dict[str, Any]


def score_batch(
    sessions: sessionmaker[Session], *, items: list[Any], settings: Settings
) -> tuple[list[BatchResult], list[dict[str, Any]]]:
    """(results in item order, assessment rows). Reads only; nothing is stored yet."""
    with sessions() as session:
        return _score_batch(session, items=items, settings=settings)


async def match_batch(
    sessions: sessionmaker[Session],
    writer: AssessmentWriter,
    *,
    items: list[Any],
    settings: Settings,
) -> list[BatchResult]:
    """Score many requests and store them; a bad item yields its own error and does not fail the others."""
    results, rows = await anyio.to_thread.run_sync(
        functools.partial(score_batch, sessions, items=items, settings=settings)
    )
    await writer.write(rows)
    for row in rows:
        MATCHES.labels(row["recommended_model"], row["method"]).inc()
    return results


def batch_json(results: list[BatchResult]) -> bytes:
    """The batch response: each assessment exactly as stored, errors encoded here. Joined as bytes
    (joining 10 MB of text with Korean in it, then encoding it, costs ten times as much), and in one
    join: wrapping a joined list in its brackets copied the 10 MB again, for ten times the cost."""
    parts = [b'{"results":[']
    for r in results:
        parts.append(r if isinstance(r, bytes) else orjson.dumps(r))
        parts.append(b",")
    if results:
        parts[-1] = b"]}"  # in place of the last comma
    else:
        parts.append(b"]}")
    return b"".join(parts)


def batch_dicts(results: list[BatchResult]) -> list[dict[str, Any]]:
    """The batch results as dicts (for the CSV export)."""
    return [orjson.loads(r) if isinstance(r, bytes) else r for r in results]


def _score_batch(
    session: Session, *, items: list[Any], settings: Settings
) -> tuple[list[BatchResult], list[dict[str, Any]]]:
    """Items that share weights are analysed together in one array pass."""
    if len(items) > settings.batch_max_items:
        raise InvalidInput("items", f"at most {settings.batch_max_items} items per batch, got {len(items)}")
    results: list[BatchResult | None] = [None] * len(items)
    prepared: dict[int, tuple[MatchRequest, ResolvedProfile, weight_profiles.ResolvedWeights]] = {}
    groups: dict[tuple[str, int, tuple[float, ...]], list[int]] = {}
    data_version = reference.current_version(session)
    for index, raw in enumerate(items):
        try:
            request = MatchRequest.model_validate(raw)
            resolved = resolve_profile(session, request, current_data_version=data_version)
            weights = weight_profiles.resolve(
                session,
                name=request.weight_profile,
                version=request.weight_profile_version,
                overrides=_weight_overrides(request),
            )
            check_scorable(resolved, weights)
        except (ValidationError, ServiceError) as exc:
            results[index] = _item_error(index, exc)
            continue
        prepared[index] = (request, resolved, weights)
        key = (weights.name, weights.version, tuple(weights.weights.values()))
        groups.setdefault(key, []).append(index)

    classifier, why = None, None
    if any(request.method is not Method.RULES for request, _, _ in prepared.values()):
        classifier, why = classifier_for_matching(session, settings=settings)
    rows = []
    for members in groups.values():
        weights = prepared[members[0]][2]
        try:
            analysis = _analyse([prepared[i][1].profile for i in members], weights, settings)
        except ServiceError:
            # Not expected (check_scorable refused what the engine refuses), but should the engine
            # refuse a profile of this group, the others are still scored, one by one.
            analysis = None
        for k, index in enumerate(members):
            request, resolved, _ = prepared[index]
            try:
                body = compute(
                    request=request,
                    resolved=resolved,
                    weights=weights,
                    classifier=classifier if request.method is not Method.RULES else None,
                    settings=settings,
                    analysis=analysis,
                    index=k,
                    classifier_note=why or "",
                )
            except ServiceError as exc:
                results[index] = _item_error(index, exc)
                continue
            row, sent = Scored.of(body).row(request)
            rows.append(row)
            results[index] = sent
    return [r for r in results if r is not None], rows
