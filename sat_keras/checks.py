"""The checks settings objects run on their fields when they are built.

Each raises `ValueError` saying what was received and what was expected
(`"beam_size must be a positive integer. Received: beam_size=0"`). Booleans
are not integers here, and numbers must be finite. `fill_defaults` gives
the frozen settings dataclasses their rule that None means "not given".
"""

import dataclasses
import math
import numbers


def _fail(name, expected, value):
    raise ValueError(f"{name} must be {expected}. Received: {name}={value!r}")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value):
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def _require(name, value, valid, expected, optional):
    """Fails unless `valid(value)`, or `value` is None and `optional`."""
    if not (optional and value is None) and not valid(value):
        _fail(name, expected + (" or None" if optional else ""), value)


def positive_int(name, value, optional=False):
    """An integer of at least 1 (or None when `optional`)."""
    _require(name, value, lambda v: _is_int(v) and v >= 1, "a positive integer", optional)


def non_negative_int(name, value, optional=False):
    """An integer of at least 0 (or None when `optional`)."""
    _require(name, value, lambda v: _is_int(v) and v >= 0, "a non-negative integer", optional)


def positive_number(name, value, optional=False):
    """A finite number above 0 (or None when `optional`)."""
    _require(name, value, lambda v: _is_number(v) and v > 0, "a positive number", optional)


def number(name, value, low=None, high=None):
    """A finite number in [low, high) (either bound may be None: unbounded)."""
    inside = _is_number(value) and (low is None or value >= low) and (
        high is None or value < high)
    if not inside:
        bounds = ("any finite number" if low is None and high is None else
                  f"a number of at least {low:g}" if high is None else
                  f"a number below {high:g}" if low is None else
                  f"a number of at least {low:g} and below {high:g}")
        _fail(name, bounds, value)


def boolean(name, value):
    """True or False (not 0 or 1)."""
    if not isinstance(value, bool):
        _fail(name, "True or False", value)


def one_of(name, value, choices, optional=False):
    """One of `choices` (or None when `optional`)."""
    _require(name, value, lambda v: isinstance(v, (str, int, float)) and v in choices,
             f"one of {list(choices)}", optional)


def text(name, value, optional=False):
    """A non-empty string (or None when `optional`): a path, a name."""
    _require(name, value, lambda v: isinstance(v, str) and bool(v), "a non-empty string",
             optional)


def fill_defaults(settings):
    """None means "not given": a field left None takes its default, in place.

    For a frozen dataclass, from its `__post_init__`, before the checks. A
    field with no default that is None raises `ValueError`.
    """
    for field in dataclasses.fields(settings):
        if getattr(settings, field.name) is not None:
            continue
        if field.default is not dataclasses.MISSING:
            object.__setattr__(settings, field.name, field.default)
        elif field.default_factory is not dataclasses.MISSING:
            object.__setattr__(settings, field.name, field.default_factory())
        else:
            raise ValueError(f"{field.name} is required; None means not given. "
                             f"Received: {field.name}=None")


def given(values):
    """The entries of a dict whose value is not None (None: not given)."""
    return {name: value for name, value in values.items() if value is not None}


def check_names(kind, names, known):
    """Raises ValueError for names not in `known`, naming them and the known ones."""
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"Unknown {kind} {unknown}. Known: {sorted(known)}")
