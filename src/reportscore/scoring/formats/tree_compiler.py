"""XGBoost trees served by ONNX Runtime's tree ensemble, where that reproduces the booster.

Why: ``Booster.inplace_predict`` costs ~210-250 µs per call on our 2-core machines however few rows it scores — the
library's per-call set-up, not the trees (200 depth-6 trees are a few µs of work for one row) — and the service
scores a handful of rows per call under synchronous load. The same trees in ONNX Runtime's ``TreeEnsembleRegressor``
cost ~10 µs for one row, ~25 µs for 8 and ~400 µs for 100 (XGBoost: ~280, ~280 and ~490 µs on realistic rows);
in large calls ONNX Runtime needs ~5 µs a row where XGBoost needs ~2.8, which the benchmarks' 100-report workloads
did not show (the model is a small share of their cost). Every call goes through the compiled trees, whatever its
size: switching by size would make a report's score depend (by float32 rounding) on the batch it came in.

The graph is built here from the booster's own JSON (no converter dependency): one node per tree node, ``x <
threshold`` goes to the left child as in XGBoost, a missing value (NaN) follows the node's ``default_left``, leaves
carry their value, and ``base_values`` the booster's base margin; a ``Sigmoid`` turns the summed margin into the
probability, as ``binary:logistic`` does. The trees are summed in another order than XGBoost's, in float32, so
scores differ by float32 rounding (~1e-7). ``compile_booster`` therefore proves the compiled model on probe rows —
every split threshold, the float just below it, NaN and random values — and returns it only when every probability
is within ``tolerance`` of the booster's; otherwise (or for anything it does not support: other boosters or
objectives, categorical splits, several targets) it returns the reason and the booster keeps serving.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from reportscore.scoring.formats.base import FloatMatrix, Scores

TOLERANCE = 1e-6
"""Largest difference from the booster's probability on the probe rows for the compiled model to be used."""

PROBE_ROWS = 4096
_SUPPORTED_OBJECTIVES = ("binary:logistic", "reg:logistic")


@dataclass(frozen=True)
class CompiledTrees:
    """An onnxruntime session computing the booster's probability for a float32 matrix."""

    session: Any
    n_features: int
    max_difference: float
    """Largest difference from the booster seen on the probe rows."""

    def predict(self, matrix: FloatMatrix) -> Scores:
        x = np.ascontiguousarray(matrix, dtype=np.float32)
        out = self.session.run(None, {"X": x})[0]
        return np.asarray(out, dtype=np.float64).reshape(len(x))


def compile_booster(booster: Any, *, threads: int, tolerance: float = TOLERANCE) -> CompiledTrees | str:
    """The booster compiled to an ONNX Runtime tree ensemble, or why it is not (the booster then serves)."""
    try:
        model = json.loads(booster.save_raw("json"))
        config = json.loads(booster.save_config())
        graph, n_features = _graph(model, config)
    except _Unsupported as exc:
        return str(exc)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        return f"unexpected model JSON ({type(exc).__name__}: {exc})"

    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    try:
        session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        return f"onnxruntime refused the graph ({type(exc).__name__}: {str(exc)[:200]})"
    compiled = CompiledTrees(session=session, n_features=n_features, max_difference=0.0)
    probe = probe_rows(model, n_features)
    expected = np.asarray(booster.inplace_predict(probe, validate_features=False), dtype=np.float64).reshape(-1)
    difference = float(np.max(np.abs(compiled.predict(probe) - expected))) if len(probe) else 0.0
    if not difference <= tolerance:  # also refuses NaN
        return f"differs from XGBoost by {difference:.3g} on probe rows (tolerance {tolerance:g})"
    return replace(compiled, max_difference=difference)


class _Unsupported(Exception):
    pass


