"""Synthetic abuse reports and urgency labels: the stand-in data of the bundled reference model.

The real training data belongs to the data-science team; this generator only has to produce reports that look
plausible, respect the service's field rules, and carry a learnable (but noisy) urgency signal. Everything is
deterministic by ``seed`` (numpy ``default_rng``).

Field distributions (all values satisfy the service's field rules):

========================== ================================================================================
field                      distribution
========================== ================================================================================
abuse_type                 ``"MSG"`` with probability 0.60, else ``"PRF"``
report_text_len            0 (no text) with probability 0.15 for MSG and 0.45 for PRF; otherwise
                           ``round(lognormal(log 60, 1.1))`` clipped to 1..5000 (mostly short, a long tail)
profile_rating             ``normal(6.5, 1.8)`` clipped to 0..10 (always finite)
popularity                 categorical on 0..5 with probabilities 0.30, 0.25, 0.18, 0.12, 0.09, 0.06
lifetime_matches_created   0 (new account) with probability 0.08; otherwise
                           ``floor(lognormal(log 15 + 0.4 * popularity, 1.5))``: heavy-tailed, more for
                           popular profiles, clipped to 0..2^31-1
========================== ================================================================================

Urgency rule: a latent log-odds score (:func:`urgency_logit`)::

    z = -3.4
        + 1.0  * [abuse_type == MSG]                            # messages reach the victim directly
        + 0.8  * (log1p(report_text_len) - 4)                   # longer reports are more specific
        - 0.9  * [report_text_len == 0]                         # no text at all: hard to act on
        + 0.7  * [abuse_type == MSG and report_text_len >= 300]  # long message reports: harassment
        + 0.5  * popularity                                     # popular profiles reach more users
        - 0.6  * (log1p(lifetime_matches_created) - 3)          # few matches: new / throwaway account
        - 0.45 * (profile_rating - 6.5)                         # low-rated profiles get reported for a reason

The label is ``Bernoulli(sigmoid(z))``, then flipped with probability 0.02 (moderator mistakes). With this
noise the best possible ROC AUC (scoring by the true ``z``) is about 0.85, the reference model's holdout AUC
lands just below it, and about 18% of reports are urgent.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from reportscore.scoring.features import ABUSE_TYPES, INT32_MAX

Columns = dict[str, npt.NDArray[Any]]
Labels = npt.NDArray[np.int8]

# --- field distributions (the model card reads these; keep the docstring table in sync) -------------------
P_MSG = 0.60
P_NO_TEXT = {"MSG": 0.15, "PRF": 0.45}
TEXT_LEN_LOG_MEDIAN = float(np.log(60.0))
TEXT_LEN_SIGMA = 1.1
TEXT_LEN_MAX = 5000
RATING_MEAN = 6.5
RATING_SD = 1.8
RATING_MIN = 0.0
RATING_MAX = 10.0
POPULARITY_P: tuple[float, ...] = (0.30, 0.25, 0.18, 0.12, 0.09, 0.06)
P_NO_MATCHES = 0.08
MATCHES_LOG_MEDIAN = float(np.log(15.0))
MATCHES_POPULARITY_SLOPE = 0.4
MATCHES_SIGMA = 1.5

# --- urgency rule ------------------------------------------------------------------------------------------
URGENCY_INTERCEPT = -3.4
URGENCY_MSG = 1.0
URGENCY_TEXT_LOG = 0.8
URGENCY_NO_TEXT = -0.9
URGENCY_LONG_MSG = 0.7
LONG_MSG_LEN = 300
URGENCY_POPULARITY = 0.5
URGENCY_MATCHES_LOG = -0.6
URGENCY_RATING = -0.45
LABEL_FLIP_P = 0.02

_LABEL_STREAM = 1  # labels draw from an independent child stream of the seed


def generate_reports(n: int, *, seed: int) -> Columns:
    """``n`` synthetic reports as columns keyed by ``features.REPORT_FIELDS`` (in that order).

    ``abuse_type`` is an object array of ``"MSG"``/``"PRF"``, ``profile_rating`` float64, the rest int64.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)

    is_msg = rng.random(n) < P_MSG
    abuse_type = np.where(is_msg, ABUSE_TYPES[0], ABUSE_TYPES[1]).astype(object)

    p_no_text = np.where(is_msg, P_NO_TEXT["MSG"], P_NO_TEXT["PRF"])
    no_text = rng.random(n) < p_no_text
    text_len = np.rint(rng.lognormal(TEXT_LEN_LOG_MEDIAN, TEXT_LEN_SIGMA, n))
    text_len = np.clip(text_len, 1, TEXT_LEN_MAX).astype(np.int64)
    text_len[no_text] = 0

    rating = np.clip(rng.normal(RATING_MEAN, RATING_SD, n), RATING_MIN, RATING_MAX).astype(np.float64)

    popularity = rng.choice(len(POPULARITY_P), size=n, p=POPULARITY_P).astype(np.int64)

    no_matches = rng.random(n) < P_NO_MATCHES
    log_median = MATCHES_LOG_MEDIAN + MATCHES_POPULARITY_SLOPE * popularity
    matches = np.floor(rng.lognormal(log_median, MATCHES_SIGMA))
    matches = np.clip(matches, 0, INT32_MAX).astype(np.int64)
    matches[no_matches] = 0

    return {
        "abuse_type": abuse_type,
        "report_text_len": text_len,
        "profile_rating": rating,
        "popularity": popularity,
        "lifetime_matches_created": matches,
    }


