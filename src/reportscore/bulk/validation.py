"""Vectorized validation of file rows with the API's rules for a report (``ReportIn``), column by column.

A row is valid exactly when ``ReportIn`` accepts it: the masks below implement its rules with pyarrow/numpy, and
the reason of each invalid row is the API's own error text, from ``ReportIn`` itself. Should the two ever disagree
on a row, ``ReportIn`` wins (the row is scored with the values it validated).

How a file's cells reach the rules: a null cell (an empty CSV cell, a Parquet null, a JSON null) is a missing field.
A CSV cell is text: a number field must hold a JSON number literal (``5``, ``5.0``, ``1e3``), as a JSON body
would; a text field is the cell's text. Parquet and JSON Lines values keep their own types (a Parquet float 5.0 is
the JSON number 5.0, which an integer field accepts; a boolean is never a number).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError

from reportscore.api.schemas.reports import ReportIn
from reportscore.scoring.features import ABUSE_TYPES, FLOAT32_MAX, INT32_MAX, REPORT_FIELDS

INT_BOUNDS: Final[dict[str, tuple[int, int]]] = {
    "report_text_len": (0, INT32_MAX),
    "popularity": (0, 5),
    "lifetime_matches_created": (0, INT32_MAX),
}
FIELDS: Final[tuple[str, ...]] = (*REPORT_FIELDS, "report_id")
"""Every field a report may have (``report_id`` is optional)."""
REPORT_ID_MAX = 128
JSON_NUMBER: Final = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$"
_JSON_NUMBER_RE: Final = re.compile(JSON_NUMBER)

BoolMask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Validated:
    """One chunk's rows split into valid (with their fields as columns, ready to score) and invalid (with reasons)."""

    valid: BoolMask
    columns: dict[str, npt.NDArray[Any]]
    """The valid rows' report fields (``abuse_type`` as an object array of str), in row order."""
    report_ids: list[str | None]
    """The valid rows' ``report_id`` (None where absent)."""
    reasons: dict[int, str]
    """Position in the chunk -> the API's error text, for every invalid row."""


def validate(
    columns: Mapping[str, pa.Array],
    n: int,
    *,
    text_cells: bool,
    objects: Sequence[Any] | None = None,
    preset_invalid: BoolMask | None = None,
) -> Validated:
    """Validate ``n`` rows given as one array per present field.

    ``text_cells``: the cells are CSV text (number fields parse as JSON numbers). ``objects``: the rows as the
    decoded JSON values (JSON Lines), validated as they are for the reason text; ``preset_invalid`` marks rows
    already known to be invalid (a JSON value that is not an object, an unknown key, a type pyarrow could not hold).
    """
    ok, values = vector_check(columns, n, text_cells=text_cells)
    if preset_invalid is not None:
        ok &= ~preset_invalid
    report_id = columns.get("report_id")
    ids: list[str | None] = [None] * n
    if report_id is not None and pa.types.is_string(_plain(report_id).type):
        ids = _plain(report_id).to_pylist()
    reasons: dict[int, str] = {}
    for i in np.flatnonzero(~ok).tolist():
        row = objects[i] if objects is not None else _row_as_json(columns, i, text_cells=text_cells)
        try:
            accepted = ReportIn.model_validate(row)
        except ValidationError as exc:
            reasons[i] = describe(exc)
            continue
        ok[i] = True  # ReportIn is the rule: take the values it validated
        for name in REPORT_FIELDS:
            values[name][i] = getattr(accepted, name)
        ids[i] = accepted.report_id
    selected = {name: v[ok] for name, v in values.items()}
    selected["report_text_len"] = selected["report_text_len"].astype(np.int64)
    selected["popularity"] = selected["popularity"].astype(np.int64)
    selected["lifetime_matches_created"] = selected["lifetime_matches_created"].astype(np.int64)
    return Validated(
        valid=ok,
        columns=selected,
        report_ids=[ids[i] for i in np.flatnonzero(ok).tolist()],
        reasons=reasons,
    )


