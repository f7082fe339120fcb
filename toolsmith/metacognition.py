"""Metacognition: each build predicts its own success, picks its budget from it, and is scored.

Before a build, ``Metacognition.predict`` ranks past builds by similarity of their task and spec
text to the new task (bm25s, as registry search does) and estimates P(success) as a Beta-smoothed,
similarity-weighted success rate: ``(K * prior + sum(w_i * y_i)) / (K + sum(w_i))``, where ``w_i``
is a past build's bm25 score over the best score (so the nearest counts 1), ``y_i`` its outcome,
and ``prior`` the Laplace-smoothed success rate of all past builds (0.5 with no history). With no
similar build the estimate is the prior.

The estimate chooses the strategy (``choose_strategy``): a task like ones that passed at once is
given fewer attempts and a lighter mutation gate; one like tasks that failed is given more attempts
and twice the hypothesis examples (the bugs of hard tasks hide in edge cases); between the two the
caller's options stand.

After the build, ``record`` appends the prediction, the strategy and the outcome to a hash-chained
audit log (``toolsmith.audit``) at ``$TOOLSMITH_STATE/metacognition.jsonl`` (default
``$TOOLSMITH_HOME/state``): the log is the history the next prediction reads, so every estimate is
traceable to audited records. ``calibrate`` scores predictions against outcomes as a Brier score
(mean squared error of the probability, 0 is perfect, 0.25 is always saying 0.5) and a reliability
table (per probability bin: how many, mean predicted, observed success rate).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from toolsmith.audit import AuditLog
from toolsmith.models import PublicModel

if TYPE_CHECKING:
    from toolsmith.pipeline import BuildOptions, BuildResult

METACOGNITION_FILE = "metacognition.jsonl"
PRIOR_STRENGTH = 2.0  # K: how many builds' worth of weight the prior carries
NEIGHBOURS = 5
CONFIDENT = 0.8
CAREFUL = 0.4
_WORD = re.compile(r"[a-z0-9]+")


class Strategy(PublicModel):
    """The budget a build runs with, chosen from its predicted success."""

    name: Literal["confident", "standard", "careful"]
    max_attempts: int
    mutants: int
    max_examples: int

    def apply(self, options: BuildOptions) -> BuildOptions:
        return options.model_copy(
            update={
                "max_attempts": self.max_attempts,
                "mutants": self.mutants,
                "max_examples": self.max_examples,
            }
        )


def choose_strategy(probability: float, base: BuildOptions) -> Strategy:
    """The strategy for a build predicted to succeed with ``probability``, from ``base``."""
    if probability >= CONFIDENT:
        return Strategy(
            name="confident",
            max_attempts=min(base.max_attempts, 2),
            mutants=base.mutants // 2,
            max_examples=base.max_examples,
        )
    if probability < CAREFUL:
        return Strategy(
            name="careful",
            max_attempts=min(base.max_attempts + 2, 20),
            mutants=base.mutants,
            max_examples=min(base.max_examples * 2, 10_000),
        )
    return Strategy(
        name="standard",
        max_attempts=base.max_attempts,
        mutants=base.mutants,
        max_examples=base.max_examples,
    )


class PastBuild(BaseModel):
    """One recorded build: its text, what was predicted and what happened."""

    build_id: str
    text: str
    probability: float
    strategy: str
    success: bool
    status: str


class Similar(BaseModel):
    build_id: str
    text: str
    success: bool
    weight: float = Field(description="bm25 score over the best score: 1 for the nearest")


class Prediction(PublicModel):
    """P(success) of a build before it runs, how it was reached, and the strategy it chose."""

    probability: float = Field(ge=0, le=1)
    prior: float = Field(ge=0, le=1, description="success rate of all past builds, smoothed")
    history: int = Field(ge=0, description="past builds recorded")
    similar: list[Similar] = Field(default_factory=list)
    strategy: Strategy

    def provenance(self) -> dict[str, object]:
        """What a build's provenance keeps of it."""
        return {
            "probability": round(self.probability, 4),
            "prior": round(self.prior, 4),
            "history": self.history,
            "similar": [s.build_id for s in self.similar],
            "strategy": self.strategy.model_dump(mode="json"),
        }


class ReliabilityBin(BaseModel):
    low: float
    high: float
    count: int
    mean_predicted: float | None
    observed: float | None


