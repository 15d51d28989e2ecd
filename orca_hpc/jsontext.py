"""JSON text from the C encoder that ``json`` itself runs, made once per style.

``json.dumps`` and ``JSONEncoder.encode`` make that encoder again on every call, which costs more than
encoding one small record: the ledger encodes a job or attempt and a submit a ``spec.json`` thousands
of times per command. The encoders made here skip the check for cycles (records have none): a cycle
recurses until Python stops it, and is then handed to the checking encoder, which names it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json import encoder as _json_encoder
from typing import Any


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def encoder(*, compact: bool, ascii_only: bool, allow_nan: bool) -> Callable[[Any], str]:
    """The text ``json.JSONEncoder`` gives with these settings (``compact``: no spaces after ``,`` and
    ``:``), for plain JSON types (``TypeError`` otherwise; ``ValueError`` for NaN unless allowed)."""
    item, key = (",", ":") if compact else (", ", ": ")
    checked = json.JSONEncoder(separators=(item, key), ensure_ascii=ascii_only, allow_nan=allow_nan).encode
    make = getattr(_json_encoder, "c_make_encoder", None)
    if make is None:  # a Python without the C accelerator
        return checked
    strings = _json_encoder.encode_basestring_ascii if ascii_only else _json_encoder.encode_basestring
    fast = make(None, _not_json, strings, None, key, item, False, False, allow_nan)

    def encode(value: Any) -> str:
        try:
            return "".join(fast(value, 0))
        except RecursionError:
            return checked(value)

    return encode
