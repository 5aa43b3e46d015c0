"""Preference and SFT records: the dedup key text of each record (one field, several, or a
chat), and :func:`dedup_records`, which returns the kept records in the input's own type."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fastalign.dedup.local import DedupResult, dedup, exact


def field_text(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        raise TypeError(f"{where} is None (drop or fill missing rows first)")
    if isinstance(value, (Sequence, np.ndarray)) and all(isinstance(m, dict) for m in value):
        # a chat: one "role: content" line per message
        lines = []
        for k, msg in enumerate(value):
            content = msg.get("content")
            if not isinstance(content, str):
                raise TypeError(
                    f"{where}[{k}]['content'] must be a str, not {type(content).__name__}"
                )
            lines.append(f"{msg.get('role', '')}: {content}")
        return "\n".join(lines)
    raise TypeError(f"{where} must be a str or a list of chat messages, not {type(value).__name__}")


def key_text(parts: list[str]) -> str:
    """The dedup key of one record from its fields' texts: a lone field as is, several joined
    by a record-separator line (every path, local or Ray, must build keys the same way)."""
    return parts[0] if len(parts) == 1 else "\n\x1e\n".join(parts)


def record_texts(records: Any, key: str | Sequence[str] = "prompt") -> list[str]:
    """The dedup key text of each record: the ``key`` field, or several fields joined by a
    separator line. Records may be a list of dicts, a Hugging Face ``datasets.Dataset``, a
    pyarrow ``Table`` or a pandas ``DataFrame``; a field may be a string or a chat (a list of
    ``{"role", "content"}`` messages, one ``role: content`` line each).

    >>> record_texts([{"prompt": "Hi", "chosen": "A", "rejected": "B"}], ["prompt", "chosen"])
    ['Hi\\n\\x1e\\nA']
    """
    keys = [key] if isinstance(key, str) else list(key)
    if not keys or not all(isinstance(k, str) for k in keys):
        raise TypeError(f"key must be a column name or a list of them, got {key!r}")
    columns = columns_of(records, keys)
    n = len(columns[0])
    out = []
    for i in range(n):
        parts = [
            field_text(col[i], f"row {i}: {k!r}") for k, col in zip(keys, columns, strict=True)
        ]
        out.append(key_text(parts))
    return out


def columns_of(records: Any, keys: list[str]) -> list[Sequence[Any]]:
    names = getattr(records, "column_names", None)
    if names is None and hasattr(records, "columns") and hasattr(records, "iloc"):
        names = list(records.columns)  # pandas
    if names is not None:
        missing = [k for k in keys if k not in names]
        if missing:
            raise KeyError(f"no column {missing[0]!r} (columns: {list(names)})")
        cols = []
        for k in keys:
            col = records[k]
            if hasattr(col, "to_pylist"):
                col = col.to_pylist()
            elif hasattr(col, "tolist"):
                col = col.tolist()
            cols.append(list(col))
        return cols
    if isinstance(records, (str, bytes)) or not isinstance(records, Sequence):
        raise TypeError(
            "records must be a list of dicts, a datasets.Dataset, a pyarrow Table or a "
            f"pandas DataFrame, not {type(records).__name__}"
        )
    cols = [[] for _ in keys]
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise TypeError(f"row {i} is {type(rec).__name__}, not a dict")
        for c, k in zip(cols, keys, strict=True):
            if k not in rec:
                raise KeyError(f"row {i} has no field {k!r}")
            c.append(rec[k])
    return cols


def dedup_records(
    records: Any,
    key: str | Sequence[str] = "prompt",
    *,
    exact_only: bool = False,
    **kwargs: Any,
) -> tuple[Any, DedupResult]:
    """Deduplicates preference or SFT records by ``key`` (``"prompt"``, or e.g.
    ``["prompt", "chosen", "rejected"]``) and returns ``(kept records, result)``: the kept
    records have the input's type (a list, ``datasets.Dataset`` via ``select``, pyarrow
    ``Table`` via ``take``, pandas ``DataFrame`` via ``iloc``). ``exact_only=True`` uses
    :func:`exact`; other keyword arguments go to :func:`dedup`.

    >>> rows = [{"prompt": "Say hi to Bob"}, {"prompt": "say hi to bob!"}, {"prompt": "Other"}]
    >>> kept, r = dedup_records(rows, exact_only=True)
    >>> [x["prompt"] for x in kept], r.n_removed
    (['Say hi to Bob', 'Other'], 1)
    """
    texts = record_texts(records, key)
    result = exact(texts, **kwargs) if exact_only else dedup(texts, **kwargs)
    idx = np.flatnonzero(result.keep)
    if type(records).__module__.startswith("pyarrow"):
        kept = records.take(idx)  # pyarrow.Table
    elif hasattr(records, "select") and hasattr(records, "column_names"):
        kept = records.select(idx)  # datasets.Dataset
    elif hasattr(records, "iloc"):
        kept = records.iloc[idx]
    else:
        kept = [records[i] for i in idx]
    return kept, result