def vector_check(
    columns: Mapping[str, pa.Array], n: int, *, text_cells: bool
) -> tuple[BoolMask, dict[str, npt.NDArray[Any]]]:
    """The API's rules as array operations: where each row is valid, and its report fields (as float64 for numbers)."""
    ok = np.ones(n, dtype=np.bool_)
    values: dict[str, npt.NDArray[Any]] = {}
    for name in REPORT_FIELDS:
        array = columns.get(name)
        if array is None:
            ok[:] = False
            values[name] = np.zeros(n, dtype=object if name == "abuse_type" else np.float64)
            continue
        array = _plain(array)
        if name == "abuse_type":
            field_ok, values[name] = _abuse_type(array)
        elif name == "profile_rating":
            field_ok, values[name] = _number(
                array, text_cells=text_cells, integer=False, lo=-FLOAT32_MAX, hi=FLOAT32_MAX
            )
        else:
            lo, hi = INT_BOUNDS[name]
            field_ok, values[name] = _number(array, text_cells=text_cells, integer=True, lo=lo, hi=hi)
        ok &= field_ok
    report_id = columns.get("report_id")
    if report_id is not None:
        ok &= _report_id_ok(_plain(report_id))
    return ok, values


def describe(exc: ValidationError) -> str:
    """The API's validation errors as one line: ``field: message; field: message``."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" if e["loc"] else str(e["msg"]) for e in exc.errors()
    )


def _plain(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous array, dictionaries decoded and large strings as strings."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if pa.types.is_large_string(array.type) or pa.types.is_string_view(array.type):
        array = array.cast(pa.string())
    return array


def _valid_mask(array: pa.Array) -> BoolMask:
    return np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=np.bool_)


def _abuse_type(array: pa.Array) -> tuple[BoolMask, npt.NDArray[Any]]:
    n = len(array)
    if not pa.types.is_string(array.type):
        return np.zeros(n, dtype=np.bool_), np.full(n, "", dtype=object)
    ok = pc.fill_null(pc.is_in(array, value_set=pa.array(ABUSE_TYPES)), False)
    return np.asarray(ok.to_numpy(zero_copy_only=False), dtype=np.bool_), array.to_numpy(zero_copy_only=False)


def _number(
    array: pa.Array, *, text_cells: bool, integer: bool, lo: float, hi: float
) -> tuple[BoolMask, npt.NDArray[Any]]:
    """A number field: its values as float64 (exact for the integer range allowed) and where they are valid."""
    n = len(array)
    kind = array.type
    if text_cells and pa.types.is_string(kind):
        is_number = pc.fill_null(pc.match_substring_regex(array, JSON_NUMBER), False)
        array = pc.cast(pc.if_else(is_number, array, pa.scalar("0")), pa.float64())
        present = np.asarray(is_number.to_numpy(zero_copy_only=False), dtype=np.bool_)
    elif pa.types.is_integer(kind) or pa.types.is_floating(kind):
        present = _valid_mask(array)
        array = pc.fill_null(array.cast(pa.float64(), safe=False), 0.0)
    else:  # strings in typed files, booleans, nulls, anything else: never a number
        return np.zeros(n, dtype=np.bool_), np.zeros(n, dtype=np.float64)
    v = np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.float64)
    with np.errstate(invalid="ignore"):
        ok = present & np.isfinite(v) & (v >= lo) & (v <= hi)
        if integer:
            ok &= v == np.floor(v)
    return ok, v


def _report_id_ok(array: pa.Array) -> BoolMask:
    """Absent (null), or text of 1..128 characters without NUL."""
    n = len(array)
    if pa.types.is_null(array.type):
        return np.ones(n, dtype=np.bool_)
    if not pa.types.is_string(array.type):
        return ~_valid_mask(array)
    length = pc.utf8_length(array)
    good = pc.and_(
        pc.and_(pc.greater_equal(length, 1), pc.less_equal(length, REPORT_ID_MAX)),
        pc.invert(pc.match_substring(array, "\x00")),
    )
    return np.asarray(pc.fill_null(good, True).to_numpy(zero_copy_only=False), dtype=np.bool_)


def _row_as_json(columns: Mapping[str, pa.Array], i: int, *, text_cells: bool) -> dict[str, Any]:
    """Row ``i`` as the JSON object a client would send (nulls left out, CSV number literals as numbers)."""
    row: dict[str, Any] = {}
    for name, array in columns.items():
        value = array[i].as_py()
        if value is None:
            continue
        if text_cells and isinstance(value, str) and (name in INT_BOUNDS or name == "profile_rating"):
            value = _json_number(value)
        row[name] = value
    return row


def _json_number(value: str) -> Any:
    """A CSV cell holding a JSON number literal as that number (Python's parser, as exact as JSON's); else the text."""
    return json.loads(value) if _JSON_NUMBER_RE.fullmatch(value) else value
