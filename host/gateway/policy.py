"""The policy: what happens to each detected span, and whether a request is refused.

Configuration is parsed and checked once, at load (:func:`load_policy` or
:meth:`Policy.compile`); deciding (:func:`decide`) is a pure function of the compiled policy, the
route, the detections and the segment lengths. Nothing here reads the environment: the
environment's mode override is an argument.

Rules enforced here:

* **Modes.** ``dry-run`` decides and reports nothing outward (audit only); ``report`` also asks the
  gateway to annotate the response; ``enforce`` applies the actions. Precedence, one source each:
  the override given to the constructor (the environment) > the route's ``mode`` > the global
  ``mode`` (default ``enforce``). :meth:`Policy.mode_for` reports the effective mode.
* **Actions and strength.** ``allow`` 0 < ``mask`` = ``redact`` 1 < ``tokenize`` = ``encrypt`` 2 <
  ``block`` 3. Among equal strengths the one that reveals less wins a merge (redact over mask,
  encrypt over tokenize), so merging is deterministic.
* **Hard-block types** (:data:`HARD_BLOCK_TYPES`: secret, api_key, private_key, jwt, card,
  us_ssn, kr_rrn) are always ``block``: configuring anything weaker, globally or per route, is a
  :class:`PolicyConfigError`; and they are enforced in *every* mode, so neither a route's mode nor
  the environment override can let one through.
* **Unknown types** (a type no table names, e.g. from a third-party plugin) take ``unknown``
  (default ``redact``), which may not be set below ``mask``: an unknown type fails closed.
* **Profiles only strengthen.** A route profile's action for a type must be at least as strong as
  the global table's (or ``unknown`` for types the table does not name); a weaker one is a
  :class:`PolicyConfigError` naming the route and the type. A profile's ``unknown`` must be at least
  the global one. Profiles for routes the gateway does not serve are errors too.
* **Overlaps.** Detections of one segment whose spans overlap (share at least one character),
  directly or through a chain, merge into one span covering their union, with the strongest
  action among them. Adjacent spans (one ends where the next starts) stay separate.
* **Malformed detections** (segment or offsets out of range, a type that is not ``[a-z0-9_.-]``)
  block the request with reason ``invalid-detection`` in every mode: a plugin that cannot say
  where its finding is must not leave the text unprotected.
* A request is blocked when an *applied* span's action is ``block``; the reason is
  ``blocked:<type>`` for the first such span in body order.
* The outcome's audit counts hold types, actions and numbers only, never text.

Example::

    >>> from haechi.sdk.models import Detection
    >>> policy = load_policy({"mode": "enforce", "actions": {"email": "mask"}})
    >>> out = decide(policy, "/v1/chat/completions",
    ...              [Detection("email", 0, 5, 16), Detection("phone", 0, 12, 20)], [30])
    >>> [(s.start, s.end, s.action.value, s.types) for s in out.spans]
    [(5, 20, 'mask', ('email', 'phone'))]
    >>> decide(policy, "/v1/messages", [Detection("card", 0, 0, 16)], [16]).reason
    'blocked:card'
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Final, Protocol

from .adapters import ROUTES

__all__ = [
    "DEFAULT_ACTIONS",
    "HARD_BLOCK_TYPES",
    "INVALID_DETECTION",
    "UNKNOWN_FLOOR",
    "Action",
    "DetectionLike",
    "Mode",
    "Policy",
    "PolicyConfig",
    "PolicyConfigError",
    "PolicyOutcome",
    "RoutePolicy",
    "RouteProfile",
    "SpanDecision",
    "TypeCount",
    "decide",
    "load_policy",
]


class Mode(StrEnum):
    DRY_RUN = "dry-run"
    REPORT = "report"
    ENFORCE = "enforce"


class Action(StrEnum):
    """Declaration order breaks ties within a strength: later reveals less."""

    ALLOW = "allow"
    MASK = "mask"
    REDACT = "redact"
    TOKENIZE = "tokenize"
    ENCRYPT = "encrypt"
    BLOCK = "block"

    @property
    def strength(self) -> int:
        return _STRENGTH[self]

    @property
    def rank(self) -> tuple[int, int]:
        """Total order used when merging: strength first, then what reveals less."""
        return (_STRENGTH[self], _TIE_BREAK[self])


_STRENGTH: Final = {
    Action.ALLOW: 0,
    Action.MASK: 1,
    Action.REDACT: 1,
    Action.TOKENIZE: 2,
    Action.ENCRYPT: 2,
    Action.BLOCK: 3,
}
_TIE_BREAK: Final = {action: index for index, action in enumerate(Action)}

HARD_BLOCK_TYPES: Final = frozenset(
    {"secret", "api_key", "private_key", "jwt", "card", "us_ssn", "kr_rrn"}
)
DEFAULT_ACTIONS: Final[Mapping[str, Action]] = MappingProxyType(
    {
        **dict.fromkeys(HARD_BLOCK_TYPES, Action.BLOCK),
        "email": Action.REDACT,
        "phone": Action.MASK,
        "iban": Action.REDACT,
        "ipv4": Action.MASK,
        "ipv6": Action.MASK,
    }
)
DEFAULT_UNKNOWN: Final = Action.REDACT
UNKNOWN_FLOOR: Final = Action.MASK
INVALID_DETECTION: Final = "invalid-detection"

_TYPE = re.compile(r"[a-z0-9_.-]{1,64}\Z")
_TOP_KEYS: Final = frozenset({"mode", "actions", "unknown", "routes"})
_ROUTE_KEYS: Final = frozenset({"mode", "actions", "unknown"})


class PolicyConfigError(ValueError):
    """A policy configuration that cannot be loaded; ``key`` is the dotted TOML key at fault."""

    def __init__(self, key: str, detail: str) -> None:
        self.key = key
        self.detail = detail
        super().__init__(f"{key}: {detail}")


class DetectionLike(Protocol):
    """What the policy reads of a detection (:class:`haechi.sdk.models.Detection` fits)."""

    @property
    def type(self) -> str: ...
    @property
    def segment(self) -> int: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...


# ---------------------------------------------------------------------------------- config


def _frozen(actions: Mapping[str, Action]) -> Mapping[str, Action]:
    return MappingProxyType(dict(actions))


@dataclass(frozen=True, slots=True)
class RouteProfile:
    """Per-route settings: a mode, and actions that may only strengthen the global table."""

    route: str
    mode: Mode | None = None
    actions: Mapping[str, Action] = field(default_factory=dict)
    unknown: Action | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "actions", _frozen(self.actions))


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """The ``[policy]`` table as written: ``actions`` override :data:`DEFAULT_ACTIONS`."""

    mode: Mode = Mode.ENFORCE
    actions: Mapping[str, Action] = field(default_factory=dict)
    unknown: Action = DEFAULT_UNKNOWN
    routes: tuple[RouteProfile, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "actions", _frozen(self.actions))

    @classmethod
    def from_toml(cls, table: Mapping[str, object], key: str = "policy") -> PolicyConfig:
        """Parse a ``[policy]`` TOML table; unknown keys and bad values name their key."""
        _closed(_table(table, key), _TOP_KEYS, key)
        routes = _table(table.get("routes", {}), f"{key}.routes")
        return cls(
            mode=_mode(table.get("mode", Mode.ENFORCE.value), f"{key}.mode"),
            actions=_actions(table.get("actions", {}), f"{key}.actions"),
            unknown=_action(table.get("unknown", DEFAULT_UNKNOWN.value), f"{key}.unknown"),
            routes=tuple(
                _route_profile(route, value, f"{key}.routes.{_quote(route)}")
                for route, value in routes.items()
            ),
        )


def _quote(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else f'"{name}"'


def _table(value: object, key: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise PolicyConfigError(key, f"must be a table, not {type(value).__name__}")
    return value


def _closed(table: Mapping[str, object], allowed: frozenset[str], key: str) -> None:
    for name in table:
        if name not in allowed:
            raise PolicyConfigError(
                f"{key}.{_quote(name)}", f"unknown key (allowed: {sorted(allowed)})"
            )


def _mode(value: object, key: str) -> Mode:
    for mode in Mode:
        if value == mode.value:
            return mode
    raise PolicyConfigError(key, f"must be one of {[m.value for m in Mode]}")


def _action(value: object, key: str) -> Action:
    for action in Action:
        if value == action.value:
            return action
    raise PolicyConfigError(key, f"must be one of {[a.value for a in Action]}")


def _actions(value: object, key: str) -> dict[str, Action]:
    return {
        name: _action(action, f"{key}.{_quote(name)}")
        for name, action in _table(value, key).items()
    }


def _route_profile(route: str, value: object, key: str) -> RouteProfile:
    table = _table(value, key)
    _closed(table, _ROUTE_KEYS, key)
    mode = table.get("mode")
    unknown = table.get("unknown")
    return RouteProfile(
        route=route,
        mode=None if mode is None else _mode(mode, f"{key}.mode"),
        actions=_actions(table.get("actions", {}), f"{key}.actions"),
        unknown=None if unknown is None else _action(unknown, f"{key}.unknown"),
    )


# ---------------------------------------------------------------------------------- compiled


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """The effective settings for one route, after every check and merge."""

    mode: Mode
    actions: Mapping[str, Action]
    unknown: Action

    def action_for(self, type_: str) -> Action:
        return self.actions.get(type_, self.unknown)


@dataclass(frozen=True, slots=True)
class Policy:
    """A checked policy. Build it with :meth:`compile` or :func:`load_policy`."""

    default: RoutePolicy
    routes: Mapping[str, RoutePolicy]
    mode_override: Mode | None = None

    def for_route(self, route: str) -> RoutePolicy:
        return self.routes.get(route, self.default)

    def mode_for(self, route: str) -> Mode:
        """The effective mode: the override, else the route's, else the global mode."""
        return self.for_route(route).mode

    @classmethod
    def compile(
        cls,
        config: PolicyConfig,
        *,
        mode_override: Mode | None = None,
        known_routes: Collection[str] | None = None,
        key: str = "policy",
    ) -> Policy:
        """Check ``config`` (hard-block floors, unknown floor, strengthen-only profiles)."""
        known = ROUTES.keys() if known_routes is None else known_routes
        for name, action in config.actions.items():
            _check_type(name, f"{key}.actions.{_quote(name)}")
            _check_hard_floor(name, action, f"{key}.actions.{_quote(name)}")
        if config.unknown.strength < UNKNOWN_FLOOR.strength:
            raise PolicyConfigError(
                f"{key}.unknown", f"unknown types fail closed: at least {UNKNOWN_FLOOR.value}"
            )
        base = RoutePolicy(
            mode=mode_override or config.mode,
            actions=_frozen({**DEFAULT_ACTIONS, **config.actions}),
            unknown=config.unknown,
        )
        routes: dict[str, RoutePolicy] = {}
        for profile in config.routes:
            where = f"{key}.routes.{_quote(profile.route)}"
            if profile.route not in known:
                raise PolicyConfigError(where, f"no such route (known: {sorted(known)})")
            if profile.route in routes:
                raise PolicyConfigError(where, "route configured twice")
            routes[profile.route] = _route_policy(base, profile, mode_override, where)
        return cls(base, MappingProxyType(routes), mode_override)


