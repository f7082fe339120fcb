"""Ranked search over name, description and tags, with bm25s doing the scoring.

Every published version is a document (descriptions change between versions); results are one
hit per tool, its best-scoring version, newest first on ties.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from semantic_version import Version

from toolsmith.registry._models import SearchHit, VersionRecord

if TYPE_CHECKING:
    import bm25s
    import numpy as np

_WORD = re.compile(r"[a-z0-9]+")


def _tokens(text: str) -> list[str]:
    """Lowercase words, with snake_case names split so 'csv' finds 'parse_csv'."""
    return _WORD.findall(text.lower())


def _document(r: VersionRecord) -> list[str]:
    return [r.name, *_tokens(r.name), *_tokens(r.description), *(t.lower() for t in r.tags)]


class SearchIndex:
    """A bm25 index over a fixed set of records; build a new one when the registry changes."""

    def __init__(self, records: Sequence[VersionRecord]) -> None:
        # Imported here: bm25s and numpy cost ~0.3 s, which every other CLI command would pay.
        import bm25s
        import numpy as np

        # Grouped by tool, newest version first, so per-tool maxima are one reduceat away.
        self._records = sorted(records, key=lambda r: (r.name, _neg_version(r.version)))
        self._retriever: bm25s.BM25 | None = None
        self._starts: np.ndarray = np.zeros(0, dtype=np.int64)
        if self._records:
            self._retriever = bm25s.BM25()
            self._retriever.index([_document(r) for r in self._records], show_progress=False)
            names = [r.name for r in self._records]
            self._starts = np.array(
                [i for i, n in enumerate(names) if i == 0 or names[i - 1] != n], dtype=np.int64
            )

    def search(self, query: str, limit: int) -> list[SearchHit]:
        words = [w for w in _tokens(query) if self._retriever and w in self._retriever.vocab_dict]
        if self._retriever is None or not words or limit < 1:
            return []
        import numpy as np

        scores = np.asarray(self._retriever.get_scores(words))
        best = np.maximum.reduceat(scores, self._starts)
        order = [int(t) for t in np.argsort(-best, kind="stable")[:limit] if best[t] > 0]
        hits = []
        for t in order:
            start = int(self._starts[t])
            end = int(self._starts[t + 1]) if t + 1 < len(self._starts) else len(self._records)
            i = start + int(np.argmax(scores[start:end]))
            r = self._records[i]
            hits.append(
                SearchHit(
                    name=r.name,
                    version=r.version,
                    digest=r.digest,
                    description=r.description,
                    tags=r.tags,
                    score=float(scores[i]),
                )
            )
        return hits


def _neg_version(version: str) -> tuple[int, ...]:
    v = Version(version)
    return (-v.major, -v.minor, -v.patch)