def _graph(model: dict[str, Any], config: dict[str, Any]) -> tuple[bytes, int]:
    """The serialized ONNX graph of a ``gbtree`` booster with a logistic objective, and its input width."""
    try:
        from onnx import TensorProto, helper
    except ImportError as exc:  # an install without the onnx package: XGBoost's own predictor serves
        raise _Unsupported(f"the onnx package is not installed ({exc})") from exc

    learner = model["learner"]
    objective = str(config["learner"]["objective"]["name"])
    if objective not in _SUPPORTED_OBJECTIVES:
        raise _Unsupported(f"objective {objective!r} is not compiled")
    booster = learner["gradient_booster"]
    if booster.get("name") != "gbtree":
        raise _Unsupported(f"booster {booster.get('name')!r} is not compiled (only gbtree)")
    params = learner["learner_model_param"]
    if int(params.get("num_class", "0")) > 1 or int(params.get("num_target", "1")) != 1:
        raise _Unsupported("models with several classes or targets are not compiled")
    n_features = int(params["num_feature"])
    base_score = float(str(params["base_score"]).strip("[]"))
    if not 0.0 < base_score < 1.0:
        raise _Unsupported(f"base_score {base_score} is not a probability")
    base_margin = math.log(base_score / (1.0 - base_score))

    attrs: dict[str, list[Any]] = {
        key: []
        for key in (
            "nodes_treeids",
            "nodes_nodeids",
            "nodes_featureids",
            "nodes_modes",
            "nodes_values",
            "nodes_truenodeids",
            "nodes_falsenodeids",
            "nodes_missing_value_tracks_true",
            "target_treeids",
            "target_nodeids",
            "target_weights",
        )
    }
    for tree_id, tree in enumerate(booster["model"]["trees"]):
        if any(int(t) != 0 for t in tree.get("split_type", [])) or tree.get("categories"):
            raise _Unsupported("categorical splits are not compiled")
        left, right = tree["left_children"], tree["right_children"]
        for node in range(len(left)):
            attrs["nodes_treeids"].append(tree_id)
            attrs["nodes_nodeids"].append(node)
            if left[node] == -1:  # a leaf: its value is kept in split_conditions
                attrs["nodes_modes"].append("LEAF")
                attrs["nodes_featureids"].append(0)
                attrs["nodes_values"].append(0.0)
                attrs["nodes_truenodeids"].append(0)
                attrs["nodes_falsenodeids"].append(0)
                attrs["nodes_missing_value_tracks_true"].append(0)
                attrs["target_treeids"].append(tree_id)
                attrs["target_nodeids"].append(node)
                attrs["target_weights"].append(float(tree["split_conditions"][node]))
            else:
                attrs["nodes_modes"].append("BRANCH_LT")
                attrs["nodes_featureids"].append(int(tree["split_indices"][node]))
                attrs["nodes_values"].append(float(tree["split_conditions"][node]))
                attrs["nodes_truenodeids"].append(int(left[node]))
                attrs["nodes_falsenodeids"].append(int(right[node]))
                attrs["nodes_missing_value_tracks_true"].append(int(tree["default_left"][node]))
    ensemble_attrs: dict[str, Any] = attrs
    trees = helper.make_node(
        "TreeEnsembleRegressor",
        ["X"],
        ["margin"],
        domain="ai.onnx.ml",
        n_targets=1,
        target_ids=[0] * len(attrs["target_treeids"]),
        base_values=[base_margin],
        aggregate_function="SUM",
        post_transform="NONE",  # onnxruntime's regressor leaves the margin as is: the Sigmoid below does it
        **ensemble_attrs,
    )
    sigmoid = helper.make_node("Sigmoid", ["margin"], ["probability"])
    graph = helper.make_graph(
        [trees, sigmoid],
        "xgboost_trees",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, [None, 1])],
    )
    onnx_model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    )
    return onnx_model.SerializeToString(), n_features


def probe_rows(model: dict[str, Any], n_features: int, *, n: int = PROBE_ROWS, seed: int = 0) -> FloatMatrix:
    """Rows whose values sit on every split threshold, just below it, between thresholds and missing (NaN), so
    every comparison and missing-value direction of the trees is exercised."""
    rng = np.random.default_rng(seed)
    thresholds: list[list[float]] = [[] for _ in range(n_features)]
    for tree in model["learner"]["gradient_booster"]["model"]["trees"]:
        for node, child in enumerate(tree["left_children"]):
            if child != -1:
                thresholds[int(tree["split_indices"][node])].append(float(tree["split_conditions"][node]))
    out = np.empty((n, n_features), dtype=np.float32)
    for j, values in enumerate(thresholds):
        at = np.asarray(values or [0.0], dtype=np.float32)
        below = np.nextafter(at, np.float32(-np.inf))
        spread = rng.uniform(float(at.min()) - 1.0, float(at.max()) + 1.0, size=len(at)).astype(np.float32)
        candidates = np.concatenate([at, below, spread, np.array([np.nan], dtype=np.float32)])
        out[:, j] = rng.choice(candidates, size=n)
    return out
