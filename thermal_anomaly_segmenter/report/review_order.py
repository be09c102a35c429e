"""The order in which the report asks the inspector to review anomalies.

First what a decision would teach the model most: the anomalies it is least sure of (mean
probability near the frame's threshold, or a false-alarm stage score near 0.5), spread across
frames and causes so that a few decisions cover the survey rather than one frame's cluster.
The first :data:`SPREAD_PICKS` are picked greedily with a penalty for every earlier pick of
the same frame (:data:`SAME_FRAME`) and the same cause (:data:`SAME_CAUSE`); the rest follow
by uncertainty alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

#: Greedy picks that spread across frames and causes (the queue the page shows and more).
SPREAD_PICKS = 60
#: Weight factor per earlier pick of the same frame / of the same cause.
SAME_FRAME = 0.5
SAME_CAUSE = 0.8


def uncertainty(probability: float | None, threshold: float | None,
                leak_score: float | None = None) -> float:
    """1 for a coin toss, 0 for a sure call: the network's mean probability against its
    threshold, or the false-alarm stage's leak score against 0.5, whichever is less sure."""
    scores = []
    if probability is not None:
        t = 0.5 if threshold is None else min(max(float(threshold), 1e-3), 1 - 1e-3)
        span = t if probability < t else 1.0 - t
        scores.append(1.0 - min(1.0, abs(float(probability) - t) / span))
    if leak_score is not None:
        scores.append(1.0 - min(1.0, 2.0 * abs(float(leak_score) - 0.5)))
    return max(scores) if scores else 0.0


def review_order(entries: Sequence[dict[str, Any]]) -> list[str]:
    """Keys (``frame/id``) of ``entries`` in review order.

    Each entry has ``frame``, ``id``, ``probability``, ``threshold`` and optionally
    ``leak_score`` and ``cause``.
    """
    scored = []
    for e in entries:
        u = uncertainty(e.get("probability"), e.get("threshold"), e.get("leak_score"))
        scored.append((f"{e['frame']}/{e['id']}", e["frame"], e.get("cause") or "", u))
    scored.sort(key=lambda s: (-s[3], s[0]))
    frames: Counter[str] = Counter()
    causes: Counter[str] = Counter()
    order: list[str] = []
    left = list(scored)
    while left and len(order) < SPREAD_PICKS:
        best = max(range(len(left)), key=lambda i: (
            left[i][3] * SAME_FRAME ** frames[left[i][1]] * SAME_CAUSE ** causes[left[i][2]],
            -i))
        key, frame, cause, _ = left.pop(best)
        order.append(key)
        frames[frame] += 1
        causes[cause] += 1
    order.extend(s[0] for s in left)
    return order
