"""Policy: modes, strength, hard-block floors, strengthen-only profiles, unknown types, overlaps."""

from __future__ import annotations

import itertools
import tomllib
from typing import Any

import pytest
from haechi.host.gateway.policy import (
    DEFAULT_ACTIONS,
    HARD_BLOCK_TYPES,
    Action,
    Mode,
    Policy,
    PolicyConfig,
    PolicyConfigError,
    PolicyOutcome,
    RouteProfile,
    TypeCount,
    decide,
    load_policy,
)
from haechi.sdk.models import Detection
from hypothesis import given, settings
from hypothesis import strategies as st

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
FIRST_PARTY = ("email", "phone", "card", "iban", "us_ssn", "kr_rrn", "ipv4", "ipv6")
FIRST_PARTY += ("api_key", "secret", "private_key", "jwt")


def run(
    policy: Policy, *detections: Detection, route: str = CHAT, lengths: Any = (100,)
) -> PolicyOutcome:
    return decide(policy, route, list(detections), list(lengths))


def spans(outcome: PolicyOutcome) -> list[tuple[int, int, int, str]]:
    return [(s.segment, s.start, s.end, s.action.value) for s in outcome.spans]


# ---------------------------------------------------------------------------------- strength


def test_action_strength_lattice() -> None:
    strength = {a.value: a.strength for a in Action}
    assert strength == {"allow": 0, "mask": 1, "redact": 1, "tokenize": 2, "encrypt": 2, "block": 3}


def test_every_first_party_type_has_a_default_and_hard_types_block() -> None:
    assert set(FIRST_PARTY) <= set(DEFAULT_ACTIONS)
    assert {"secret", "api_key", "private_key", "card", "us_ssn", "kr_rrn"} <= HARD_BLOCK_TYPES
    assert all(DEFAULT_ACTIONS[t] is Action.BLOCK for t in HARD_BLOCK_TYPES)


# ---------------------------------------------------------------------------------- modes


def test_enforce_applies_actions() -> None:
    outcome = run(load_policy({"mode": "enforce"}), Detection("email", 0, 0, 5))
    assert spans(outcome) == [(0, 0, 5, "redact")]
    assert outcome.spans[0].applied and not outcome.blocked and outcome.annotate
    assert len(outcome.edits) == 1


@pytest.mark.parametrize(("mode", "annotate"), [("dry-run", False), ("report", True)])
def test_observing_modes_decide_but_do_not_apply(mode: str, annotate: bool) -> None:
    policy = load_policy({"mode": mode, "actions": {"email": "block"}})
    outcome = run(policy, Detection("email", 0, 0, 5), Detection("phone", 0, 10, 20))
    assert outcome.mode is Mode(mode) and outcome.annotate is annotate
    assert spans(outcome) == [(0, 0, 5, "block"), (0, 10, 20, "mask")]
    assert not any(s.applied for s in outcome.spans)
    assert not outcome.blocked and outcome.reason is None and outcome.edits == ()
    assert outcome.counts == (
        TypeCount("email", Action.BLOCK, False, 1),
        TypeCount("phone", Action.MASK, False, 1),
    )


@pytest.mark.parametrize("mode", ["dry-run", "report", "enforce"])
@pytest.mark.parametrize("hard", sorted(HARD_BLOCK_TYPES))
def test_hard_block_types_are_enforced_in_every_mode(mode: str, hard: str) -> None:
    for policy in (load_policy({"mode": mode}), load_policy({}, mode_override=mode)):
        outcome = run(policy, Detection("email", 0, 0, 5), Detection(hard, 0, 10, 20))
        assert outcome.blocked and outcome.reason == f"blocked:{hard}"


def test_mode_precedence_override_then_route_then_global() -> None:
    table = {"mode": "report", "routes": {MESSAGES: {"mode": "dry-run"}}}
    policy = load_policy(table)
    assert policy.mode_for(CHAT) is Mode.REPORT
    assert policy.mode_for(MESSAGES) is Mode.DRY_RUN
    overridden = load_policy(table, mode_override="enforce")
    assert overridden.mode_for(CHAT) is Mode.ENFORCE
    assert overridden.mode_for(MESSAGES) is Mode.ENFORCE  # the route cannot ignore the override
    assert run(overridden, Detection("email", 0, 0, 5), route=MESSAGES).spans[0].applied
    assert load_policy(table, mode_override="").mode_for(CHAT) is Mode.REPORT


def test_default_mode_is_enforce_and_bad_override_is_refused() -> None:
    assert load_policy({}).mode_for(CHAT) is Mode.ENFORCE
    with pytest.raises(PolicyConfigError) as caught:
        load_policy({}, mode_override="off")
    assert caught.value.key == "mode override"


