"""The view's URL parameters: their keys, defaults and allowed values, and the notices for a link that
carries values the view cannot use (each such value opens at its default, and the page says so).

Every widget that shapes the view is bound to the query parameter of the same name
(``bind="query-params"``), so the address bar always holds the whole view.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl

from cartography_core import REGIONS, SCORES, RegionThresholds
from cartography_core.reviews import OUTCOMES
from cartography_core.reviews.invite import NOT_SCOPE
from cartography_core.scores import CONFIDENCE_MAX, VARIABILITY_MAX

ALL_CLASSES = "all classes"
DEFAULT_REGIONS = RegionThresholds()
LIKELY_MISLABELED = "likely mislabeled"
SUBSETS = ("hard-to-learn", "ambiguous", "easy-to-learn", "other", LIKELY_MISLABELED, "brush", "all")
RULES = ("thresholds", "top q%")
ORDERS = ("hardest first", "easiest first")
TABS = ("Data map", "Per class", "Runs", "Reviews")
PAGES = ("map", "review")
VERDICT_FILTERS = ("any", *OUTCOMES)
COLORS = ("correctness", "verdict")
FREE = NOT_SCOPE | {"tab", "color"}
"""URL parameters that an invite's view may differ in: who, where, and how the view is drawn."""
ALWAYS = frozenset({"run"})
"""Written into every link even at its default: the default run is the first one under the log root, which
changes when a dataset is added, and a link must never open other data than the view it was copied from."""


@dataclass(frozen=True)
class Param:
    """One bound widget: its URL key, default and how a URL value is checked."""

    key: str
    default: object
    choices: Sequence[str] | None = None  # for select boxes, radios, tabs
    bounds: tuple[float, float] | None = None  # for sliders
    pair: bool = False  # a range slider: two values


def params(
    run_ids: Sequence[str], class_names: Sequence[str], sortable: Sequence[str] = tuple(SCORES)
) -> dict[str, Param]:
    """The view's parameters, given the runs found, the classes of the run shown and the scores it defines
    (a log of probabilities has no aum)."""
    out = [
        run_param(run_ids),
        Param("cls", ALL_CLASSES, choices=[ALL_CLASSES, *class_names]),
        Param("tab", TABS[0], choices=TABS),
        Param("rule", RULES[0], choices=RULES),
        Param("amb_var", DEFAULT_REGIONS.ambiguous_min_variability, bounds=(0.0, VARIABILITY_MAX)),
        Param("easy_conf", DEFAULT_REGIONS.easy_min_confidence, bounds=(0.0, CONFIDENCE_MAX)),
        Param("hard_conf", DEFAULT_REGIONS.hard_max_confidence, bounds=(0.0, CONFIDENCE_MAX)),
        Param("q", 33, bounds=(1, 50)),
        Param("subset", SUBSETS[0], choices=SUBSETS),
        Param("var_range", (0.0, VARIABILITY_MAX), bounds=(0.0, VARIABILITY_MAX), pair=True),
        Param("conf_range", (0.0, CONFIDENCE_MAX), bounds=(0.0, CONFIDENCE_MAX), pair=True),
        Param("sort", "confidence", choices=sortable),
        Param("order", ORDERS[0], choices=ORDERS),
        Param("search", ""),
        Param("verdict", VERDICT_FILTERS[0], choices=VERDICT_FILTERS),
        Param("color", COLORS[0], choices=COLORS),
        Param("page", PAGES[0], choices=PAGES),
    ]
    return {p.key: p for p in out}


def run_param(run_ids: Sequence[str]) -> Param:
    """The ``run`` parameter alone: what a link can be checked against before its run is loaded."""
    return Param("run", run_ids[0] if run_ids else None, choices=run_ids)


def url_notices(query: Mapping[str, Sequence[str]], spec: Mapping[str, Param]) -> list[str]:
    """One sentence per URL value the view cannot use. ``query`` maps each key to all its values."""
    notices = []
    for key, values in query.items():
        p = spec.get(key)
        if p is None and key not in NOT_SCOPE and len(spec) > 1:  # the whole view's spec: an unknown key
            notices.append(f"The link's {key}={', '.join(values)!r} is not a setting of this page; it is ignored.")
            continue
        if p is None or not values:
            continue
        problem = _problem(p, list(values))
        if problem:
            shown = ", ".join(values)
            default = p.default if not p.pair else f"{p.default[0]} to {p.default[1]}"
            notices.append(f"The link's {key}={shown!r} {problem}; showing the default ({default}) instead.")
    return notices


