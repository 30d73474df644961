"""Load a plugin's verified files and dispatch hook calls to it: the child's half of the contract.

The sandboxed child runs this after it has confined itself; benchmarks and tools may run it in
process to measure the same code without the boundary. It enforces, at load time:

* an implementation is a module-level function of the entry module, marked with
  :func:`~haechi.sdk.hookimpl` (``specname`` may rename it) or named after a hook of the kind;
* a marked function must name a hook of the plugin's kind (``LoadError`` otherwise), and no two
  functions may implement the same hook;
* an implementation's parameters must be a subset of the specification's
  (:data:`~haechi.sdk.protocol.HOOK_PARAMETERS`, as pluggy requires), without ``*args`` or
  keyword-only parameters without defaults;

and per call: the host's positional arguments are bound to the specification's names
(``ctx`` last), ``authenticate`` receives a :class:`~haechi.sdk.models.Credentials`, and typed
answers are turned into wire values (the host checks the wire shape again).

Example::

    >>> source = b'''
    ... from haechi.sdk import Detection, hookimpl
    ... @hookimpl
    ... def inspect(segments):
    ...     return [Detection("word", 0, 0, 2)]
    ... '''
    >>> plugin = load_plugin({"plugin.py": source}, "plugin.py", "filter")
    >>> plugin.hooks
    ('inspect',)
    >>> plugin.call("inspect", [["hi"]], ctx=None)
    [{'type': 'word', 'segment': 0, 'start': 0, 'end': 2}]
"""

from __future__ import annotations

import sys

from .markers import IMPL_ATTRIBUTE
from .models import Credentials
from .protocol import HOOK_PARAMETERS, hooks_for

TYPE_CHECKING = False  # not from typing: this module runs in every sandboxed child
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["LoadError", "Plugin", "load_plugin"]

_CO_VARARGS = 0x04
_CO_VARKEYWORDS = 0x08


class LoadError(Exception):
    """The plugin's code does not fit the hook contract; the message says which function."""


