"""The SDK's half of the hook contract: what loads, how calls bind, what answers become."""

from __future__ import annotations

import inspect
import types

import msgpack
import pytest
from haechi.sdk import Credentials, Decision, Detection, Sealed, hookimpl
from haechi.sdk.hookspecs import SPECS, LifecycleSpec, plugin_manager, validate
from haechi.sdk.protocol import HOOK_PARAMETERS, HOOKS, LIFECYCLE_HOOKS
from haechi.sdk.runtime import LoadError, load_plugin


def load(source: str, kind: str = "filter", **extra: str):
    files = {"plugin.py": source.encode(), **{k: v.encode() for k, v in extra.items()}}
    return load_plugin(files, "plugin.py", kind)


def test_hook_parameters_table_matches_the_pluggy_specifications() -> None:
    specs = [*SPECS.values(), LifecycleSpec]
    seen = {}
    for spec in specs:
        for name, fn in vars(spec).items():
            if callable(fn) and not name.startswith("_"):
                seen[name] = tuple(inspect.signature(fn).parameters)[1:]  # without self
    assert seen == HOOK_PARAMETERS
    assert set(seen) == {h for hooks in HOOKS.values() for h in hooks} | set(LIFECYCLE_HOOKS)


def test_pluggy_accepts_functions_marked_by_our_marker() -> None:
    module = types.ModuleType("plugin")

    @hookimpl
    def inspect(segments):
        return [Detection("word", 0, 0, 1)]

    module.inspect = inspect
    manager = validate(module, "filter")
    assert manager.hook.inspect(segments=["a"], ctx=None) == [Detection("word", 0, 0, 1)]


def test_pluggy_refuses_an_implementation_with_a_parameter_the_spec_lacks() -> None:
    import pluggy

    module = types.ModuleType("plugin")

    @hookimpl
    def inspect(segments, path):
        return []

    module.inspect = inspect
    with pytest.raises(pluggy.PluginValidationError):
        plugin_manager("filter").register(module)


def test_unmarked_function_named_after_a_hook_is_an_implementation() -> None:
    plugin = load("def inspect(segments, ctx):\n    return []\n")
    assert plugin.hooks == ("inspect",)


def test_implementation_may_take_a_subset_of_parameters_in_any_order() -> None:
    plugin = load(
        "from haechi.sdk import hookimpl\n"
        "@hookimpl\n"
        "def inspect(ctx, segments):\n"
        "    return [{'type': 'n', 'segment': 0, 'start': 0, 'end': len(segments)}]\n"
        "@hookimpl\n"
        "def setup():\n"
        "    return None\n"
    )
    assert plugin.hooks == ("inspect", "setup")
    assert plugin.call("inspect", [["a", "b"]], ctx=None) == [
        {"type": "n", "segment": 0, "start": 0, "end": 2}
    ]


def test_specname_renames_and_typed_answers_become_wire_values() -> None:
    plugin = load(
        "from haechi.sdk import Decision, hookimpl\n"
        "@hookimpl(specname='authenticate')\n"
        "def check(request):\n"
        "    return Decision.allow_as(request.bearer() or '-', scopes=['chat'])\n",
        kind="auth",
    )
    answer = plugin.call(
        "authenticate", [{"method": "POST", "route": "/v1", "authorization": "Bearer t0k"}], None
    )
    assert answer == {"allow": True, "principal": "t0k", "scopes": ["chat"]}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "from haechi.sdk import hookimpl\n@hookimpl\ndef encrypt(plaintext):\n    pass\n",
            "'encrypt' is not a hook of a filter plugin",
        ),
        ("def inspect(segments, path):\n    pass\n", "unknown parameter 'path'"),
        ("def inspect(*segments):\n    pass\n", "*args and **kwargs are not allowed"),
        ("def inspect(segments, **extra):\n    pass\n", "*args and **kwargs are not allowed"),
        ("def inspect(segments, *, mode):\n    pass\n", "unknown parameter 'mode'"),
        (
            "from haechi.sdk import hookimpl\n"
            "def inspect(segments):\n    pass\n"
            "@hookimpl(specname='inspect')\ndef other(segments):\n    pass\n",
            "two functions implement 'inspect'",
        ),
    ],
)
def test_contract_violations_fail_the_load_with_a_message(source: str, message: str) -> None:
    with pytest.raises(LoadError, match=message.replace("*", r"\*")):
        load(source)


def test_extra_parameter_with_a_default_is_allowed() -> None:
    plugin = load("def inspect(segments, ctx, limit=3):\n    return []\n")
    assert plugin.call("inspect", [[]], None) == []


def test_wrong_argument_count_or_shape_is_a_type_error() -> None:
    plugin = load("def inspect(segments):\n    return []\n")
    with pytest.raises(TypeError, match="takes 1 argument"):
        plugin.call("inspect", [[], 1], None)
    with pytest.raises(TypeError, match="sent dict"):
        plugin.call("inspect", {"segments": []}, None)  # type: ignore[arg-type]


def test_sibling_modules_come_from_the_files_not_disk() -> None:
    plugin = load_plugin(
        {
            "plugin.py": b"import _rules_rt\ndef inspect(segments):\n    return _rules_rt.X\n",
            "_rules_rt.py": b"X = [{'type': 'k', 'segment': 0, 'start': 0, 'end': 0}]\n",
        },
        "plugin.py",
        "filter",
    )
    assert plugin.call("inspect", [[]], None)[0]["type"] == "k"


def test_models_are_immutable_and_compare_by_value() -> None:
    d = Detection("email", 0, 1, 5, confidence=90)
    with pytest.raises(AttributeError):
        d.start = 0  # type: ignore[misc]
    assert d == Detection.from_wire(d.to_wire())
    assert d != Detection("email", 0, 1, 6, confidence=90)
    assert Decision.deny("unknown-token").to_wire() == {"allow": False, "reason": "unknown-token"}
    assert Credentials("GET", "/", "Basic abc").bearer() is None
    assert Credentials("GET", "/", "bearer  xyz ").bearer() == "xyz"


def test_sealed_binds_every_descriptive_field_into_the_aad() -> None:
    sealed = Sealed(key="vault", type="email", body=b"n" * 28, tenant="acme", expires=99)
    assert Sealed.from_bytes(sealed.to_bytes()) == sealed
    variants = [
        Sealed("other", "email", b"", "acme", 99),
        Sealed("vault", "phone", b"", "acme", 99),
        Sealed("vault", "email", b"", "other", 99),
        Sealed("vault", "email", b"", "acme", 100),
    ]
    assert len({sealed.aad(), *(v.aad() for v in variants)}) == 5


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"XXXX", "bad magic"),
        (b"HXS1\xc1", "cannot decode"),
        (b"HXS1" + msgpack.packb([1, "k", "t", "", 0]), "6 fields"),
        (b"HXS1" + msgpack.packb([2, "k", "t", "", 0, b""]), "version"),
        (b"HXS1" + msgpack.packb([True, "k", "t", "", 0, b""]), "version"),
        (b"HXS1" + msgpack.packb([1, "", "t", "", 0, b""]), "key"),
        (b"HXS1" + msgpack.packb([1, "k", "t", "", -1, b""]), "expires"),
        (b"HXS1" + msgpack.packb([1, "k", "t", "", 0, "text"]), "body"),
    ],
)
def test_malformed_sealed_values_name_the_problem(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Sealed.from_bytes(data)


def test_positional_only_parameters_fail_the_load() -> None:
    with pytest.raises(LoadError, match="positional-only"):
        load("def inspect(segments, /):\n    return []\n")