def urgency_logit(columns: Columns) -> npt.NDArray[np.float64]:
    """The noise-free latent log-odds of urgency (the rule in the module docstring)."""
    is_msg = np.asarray(columns["abuse_type"], dtype=object) == "MSG"
    text_len = np.asarray(columns["report_text_len"], dtype=np.float64)
    rating = np.asarray(columns["profile_rating"], dtype=np.float64)
    popularity = np.asarray(columns["popularity"], dtype=np.float64)
    matches = np.asarray(columns["lifetime_matches_created"], dtype=np.float64)
    z = (
        URGENCY_INTERCEPT
        + URGENCY_MSG * is_msg
        + URGENCY_TEXT_LOG * (np.log1p(text_len) - 4.0)
        + URGENCY_NO_TEXT * (text_len == 0)
        + URGENCY_LONG_MSG * (is_msg & (text_len >= LONG_MSG_LEN))
        + URGENCY_POPULARITY * popularity
        + URGENCY_MATCHES_LOG * (np.log1p(matches) - 3.0)
        + URGENCY_RATING * (rating - RATING_MEAN)
    )
    return np.asarray(z, dtype=np.float64)


def urgency_probability(columns: Columns) -> npt.NDArray[np.float64]:
    """``sigmoid(urgency_logit)``: the probability of an urgent label before the label flips."""
    z = urgency_logit(columns)
    return np.asarray(np.exp(-np.logaddexp(0.0, -z)), dtype=np.float64)  # 1 / (1 + e^-z) without overflow


def generate_labels(columns: Columns, *, seed: int) -> Labels:
    """Urgency labels (1 = urgent) for ``columns``: ``Bernoulli(sigmoid(z))``, then flipped with p=0.03.

    The draws come from a child stream of ``seed`` that is independent of :func:`generate_reports`' stream,
    so the same seed can (and should) be used for both.
    """
    rng = np.random.default_rng([seed, _LABEL_STREAM])
    p = urgency_probability(columns)
    n = len(p)
    labels = rng.random(n) < p
    flip = rng.random(n) < LABEL_FLIP_P
    return np.asarray(labels ^ flip, dtype=np.int8)


def sample_reports(n: int, *, seed: int) -> list[dict[str, Any]]:
    """``n`` synthetic reports as JSON-ready dicts of plain Python types (for tests and benchmarks)."""
    columns = generate_reports(n, seed=seed)
    abuse = columns["abuse_type"]
    text_len = columns["report_text_len"].tolist()
    rating = columns["profile_rating"].tolist()
    popularity = columns["popularity"].tolist()
    matches = columns["lifetime_matches_created"].tolist()
    return [
        {
            "abuse_type": str(abuse[i]),
            "report_text_len": int(text_len[i]),
            "profile_rating": float(rating[i]),
            "popularity": int(popularity[i]),
            "lifetime_matches_created": int(matches[i]),
        }
        for i in range(n)
    ]