class _BundleFinder:
    """Imports the bundle's own modules from the verified bytes, never from disk."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.modules: dict[str, tuple[str, bytes, bool]] = {}
        for path, data in files.items():
            if not path.endswith(".py"):
                continue
            parts = path[:-3].split("/")
            if parts[-1] == "__init__":
                self.modules[".".join(parts[:-1])] = (path, data, True)
            else:
                self.modules[".".join(parts)] = (path, data, False)

    def find_spec(self, name: str, path: object = None, target: object = None) -> object:
        import importlib.util

        entry = self.modules.get(name)
        if entry is None:
            return None
        return importlib.util.spec_from_loader(name, self, is_package=entry[2])  # type: ignore[arg-type]

    def create_module(self, spec: object) -> None:
        return None

    def exec_module(self, module: object) -> None:
        path, data, is_package = self.modules[module.__name__]  # type: ignore[attr-defined]
        if is_package:
            module.__path__ = []  # type: ignore[attr-defined]
        exec(compile(data, f"<plugin>/{path}", "exec"), module.__dict__)  # noqa: S102


class Plugin:
    """A loaded plugin: which hooks it offers, and how to call each one."""

    def __init__(self, kind: str, implementations: dict[str, Callable[..., object]]) -> None:
        self.kind = kind
        self._impls = implementations
        self._accepts = {hook: _parameters(fn) for hook, fn in implementations.items()}
        self.hooks = tuple(hook for hook in hooks_for(kind) if hook in implementations)

    def call(self, hook: str, args: list[object], ctx: object) -> object:
        """Call ``hook`` with the host's positional ``args``; return the answer's wire value."""
        names = HOOK_PARAMETERS[hook]
        if not isinstance(args, list) or len(args) != len(names) - 1:
            sent = len(args) if isinstance(args, list) else type(args).__name__
            raise TypeError(f"{hook} takes {len(names) - 1} argument(s), the host sent {sent}")
        values = dict(zip(names, [*args, ctx], strict=True))
        if hook == "authenticate" and isinstance(values["request"], dict):
            values["request"] = Credentials.from_wire(values["request"])
        accepted = self._accepts[hook]
        result = self._impls[hook](**{n: v for n, v in values.items() if n in accepted})
        return to_wire(result)


def to_wire(value: object) -> object:
    """Typed answers to their wire values; plain wire values pass through for the host to check."""
    if isinstance(value, list):
        return [_one(item) for item in value]
    return _one(value)


def _one(value: object) -> object:
    to = getattr(value, "to_wire", None)
    return to() if callable(to) and not isinstance(value, type) else value


def _parameters(fn: Callable[..., object]) -> frozenset[str]:
    code = getattr(fn, "__code__", None)
    if code is None:
        raise LoadError(f"{fn!r} is not a plain function")
    return frozenset(code.co_varnames[: code.co_argcount + code.co_kwonlyargcount])


def _check_signature(hook: str, fn: Callable[..., object]) -> None:
    code = getattr(fn, "__code__", None)
    where = f"{getattr(fn, '__name__', hook)}() for hook {hook!r}"
    if code is None:
        raise LoadError(f"{where}: must be a plain function")
    if code.co_flags & (_CO_VARARGS | _CO_VARKEYWORDS):
        raise LoadError(f"{where}: *args and **kwargs are not allowed; name the parameters")
    if code.co_posonlyargcount:
        raise LoadError(f"{where}: positional-only parameters cannot be passed by name")
    allowed = HOOK_PARAMETERS[hook]
    required = code.co_varnames[: code.co_argcount]
    defaults = len(getattr(fn, "__defaults__", None) or ())
    for name in _parameters(fn):
        if name not in allowed and name in required[: len(required) - defaults]:
            raise LoadError(f"{where}: unknown parameter {name!r}; the hook offers {allowed}")
    kwonly = code.co_varnames[code.co_argcount : code.co_argcount + code.co_kwonlyargcount]
    kwdefaults = getattr(fn, "__kwdefaults__", None) or {}
    for name in kwonly:
        if name not in allowed and name not in kwdefaults:
            raise LoadError(f"{where}: unknown parameter {name!r}; the hook offers {allowed}")


def _implementations(namespace: dict[str, object], kind: str) -> dict[str, Callable[..., object]]:
    offered = hooks_for(kind)
    found: dict[str, Callable[..., object]] = {}
    for name, value in list(namespace.items()):
        if not callable(value) or isinstance(value, type):
            continue
        opts = getattr(value, IMPL_ATTRIBUTE, None)
        if not isinstance(opts, dict) and name not in offered:
            continue
        if isinstance(opts, dict) and getattr(value, "__module__", None) != namespace["__name__"]:
            continue  # a marked function imported from elsewhere is not this plugin's
        hook = (opts or {}).get("specname") or name
        if hook not in offered:
            raise LoadError(
                f"{name}() is marked @hookimpl but {hook!r} is not a hook of a {kind} plugin "
                f"(those are: {', '.join(offered)})"
            )
        if hook in found and found[hook] is not value:
            raise LoadError(f"two functions implement {hook!r}: keep one")
        _check_signature(hook, value)  # type: ignore[arg-type]
        found[hook] = value  # type: ignore[assignment]
    return found


def load_plugin(files: dict[str, bytes], entry: str, kind: str) -> Plugin:
    """Run the entry module from ``files`` (its sibling modules import from ``files`` too)."""
    sys.meta_path.append(_BundleFinder(files))
    namespace: dict[str, object] = {"__name__": "__plugin__", "__file__": f"<plugin>/{entry}"}
    exec(compile(files[entry], namespace["__file__"], "exec"), namespace)  # type: ignore[arg-type]  # noqa: S102
    return Plugin(kind, _implementations(namespace, kind))
