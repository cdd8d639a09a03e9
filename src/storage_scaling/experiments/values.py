"""What a spec's block key accepts: each key's type and range, declared once.

``kinds.Experiment.keys`` (an experiment's own keys) and ``specs.COMMON_BLOCK_KEYS`` (the keys of
every block) map each key to one of these values; ``specs.check_spec`` checks every value of a
block against them before any data is read, and a bad one is one line naming the key, the block
and what is expected (with an example of a good value).
"""

from __future__ import annotations

import math
import numbers


def _num(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _either(words: list[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


class Value:
    """What one block key accepts: ``words`` say it, ``example`` is a good value (as TOML);
    a ``required`` key must be given. :meth:`check` raises ``ValueError`` for a bad value."""

    words = ""

    def __init__(self, example: str, required: bool = False):
        self.example, self.required = example, required

    def problem(self, key: str, value) -> str | None:
        """What is wrong with ``value`` of ``key``: None (nothing), else a detail for the message ("" for none)."""
        raise NotImplementedError

    def check(self, key: str, value, where: str) -> None:
        problem = self.problem(key, value)
        if problem is not None:
            raise ValueError(f"{key} in {where} must be {self.words}, e.g. {key} = {self.example}; "
                             f"got {value!r}{problem}")

    def missing(self, key: str, where: str, got: str = "") -> ValueError:
        return ValueError(f"{where} needs {key!r}: {self.words}, e.g. {key} = {self.example}{got}")


class Scalar(Value):
    """An integer or a number in a range, and/or one of a few strings; with ``none``, None is fine too
    (``none_words`` say what it means, e.g. ", or absent for all").

    ``name`` names the number in the words ("a JPEG XL distance in (0, 25]"); ``range_words``
    replaces the range's own words where they read better ("positive"); ``words`` all of them."""

    def __init__(self, kind: str | None = None, lo=None, hi=None, *, open_lo=False, open_hi=False, texts=(),
                 none=False, none_words="", name=None, range_words=None, words=None, example="", required=False):
        super().__init__(example, required)
        assert kind in (None, "integer", "number")
        self.kind, self.lo, self.hi, self.open_lo, self.open_hi = kind, lo, hi, open_lo, open_hi
        self.texts, self.none = tuple(texts), none
        if range_words is None:
            if lo is not None and hi is not None:
                range_words = f"in {'(' if open_lo else '['}{_num(lo)}, {_num(hi)}{')' if open_hi else ']'}"
            elif lo is not None:
                range_words = f"{'>' if open_lo else '>='} {_num(lo)}"
            else:
                range_words = ""
        self.range_words = range_words
        noun = name or kind
        quoted = [repr(t) for t in self.texts]
        self.type_words = _either(([f"{'an' if kind == 'integer' else 'a'} {kind}"] if kind else []) + quoted)
        if kind is None:
            singular = plural = self.type_words
        else:
            singular = f"{'an' if noun[0] in 'aeiou' else 'a'} {noun} {range_words}".strip()
            plural = f"{noun}s {range_words}".strip()
            if quoted:
                singular, plural = f"{singular} or {_either(quoted)}", f"{plural} and/or {_either(quoted)}"
        self.words = words or singular + none_words
        self.plural = plural

    def fault(self, value) -> str | None:
        """None, or "type" (not such a value at all), or "range" (outside the range)."""
        if value is None and self.none:
            return None
        if isinstance(value, str):
            return None if value in self.texts else "type"
        if self.kind is None or isinstance(value, bool):
            return "type"
        if self.kind == "integer" and not isinstance(value, numbers.Integral):
            return "type"
        if not isinstance(value, numbers.Real):
            return "type"
        if not math.isfinite(value):
            return "range"
        if self.lo is not None and (value <= self.lo if self.open_lo else value < self.lo):
            return "range"
        if self.hi is not None and (value >= self.hi if self.open_hi else value > self.hi):
            return "range"
        return None

    def problem(self, key, value):
        return None if self.fault(value) is None else ""


class Text(Value):
    """Any non-empty string (a name checked elsewhere against the known ones)."""

    def __init__(self, words: str, example: str, required: bool = False):
        super().__init__(example, required)
        self.words = words

    def problem(self, key, value):
        return None if isinstance(value, str) and value else ""


class Table(Text):
    """A table (a dict) of settings, checked elsewhere."""

    def problem(self, key, value):
        return None if isinstance(value, dict) else ""


class Pair(Value):
    """A list item ``[budget bytes > 0, n >= 1]`` (explicit allocations)."""

    type_words = range_words = "a pair [budget bytes > 0, n >= 1]"
    plural = "[budget bytes, n] pairs"

    def __init__(self):
        super().__init__("")
        self.budget, self.n = Scalar("number", 0, open_lo=True), Scalar("integer", 1)

    def fault(self, value):
        ok = isinstance(value, (list, tuple)) and len(value) == 2 and self.budget.fault(value[0]) is None \
            and self.n.fault(value[1]) is None
        return None if ok else "type"


class ListOf(Value):
    """A list of ``item`` values (each called a ``noun`` in a message), non-empty unless said."""

    def __init__(self, item, noun: str, *, example: str, required=False, non_empty=True, words=None):
        super().__init__(example, required)
        self.item, self.noun, self.non_empty = item, noun, non_empty
        self.words = words or f"a {'non-empty ' if non_empty else ''}list of {item.plural}"

    def check(self, key, value, where):
        if isinstance(value, list) and not value and self.non_empty:
            raise self.missing(key, where, "; got []")
        super().check(key, value, where)

    def problem(self, key, value):
        if not isinstance(value, list):
            return ""
        for item in value:
            fault = self.item.fault(item)
            if fault == "type":
                return f": {self.noun} {item!r} must be {self.item.type_words}"
            if fault == "range":
                return f": {key!r} must all be {self.item.range_words}, and {self.noun} {item!r} is not"
        return None


class LawTable(Value):
    """``"grid_fit"`` or a table of law parameters (``law.LawParams``: A, alpha, B, beta > 0, E >= 0)."""

    words = ("'grid_fit' (the law fitted to our grid) or a table of law parameters {A, alpha, B, beta > 0; "
             "optional E >= 0}")
    REQUIRED, OPTIONAL = ("A", "alpha", "B", "beta"), ("E",)

    def problem(self, key, value):
        if value == "grid_fit":
            return None
        if not isinstance(value, dict):
            return ""
        unknown = sorted(set(value) - set(self.REQUIRED + self.OPTIONAL), key=str)
        absent = [k for k in self.REQUIRED if k not in value]
        if unknown or absent:
            return f": {'unknown ' + str(unknown) if unknown else ''}{', ' if unknown and absent else ''}" \
                   f"{'missing ' + str(absent) if absent else ''}"
        for k, v in value.items():
            bound = Scalar("number", 0, open_lo=k != "E")
            if bound.fault(v) is not None:
                return f": {k} must be a number {bound.range_words}"
        return None
