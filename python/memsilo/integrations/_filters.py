"""Framework filters onto memsilo's filter language (no framework imports here).

memsilo's filter addresses memory fields (``tags``, ``created_at``, ...) and metadata paths
(``metadata.<path>``). The frameworks filter on their own documents' fields, which the adapters
keep in the memory's metadata (under ``base``), so each field key gains that prefix; operators
(``$eq`` ... ``$contains_all``) and the logical keys ``$and``/``$or``/``$not`` pass unchanged.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

LOGICAL_LISTS = ("$and", "$or")


def scoped_filter(filter: Optional[Mapping[str, Any]], base: str) -> Optional[Dict[str, Any]]:
    """``filter`` with each field key ``k`` rewritten to ``{base}.k``; ``None`` stays ``None``."""
    if filter is None:
        return None
    out: Dict[str, Any] = {}
    for key, value in filter.items():
        if key in LOGICAL_LISTS:
            out[key] = [scoped_filter(part, base) for part in value]
        elif key == "$not":
            out[key] = scoped_filter(value, base)
        elif key.startswith("$"):
            out[key] = value  # unknown operator: the engine names it in its error
        else:
            out[f"{base}.{key}"] = value
    return out


def all_of(*parts: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    """The conjunction of the non-empty filters given (``None`` when there are none)."""
    present: List[Dict[str, Any]] = [dict(p) for p in parts if p]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    return {"$and": present}