# ---------------------------------------------------------------------------------- actions


@pytest.mark.parametrize("action", [a.value for a in Action])
def test_every_action_is_decided_as_configured(action: str) -> None:
    outcome = run(load_policy({"actions": {"email": action}}), Detection("email", 0, 3, 9))
    assert spans(outcome) == [(0, 3, 9, action)]
    assert outcome.blocked is (action == "block")
    assert outcome.reason == ("blocked:email" if action == "block" else None)
    assert len(outcome.edits) == (0 if action in ("allow", "block") else 1)


def test_block_reason_is_the_first_block_in_body_order() -> None:
    policy = load_policy({"actions": {"email": "block"}})
    outcome = run(
        policy,
        Detection("secret", 1, 0, 4),
        Detection("email", 0, 50, 60),
        Detection("card", 0, 70, 80),
        lengths=(100, 100),
    )
    assert outcome.reason == "blocked:email"


def test_empty_span_detection_of_a_blocking_type_still_blocks() -> None:
    outcome = run(load_policy({"mode": "dry-run"}), Detection("private_key", 0, 7, 7))
    assert outcome.blocked and outcome.reason == "blocked:private_key" and outcome.spans == ()
    assert outcome.counts == (TypeCount("private_key", Action.BLOCK, True, 1),)
    quiet = run(load_policy({}), Detection("email", 0, 7, 7))
    assert not quiet.blocked and quiet.spans == ()


# ---------------------------------------------------------------------------------- hard-block


@pytest.mark.parametrize("hard", sorted(HARD_BLOCK_TYPES))
@pytest.mark.parametrize("weaker", ["allow", "mask", "redact", "tokenize", "encrypt"])
def test_hard_block_cannot_be_weakened_globally(hard: str, weaker: str) -> None:
    with pytest.raises(PolicyConfigError) as caught:
        load_policy({"actions": {hard: weaker}})
    assert caught.value.key == f"policy.actions.{hard}"
    assert "hard-block" in str(caught.value)


@pytest.mark.parametrize("hard", sorted(HARD_BLOCK_TYPES))
def test_hard_block_cannot_be_weakened_by_a_profile(hard: str) -> None:
    with pytest.raises(PolicyConfigError) as caught:
        load_policy({"routes": {MESSAGES: {"actions": {hard: "tokenize"}}}})
    assert caught.value.key == f'policy.routes."{MESSAGES}".actions.{hard}'
    assert MESSAGES in str(caught.value) and hard in str(caught.value)


def test_hard_block_cannot_be_weakened_by_dataclass_construction_either() -> None:
    config = PolicyConfig(actions={"card": Action.ENCRYPT})
    with pytest.raises(PolicyConfigError):
        Policy.compile(config)


# ---------------------------------------------------------------------------------- profiles


def test_profiles_may_strengthen() -> None:
    policy = load_policy(
        {
            "actions": {"email": "mask"},
            "routes": {MESSAGES: {"actions": {"email": "tokenize", "phone": "redact"}}},
        }
    )
    assert spans(run(policy, Detection("email", 0, 0, 5), route=MESSAGES)) == [
        (0, 0, 5, "tokenize")
    ]
    assert spans(run(policy, Detection("email", 0, 0, 5), route=CHAT)) == [(0, 0, 5, "mask")]
    # Equal strength is not a weakening: redact and mask are both strength 1.
    load_policy({"routes": {CHAT: {"actions": {"email": "mask"}}}})


@pytest.mark.parametrize(
    ("table", "key", "words"),
    [
        (
            {"routes": {CHAT: {"actions": {"email": "allow"}}}},
            f'policy.routes."{CHAT}".actions.email',
            ("cannot weaken email from redact to allow", CHAT),
        ),
        (
            {"actions": {"email": "encrypt"}, "routes": {CHAT: {"actions": {"email": "redact"}}}},
            f'policy.routes."{CHAT}".actions.email',
            ("from encrypt to redact",),
        ),
        (
            {"unknown": "tokenize", "routes": {CHAT: {"actions": {"custom_id": "mask"}}}},
            f'policy.routes."{CHAT}".actions.custom_id',
            ("from tokenize to mask",),
        ),
        (
            {"unknown": "block", "routes": {CHAT: {"unknown": "redact"}}},
            f'policy.routes."{CHAT}".unknown',
            ("unknown types",),
        ),
    ],
)
def test_profiles_that_weaken_are_refused_at_load(
    table: dict[str, Any], key: str, words: tuple[str, ...]
) -> None:
    with pytest.raises(PolicyConfigError) as caught:
        load_policy(table)
    assert caught.value.key == key
    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"mood": "enforce"}, "policy.mood"),
        ({"mode": "strict"}, "policy.mode"),
        ({"actions": {"email": "shred"}}, "policy.actions.email"),
        ({"actions": {"Email!": "redact"}}, 'policy.actions."Email!"'),
        ({"actions": ["email"]}, "policy.actions"),
        ({"routes": {"/v1/embeddings": {}}}, 'policy.routes."/v1/embeddings"'),
        ({"routes": {CHAT: {"actionz": {}}}}, f'policy.routes."{CHAT}".actionz'),
        ({"routes": {CHAT: {"mode": 1}}}, f'policy.routes."{CHAT}".mode'),
    ],
)
def test_bad_config_names_its_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(PolicyConfigError) as caught:
        load_policy(table)
    assert caught.value.key == key