def _check_type(name: str, key: str) -> None:
    if not _TYPE.match(name):
        raise PolicyConfigError(key, "a detection type is 1-64 of [a-z0-9_.-]")


def _check_hard_floor(name: str, action: Action, key: str) -> None:
    floor = DEFAULT_ACTIONS.get(name) if name in HARD_BLOCK_TYPES else None
    if floor is not None and action.strength < floor.strength:
        raise PolicyConfigError(
            key, f"{name} is a hard-block type: {action.value} is weaker than {floor.value}"
        )


def _route_policy(
    base: RoutePolicy, profile: RouteProfile, mode_override: Mode | None, where: str
) -> RoutePolicy:
    for name, action in profile.actions.items():
        key = f"{where}.actions.{_quote(name)}"
        _check_type(name, key)
        current = base.action_for(name)
        if action.strength < current.strength:
            raise PolicyConfigError(
                key,
                f"route {profile.route} cannot weaken {name} from {current.value} to "
                f"{action.value} (profiles may only strengthen)",
            )
    unknown = profile.unknown or base.unknown
    if unknown.strength < base.unknown.strength:
        raise PolicyConfigError(
            f"{where}.unknown",
            f"route {profile.route} cannot weaken unknown types from {base.unknown.value} to "
            f"{unknown.value} (profiles may only strengthen)",
        )
    return RoutePolicy(
        mode=mode_override or profile.mode or base.mode,
        actions=_frozen({**base.actions, **profile.actions}),
        unknown=unknown,
    )


