"""``@hookimpl``: marks a module-level function as the implementation of a hook.

It sets the same ``haechi_impl`` attribute as ``pluggy.HookimplMarker("haechi")``, so pluggy's
``PluginManager`` (host-side tooling, :mod:`haechi.sdk.testing`) sees marked functions exactly
as pluggy-marked ones, while the sandboxed child, which never imports pluggy (it would add
~18 ms to every cold spawn, decision 0004), reads the same attribute.

Example::

    >>> @hookimpl
    ... def inspect(segments, ctx):
    ...     return []
    >>> inspect.haechi_impl["specname"] is None
    True
    >>> @hookimpl(specname="inspect")
    ... def find_ids(segments):
    ...     return []
    >>> find_ids.haechi_impl["specname"]
    'inspect'
"""

from __future__ import annotations

# Not ``from typing import TYPE_CHECKING``: this module is imported in every sandboxed child,
# and ``typing`` (with ``re``) would cost the child's cold spawn a few milliseconds.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    F = TypeVar("F", bound=Callable[..., object])

__all__ = ["IMPL_ATTRIBUTE", "hookimpl"]

PROJECT = "haechi"
IMPL_ATTRIBUTE = PROJECT + "_impl"


def hookimpl(function: F | None = None, *, specname: str | None = None) -> Any:
    """Mark ``function`` as a hook implementation (``specname`` when its name differs)."""

    def mark(func: F) -> F:
        setattr(
            func,
            IMPL_ATTRIBUTE,
            {
                "wrapper": False,
                "hookwrapper": False,
                "optionalhook": False,
                "tryfirst": False,
                "trylast": False,
                "specname": specname,
            },
        )
        return func

    return mark if function is None else mark(function)