def test_duplicate_route_profiles_are_refused() -> None:
    config = PolicyConfig(routes=(RouteProfile(CHAT), RouteProfile(CHAT)))
    with pytest.raises(PolicyConfigError, match="twice"):
        Policy.compile(config)


def test_loads_from_toml_text() -> None:
    table = tomllib.loads(
        f"""
        mode = "report"
        unknown = "tokenize"
        [actions]
        email = "tokenize"
        iban = "encrypt"
        [routes."{MESSAGES}"]
        mode = "enforce"
        actions = {{ phone = "block" }}
        """
    )
    policy = load_policy(table)
    assert policy.mode_for(MESSAGES) is Mode.ENFORCE
    assert policy.for_route(MESSAGES).action_for("phone") is Action.BLOCK
    assert policy.for_route(CHAT).action_for("phone") is Action.MASK
    assert policy.for_route(CHAT).action_for("iban") is Action.ENCRYPT
    assert policy.for_route(CHAT).action_for("never_heard_of") is Action.TOKENIZE


# ---------------------------------------------------------------------------------- unknown types


def test_unknown_types_fail_closed() -> None:
    outcome = run(load_policy({}), Detection("passport_kr", 0, 0, 9))
    assert spans(outcome) == [(0, 0, 9, "redact")] and outcome.spans[0].applied


@pytest.mark.parametrize("weak", ["allow"])
def test_unknown_action_cannot_go_below_mask(weak: str) -> None:
    with pytest.raises(PolicyConfigError) as caught:
        load_policy({"unknown": weak})
    assert caught.value.key == "policy.unknown"
    assert load_policy({"unknown": "mask"}).default.unknown is Action.MASK


def test_explicitly_named_custom_types_may_be_allowed() -> None:
    outcome = run(load_policy({"actions": {"ticket_id": "allow"}}), Detection("ticket_id", 0, 0, 9))
    assert spans(outcome) == [(0, 0, 9, "allow")] and outcome.edits == ()


@pytest.mark.parametrize(
    "detection",
    [
        Detection("email", 1, 0, 5),  # no such segment
        Detection("email", -1, 0, 5),
        Detection("email", 0, 5, 4),  # start after end
        Detection("email", 0, 90, 101),  # past the end of the segment
        Detection("email", 0, -1, 3),
        Detection("E-Mail", 0, 0, 3),  # not a valid type name
    ],
)
@pytest.mark.parametrize("mode", ["dry-run", "enforce"])
def test_malformed_detections_block_in_every_mode(detection: Detection, mode: str) -> None:
    outcome = run(load_policy({"mode": mode}), Detection("phone", 0, 0, 5), detection)
    assert outcome.blocked and outcome.reason == "invalid-detection"
    assert outcome.spans == () and outcome.counts == ()


# ---------------------------------------------------------------------------------- overlaps


def test_overlap_takes_the_strongest_action_over_the_union() -> None:
    # The original kept whichever came first (the phone); strength must win.
    phone, card = Detection("phone", 0, 0, 16), Detection("card", 0, 1, 16)
    for order in ((phone, card), (card, phone)):
        outcome = run(load_policy({"mode": "enforce"}), *order)
        assert spans(outcome) == [(0, 0, 16, "block")]
        assert outcome.spans[0].type == "card" and outcome.spans[0].types == ("card", "phone")
        assert outcome.reason == "blocked:card"


def test_three_way_chain_merges_into_one_span() -> None:
    policy = load_policy({"actions": {"email": "mask", "iban": "encrypt"}})
    # a overlaps b, b overlaps c, a does not overlap c.
    outcome = run(
        policy,
        Detection("email", 0, 0, 10),
        Detection("phone", 0, 8, 20),
        Detection("iban", 0, 18, 30),
        Detection("email", 0, 40, 45),
    )
    assert spans(outcome) == [(0, 0, 30, "encrypt"), (0, 40, 45, "mask")]
    assert outcome.spans[0].types == ("email", "iban", "phone")
    assert outcome.counts == (
        TypeCount("email", Action.ENCRYPT, True, 1),
        TypeCount("email", Action.MASK, True, 1),
        TypeCount("iban", Action.ENCRYPT, True, 1),
        TypeCount("phone", Action.ENCRYPT, True, 1),
    )