def load_policy(
    table: Mapping[str, object],
    *,
    mode_override: str | Mode | None = None,
    known_routes: Collection[str] | None = None,
) -> Policy:
    """Parse and check a ``[policy]`` table; ``mode_override`` is e.g. ``$HAECHI_MODE``."""
    override = None if mode_override in (None, "") else _mode(mode_override, "mode override")
    config = PolicyConfig.from_toml(table)
    return Policy.compile(config, mode_override=override, known_routes=known_routes)


# ---------------------------------------------------------------------------------- outcome


@dataclass(frozen=True, slots=True)
class SpanDecision:
    """The final action over ``[start, end)`` of segment ``segment``.

    ``type`` is the type whose action won; ``types`` every type merged into the span. ``applied``
    is whether the gateway must carry the action out (enforce mode, or a hard-block type).
    """

    segment: int
    start: int
    end: int
    action: Action
    type: str
    types: tuple[str, ...]
    hard: bool
    applied: bool


@dataclass(frozen=True, slots=True)
class TypeCount:
    """``count`` detections of ``type`` ended in a span whose final action is ``action``."""

    type: str
    action: Action
    applied: bool
    count: int


@dataclass(frozen=True, slots=True)
class PolicyOutcome:
    """The policy's answer for one request; safe to audit (no text in it)."""

    route: str
    mode: Mode
    spans: tuple[SpanDecision, ...]
    blocked: bool
    reason: str | None
    counts: tuple[TypeCount, ...]

    @property
    def annotate(self) -> bool:
        """Whether the response should carry what the policy found (report and enforce)."""
        return self.mode is not Mode.DRY_RUN

    @property
    def edits(self) -> tuple[SpanDecision, ...]:
        """Spans whose text the gateway must rewrite (applied, not allow, not block)."""
        if self.blocked:
            return ()
        return tuple(
            s for s in self.spans if s.applied and s.action not in (Action.ALLOW, Action.BLOCK)
        )


