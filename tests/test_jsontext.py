"""The JSON encoders made once (``orca_hpc.jsontext``) give json's own text, and refuse what it refuses."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orca_hpc import jsontext

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(values)
def test_the_same_text_as_json(value: Any) -> None:
    compact = jsontext.encoder(compact=True, ascii_only=False, allow_nan=False)
    spaced = jsontext.encoder(compact=False, ascii_only=True, allow_nan=True)
    assert compact(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert spaced(value) == json.dumps(value)


def test_refuses_what_json_refuses() -> None:
    compact = jsontext.encoder(compact=True, ascii_only=False, allow_nan=False)
    with pytest.raises(ValueError):
        compact({"en": math.nan})
    assert jsontext.encoder(compact=False, ascii_only=True, allow_nan=True)([math.nan]) == "[NaN]"
    with pytest.raises(TypeError, match="set is not JSON serializable"):
        compact({"x": {1}})
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="Circular reference"):
        compact(cycle)