class Calibration(PublicModel):
    """How well predictions matched outcomes: Brier score and a reliability table."""

    count: int
    brier: float | None = Field(description="mean (p - outcome)^2; None without predictions")
    bins: list[ReliabilityBin]


def calibrate(pairs: Iterable[tuple[float, bool]], bins: int = 5) -> Calibration:
    """Brier score and reliability table of (predicted probability, outcome) pairs."""
    data = list(pairs)
    edges = [i / bins for i in range(bins + 1)]
    table = []
    for i in range(bins):
        low, high = edges[i], edges[i + 1]
        inside = [(p, y) for p, y in data if low <= p < high or (i == bins - 1 and p == high)]
        table.append(
            ReliabilityBin(
                low=low,
                high=high,
                count=len(inside),
                mean_predicted=sum(p for p, _ in inside) / len(inside) if inside else None,
                observed=sum(y for _, y in inside) / len(inside) if inside else None,
            )
        )
    brier = sum((p - y) ** 2 for p, y in data) / len(data) if data else None
    return Calibration(count=len(data), brier=brier, bins=table)


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def default_path() -> Path:
    """Beside this consumer's own audit log, in its state dir."""
    from toolsmith.registry import consumer_audit

    return consumer_audit().path.parent / METACOGNITION_FILE


class Metacognition:
    """Predictions and outcomes of builds, kept in an audit log at ``path``."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.log = AuditLog(path if path is not None else default_path())

    def history(self) -> list[PastBuild]:
        """Every recorded build, oldest first (an empty list before the first)."""
        if not self.log.path.exists():
            return []
        return [
            PastBuild.model_validate(e.data) for e in self.log.entries() if e.event == "predict"
        ]

    def predict(self, task: str, base: BuildOptions) -> Prediction:
        """P(success) for ``task`` from similar past builds, and the strategy it chooses."""
        past = self.history()
        prior = (1 + sum(p.success for p in past)) / (2 + len(past))
        similar = _nearest(task, past)
        weight = sum(s.weight for s in similar)
        probability = (PRIOR_STRENGTH * prior + sum(s.weight * s.success for s in similar)) / (
            PRIOR_STRENGTH + weight
        )
        return Prediction(
            probability=probability,
            prior=prior,
            history=len(past),
            similar=similar,
            strategy=choose_strategy(probability, base),
        )

    def record(self, prediction: Prediction, result: BuildResult | None, task: str) -> None:
        """Append the prediction and the outcome of a build (``None``: it raised) to the log."""
        if result is not None:
            text = task
            if result.spec is not None:
                text += f"\n{result.spec.name}: {result.spec.description}"
            build_id, status, success = result.build_id, result.status.value, result.ok
        else:
            text, build_id, status, success = task, "-", "error", False
        record = PastBuild(
            build_id=build_id,
            text=text,
            probability=prediction.probability,
            strategy=prediction.strategy.name,
            success=success,
            status=status,
        )
        self.log.append(
            "predict",
            actor="toolsmith",
            subject=build_id,
            reason=f"predicted {prediction.probability:.2f}, {status}",
            data=record.model_dump(mode="json"),
        )

    def calibration(self, bins: int = 5) -> Calibration:
        """Calibration over every recorded build (success meaning published or reused)."""
        return calibrate(((p.probability, p.success) for p in self.history()), bins)


def _nearest(task: str, past: Sequence[PastBuild]) -> list[Similar]:
    """The past builds most like ``task`` (bm25 over their task and spec text)."""
    if not past:
        return []
    # Imported here: bm25s and numpy cost ~0.3 s, which every other CLI command would pay.
    import bm25s
    import numpy as np
    from bm25s.stopwords import STOPWORDS_EN

    def words_of(text: str) -> list[str]:
        return [w for w in _tokens(text) if w not in STOPWORDS_EN]

    retriever = bm25s.BM25()
    retriever.index([words_of(p.text) or ["_"] for p in past], show_progress=False)
    words = [w for w in words_of(task) if w in retriever.vocab_dict]
    if not words:
        return []
    scores = np.asarray(retriever.get_scores(words))
    order = [int(i) for i in np.argsort(-scores, kind="stable")[:NEIGHBOURS] if scores[i] > 0]
    if not order:
        return []
    best = float(scores[order[0]])
    return [
        Similar(
            build_id=past[i].build_id,
            text=past[i].text[:200],
            success=past[i].success,
            weight=float(scores[i]) / best,
        )
        for i in order
    ]