# ---------------------------------------------------------------------------------- deciding


@dataclass(frozen=True, slots=True)
class _Candidate:
    segment: int
    start: int
    end: int
    type: str
    action: Action


def decide(
    policy: Policy,
    route: str,
    detections: Iterable[DetectionLike],
    segment_lengths: Sequence[int],
) -> PolicyOutcome:
    """Decide one request. Pure: the same inputs always give the same outcome."""
    rules = policy.for_route(route)
    candidates = []
    for detection in detections:
        if not _well_formed(detection, segment_lengths):
            return PolicyOutcome(route, rules.mode, (), True, INVALID_DETECTION, ())
        candidates.append(
            _Candidate(
                detection.segment,
                detection.start,
                detection.end,
                detection.type,
                rules.action_for(detection.type),
            )
        )
    spans, span_of = _merge(candidates, rules.mode)
    reason = _block_reason(spans, candidates, rules.mode)
    return PolicyOutcome(
        route=route,
        mode=rules.mode,
        spans=spans,
        blocked=reason is not None,
        reason=reason,
        counts=_counts(candidates, span_of, rules.mode),
    )


def _well_formed(detection: DetectionLike, lengths: Sequence[int]) -> bool:
    segment, start, end = detection.segment, detection.start, detection.end
    return (
        isinstance(detection.type, str)
        and bool(_TYPE.match(detection.type))
        and all(isinstance(v, int) and not isinstance(v, bool) for v in (segment, start, end))
        and 0 <= segment < len(lengths)
        and 0 <= start <= end <= lengths[segment]
    )