def _problem(p: Param, values: list[str]) -> str | None:
    if p.choices is not None:
        return None if values[-1] in p.choices else "is not one of the choices here"
    if p.bounds is None:
        return None
    if p.pair and len(values) != 2:
        return "needs two values (low and high)"
    try:
        nums = [float(v) for v in (values if p.pair else values[-1:])]
    except ValueError:
        return "is not a number"
    lo, hi = p.bounds
    if any(not lo <= x <= hi for x in nums):
        return f"is outside {lo} to {hi}"
    if p.pair and nums[0] > nums[1]:
        return "has its low value above its high value"
    return None


def share_query(values: Mapping[str, object], spec: Mapping[str, Param]) -> list[tuple[str, str]]:
    """(key, value) pairs of the view's URL, as the widget binding writes them: a value equal to its default
    is left out (except the keys of :data:`ALWAYS`), and a range gives its key twice (low, then high)."""
    out: list[tuple[str, str]] = []
    for key, p in spec.items():
        v = values.get(key)
        if v is None or v == "" or (key not in ALWAYS and _same(v, p.default)):
            continue
        out.extend((key, _fmt(x)) for x in (v if p.pair else [v]))
    return out


def scope_matches(scope: str, values: Mapping[str, object], spec: Mapping[str, Param]) -> bool:
    """Whether the view ``values`` is the one an invite's ``scope`` names: every view parameter outside
    :data:`FREE` has the scope's value, or its default where the scope leaves it out (numbers compared as
    numbers, so ``0.50`` and ``0.5`` agree)."""
    wanted: dict[str, list[str]] = {}
    for k, v in parse_qsl(scope, keep_blank_values=True):
        wanted.setdefault(k, []).append(v)
    current: dict[str, list[str]] = {}
    for k, v in share_query(values, spec):
        current.setdefault(k, []).append(v)
    if set(wanted) - set(spec):
        return False  # a scope naming something this view does not have
    return all(_norm(spec[k], wanted.get(k)) == _norm(spec[k], current.get(k)) for k in set(spec) - FREE)


def _norm(p: Param, values: list[str] | None) -> tuple:
    if values is None:
        values = [_fmt(x) for x in (p.default if p.pair else [p.default])]
    if p.bounds is not None:
        try:
            return tuple(round(float(v), 9) for v in values)
        except ValueError:
            return tuple(values)
    return tuple(values)


def _same(a, b) -> bool:
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) < 1e-12
    return a == b


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


_BIDI = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def example_text(value) -> str:
    """An example's text as shown: a null (an id the examples file lacks, or a row without text) says so."""
    return "(no text for this id in the examples file)" if value is None else str(value)


def sentence(text: str) -> str:
    """A core message (lower-case start, no full stop) as a notice's sentence, Markdown-escaped: class and run
    names in it come from users (:func:`md_escape`)."""
    text = text[:1].upper() + text[1:]
    return md_escape(text if text.endswith(".") else text + ".")


def md_escape(text: str) -> str:
    """``text`` with every Markdown control character backslash-escaped, for elements that render Markdown
    (titles, captions, warnings): run names, class names, link values and log messages come from users, and
    Markdown would render an image link planted in them (the browser would fetch it), a link, a bare URL
    (``:`` is escaped, so none is made a link) or a ``:red[...]`` directive. Bidirectional-override
    characters, which can make "evil" read as "live", are replaced by U+FFFD."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~$:&])", r"\\\1", _BIDI.sub("\ufffd", str(text)))


def file_slug(*parts: str) -> str:
    """A file-name-safe join: ('rotten_tomatoes/seed-0', 'hard-to-learn') -> 'rotten_tomatoes-seed-0_hard-to-learn'."""
    return "_".join(re.sub(r"[^A-Za-z0-9._-]+", "-", p).strip("-") for p in parts if p)


REGION_INDEX = {name: i for i, name in enumerate(REGIONS)}