def test_adjacent_spans_and_other_segments_stay_separate() -> None:
    outcome = run(
        load_policy({}),
        Detection("email", 0, 0, 5),
        Detection("phone", 0, 5, 9),
        Detection("email", 1, 2, 8),
        lengths=(10, 10),
    )
    assert spans(outcome) == [(0, 0, 5, "redact"), (0, 5, 9, "mask"), (1, 2, 8, "redact")]


def test_equal_strength_ties_go_to_what_reveals_less() -> None:
    masked = run(load_policy({}), Detection("phone", 0, 0, 9), Detection("email", 0, 4, 12))
    assert spans(masked) == [(0, 0, 12, "redact")]  # mask = redact; redact keeps no hint
    policy = load_policy({"actions": {"email": "encrypt", "iban": "tokenize"}})
    sealed = run(policy, Detection("iban", 0, 0, 9), Detection("email", 0, 4, 12))
    assert spans(sealed) == [(0, 0, 12, "encrypt")]


def test_duplicate_detections_from_two_plugins_merge() -> None:
    outcome = run(load_policy({}), Detection("secret", 0, 2, 30), Detection("api_key", 0, 2, 30))
    assert spans(outcome) == [(0, 2, 30, "block")]
    assert outcome.reason == "blocked:api_key"  # equal actions: the smallest type name, stably


def test_counts_hold_no_text() -> None:
    outcome = run(load_policy({}), Detection("email", 0, 0, 5))
    assert "@" not in repr(outcome)


TYPES = st.sampled_from(["email", "phone", "iban", "card", "ipv4", "custom_x", "ticket"])
ACTION_TABLE = {"ticket": "allow", "ipv4": "tokenize", "iban": "encrypt"}


@st.composite
def detections(draw: st.DrawFn) -> list[Detection]:
    found = []
    for _ in range(draw(st.integers(0, 25))):
        segment = draw(st.integers(0, 2))
        start = draw(st.integers(0, 60))
        end = draw(st.integers(start, 60))
        found.append(Detection(draw(TYPES), segment, start, end))
    return found


@settings(max_examples=300)
@given(detections(), st.sampled_from(["dry-run", "report", "enforce"]))
def test_merge_properties(found: list[Detection], mode: str) -> None:
    policy = load_policy({"mode": mode, "actions": ACTION_TABLE})
    outcome = decide(policy, CHAT, found, [60, 60, 60])
    rules = policy.for_route(CHAT)
    by_segment: dict[int, list[tuple[int, int]]] = {}
    for span in outcome.spans:
        assert span.start < span.end
        by_segment.setdefault(span.segment, []).append((span.start, span.end))
    # No two output spans of a segment overlap.
    for ranges in by_segment.values():
        ordered = sorted(ranges)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(ordered))
    # Every non-empty input span lies inside one output span at least as strong as its own.
    for d in found:
        if d.start == d.end:
            continue
        covering = [
            s
            for s in outcome.spans
            if s.segment == d.segment and s.start <= d.start and d.end <= s.end
        ]
        assert len(covering) == 1
        assert covering[0].action.strength >= rules.action_for(d.type).strength
        assert d.type in covering[0].types
    # Every output span is the union of its members: its ends are some input's ends.
    for span in outcome.spans:
        members = [
            d
            for d in found
            if d.segment == span.segment and span.start <= d.start < d.end <= span.end
        ]
        assert min(d.start for d in members) == span.start
        assert max(d.end for d in members) == span.end
        assert span.action == max((rules.action_for(d.type) for d in members), key=lambda a: a.rank)
    # Counts account for every detection exactly once.
    assert sum(c.count for c in outcome.counts) == len(found)
    # Blocking: only an applied block (cards are hard, so applied in every mode).
    if any(s.action is Action.BLOCK and s.applied for s in outcome.spans):
        assert outcome.blocked
    # An empty-span card covers no text but still blocks.
    assert outcome.blocked is any(d.type == "card" for d in found)


@given(detections())
def test_decide_is_order_independent(found: list[Detection]) -> None:
    policy = load_policy({"actions": ACTION_TABLE})
    forward = decide(policy, CHAT, found, [60, 60, 60])
    backward = decide(policy, CHAT, list(reversed(found)), [60, 60, 60])
    assert forward == backward
