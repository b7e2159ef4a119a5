"""Simulated click logs: position-biased click models over ranked lists, judged by qrels (seeded).

Two models of a user looking at the top `shown` results of one list:
- pbm (position-based model): the result at rank r is examined with probability (1/r)**eta,
  independently of the others, and clicked when examined with its attractiveness.
- cascade (dependent click model): the user reads top-down; an examined result is clicked with
  its attractiveness; after a click on a relevant result the user stops with probability
  `satisfied`, otherwise goes on to the next rank with probability `persistence`.
Attractiveness grows with the qrels grade: noise for unjudged/0, click_max for the top grade.
Dwell times are log-normal: relevant clicks around dwell_relevant_ms, others around
dwell_irrelevant_ms, so "long dwell" (>= 30 s in the report) mostly marks relevant clicks.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sidecar.experiments.ab import Experiment, assign

MODELS = ("pbm", "cascade")


@dataclass(frozen=True, kw_only=True)
class ClickModel:
    """Parameters of the simulated user."""

    model: str = "pbm"
    shown: int = 10
    eta: float = 1.0
    click_noise: float = 0.05
    click_max: float = 0.9
    satisfied: float = 0.6
    persistence: float = 0.85
    dwell_relevant_ms: float = 60000.0
    dwell_irrelevant_ms: float = 8000.0
    dwell_sigma: float = 0.5

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.shown < 1 or self.eta < 0:
            raise ValueError("shown must be >= 1 and eta >= 0")
        for name in ("click_noise", "click_max", "satisfied", "persistence"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]")

    def examination(self, rank: int) -> float:
        """Return the PBM probability that the result at 1-based rank is looked at."""
        return (1.0 / rank) ** self.eta

    def attractiveness(self, grade: int, max_grade: int) -> float:
        """Return the click probability of an examined result with this qrels grade."""
        if grade <= 0 or max_grade <= 0:
            return self.click_noise
        share = (2 ** min(grade, max_grade) - 1) / (2 ** max_grade - 1)
        return self.click_noise + (self.click_max - self.click_noise) * share


@dataclass(frozen=True)
class Click:
    """One simulated click: 1-based position, document id and dwell time."""

    position: int
    doc_id: str
    dwell_ms: float


def simulate_clicks(ranked: list[str], judgments: dict[str, int], model: ClickModel, rng: random.Random, *,
                    max_grade: int = 1) -> list[Click]:
    """Return the clicks one simulated user makes on the top `model.shown` of `ranked`."""
    clicks: list[Click] = []
    for rank, doc_id in enumerate(ranked[:model.shown], start=1):
        grade = judgments.get(doc_id, 0)
        if model.model == "pbm" and rng.random() >= model.examination(rank):
            continue
        if rng.random() < model.attractiveness(grade, max_grade):
            median = model.dwell_relevant_ms if grade > 0 else model.dwell_irrelevant_ms
            dwell = round(math.exp(rng.gauss(math.log(median), model.dwell_sigma)))
            clicks.append(Click(rank, doc_id, float(dwell)))
            if model.model == "cascade" and grade > 0 and rng.random() < model.satisfied:
                break
        if model.model == "cascade" and rng.random() >= model.persistence:
            break
    return clicks


def simulate_log(*, experiment: Experiment, runs: dict[str, dict[str, list[str]]], qrels: dict[str, dict[str, int]],
                 queries: dict[str, str], model: ClickModel, searches: int, users: int, seed: int = 0,
                 start: datetime | None = None) -> list[dict[str, Any]]:
    """Return feedback events (impressions, then clicks) of `searches` simulated searches.

    Each search: a random user among `users` issues a random query; the user's variant comes
    from the experiment's real bucketing (ab.assign); the list shown is that variant's run.
    runs: {variant name: {query id: ranked doc ids}}; queries without a list in every run are skipped.
    """
    missing = [v.name for v in experiment.variants if v.name not in runs]
    if missing:
        raise ValueError(f"no ranked lists for variant(s) {', '.join(missing)}")
    rng = random.Random(seed)
    qids = sorted(q for q in queries if q in qrels and all(q in run for run in runs.values()))
    if not qids:
        raise ValueError("no query has judgments and a ranked list in every run")
    max_grade = max((g for judged in qrels.values() for g in judged.values()), default=1)
    start = start or datetime(2025, 1, 1, tzinfo=timezone.utc)
    events: list[dict[str, Any]] = []
    for number in range(searches):
        user = f"user-{rng.randrange(users):06d}"
        qid = rng.choice(qids)
        assignment = assign(experiment, {"user": user, "session": f"{user}-s{number}"})
        variant = assignment.variant.name
        ranked = runs[variant][qid][:model.shown]
        when = start + timedelta(seconds=7 * number)
        common = {"query_id": f"sim-{seed}-{number:07d}", "user_id": user, "session_id": f"{user}-s{number}",
                  "experiment": experiment.name, "variant": variant, "query_text": queries[qid]}
        for position, doc_id in enumerate(ranked, start=1):
            events.append({**common, "doc_id": doc_id, "position": position, "click": False,
                           "timestamp": _iso(when)})
        for i, click in enumerate(simulate_clicks(ranked, qrels.get(qid, {}), model, rng, max_grade=max_grade)):
            events.append({**common, "doc_id": click.doc_id, "position": click.position, "click": True,
                           "dwell_ms": click.dwell_ms, "timestamp": _iso(when + timedelta(seconds=2 + i))})
    return events


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