def _applied(hard: bool, mode: Mode) -> bool:
    # Hard-block types are enforced whatever the mode: no override may let one through.
    return mode is Mode.ENFORCE or hard


def _merge(
    candidates: Sequence[_Candidate], mode: Mode
) -> tuple[tuple[SpanDecision, ...], dict[int, SpanDecision]]:
    """Union overlapping spans per segment; each takes its strongest member's action.

    Also returns, per candidate index, the span it ended in (for the audit counts). Empty spans
    cover no character, so they overlap nothing and produce no span.
    """
    order = sorted(
        (i for i, c in enumerate(candidates) if c.start < c.end),
        key=lambda i: (candidates[i].segment, candidates[i].start, candidates[i].end),
    )
    spans: list[SpanDecision] = []
    span_of: dict[int, SpanDecision] = {}
    cluster: list[int] = []
    cluster_end = 0
    for index in order:
        current = candidates[index]
        # Sorted by start, so overlapping the cluster's union means starting before its end.
        if cluster and (
            current.segment != candidates[cluster[0]].segment or current.start >= cluster_end
        ):
            _flush(candidates, cluster, mode, spans, span_of)
            cluster = []
        cluster_end = max(cluster_end, current.end) if cluster else current.end
        cluster.append(index)
    if cluster:
        _flush(candidates, cluster, mode, spans, span_of)
    return tuple(spans), span_of


def _flush(
    candidates: Sequence[_Candidate],
    cluster: list[int],
    mode: Mode,
    spans: list[SpanDecision],
    span_of: dict[int, SpanDecision],
) -> None:
    members = [candidates[i] for i in cluster]
    # max() keeps the first of equals, so sorting by type makes the winner deterministic.
    winner = max(sorted(members, key=lambda c: c.type), key=lambda c: c.action.rank)
    hard = any(c.type in HARD_BLOCK_TYPES for c in members)
    span = SpanDecision(
        segment=members[0].segment,
        start=min(c.start for c in members),
        end=max(c.end for c in members),
        action=winner.action,
        type=winner.type,
        types=tuple(sorted({c.type for c in members})),
        hard=hard,
        applied=_applied(hard, mode),
    )
    spans.append(span)
    for index in cluster:
        span_of[index] = span


def _block_reason(
    spans: Sequence[SpanDecision], candidates: Sequence[_Candidate], mode: Mode
) -> str | None:
    """``blocked:<type>`` for the first applied block in body order, else None.

    An empty-span detection covers no text but still blocks when its own action is an applied
    block (a plugin may flag a segment without a span).
    """
    points = [(s.segment, s.start, s.type) for s in spans if s.applied and s.action is Action.BLOCK]
    points += [
        (c.segment, c.start, c.type)
        for c in candidates
        if c.start == c.end
        and c.action is Action.BLOCK
        and _applied(c.type in HARD_BLOCK_TYPES, mode)
    ]
    return f"blocked:{min(points)[2]}" if points else None


def _counts(
    candidates: Sequence[_Candidate], span_of: Mapping[int, SpanDecision], mode: Mode
) -> tuple[TypeCount, ...]:
    tally: Counter[tuple[str, Action, bool]] = Counter()
    for index, c in enumerate(candidates):
        span = span_of.get(index)
        if span is not None:
            tally[(c.type, span.action, span.applied)] += 1
        else:
            tally[(c.type, c.action, _applied(c.type in HARD_BLOCK_TYPES, mode))] += 1
    return tuple(
        TypeCount(type_, action, applied, count)
        for (type_, action, applied), count in sorted(tally.items())
    )
