"""haechi.sdk: everything plugin code imports, and the contract the host holds it to.

A plugin is a module-level function per hook of its kind (see :mod:`haechi.sdk.hookspecs`),
returning typed models; ``ctx`` is the capability client (:mod:`haechi.sdk.context`). The host
runs it in a kernel-confined child and checks every answer against the hook's wire shape
(:mod:`haechi.sdk.protocol`). :mod:`haechi.sdk.testing` loads a bundle into that same sandbox
from pytest.

Example (a filter plugin's ``plugin.py``, called here directly)::

    >>> import re
    >>> from haechi.sdk import Detection, hookimpl
    >>> EMPLOYEE = re.compile(r"\\bE-\\d{6}\\b")
    >>> @hookimpl
    ... def inspect(segments, ctx):
    ...     return [Detection("employee_id", i, m.start(), m.end())
    ...             for i, text in enumerate(segments) for m in EMPLOYEE.finditer(text)]
    >>> inspect(["ask E-123456 about it"], ctx=None)
    [Detection(type='employee_id', segment=0, start=4, end=12, label=None, confidence=None)]
"""

from .context import CapabilityError, Context
from .markers import hookimpl
from .models import Credentials, Decision, Detection, Response, Sealed
from .protocol import PROTOCOL_VERSION, ResultError, check_result, hooks_for

__all__ = [
    "PROTOCOL_VERSION",
    "CapabilityError",
    "Context",
    "Credentials",
    "Decision",
    "Detection",
    "Response",
    "ResultError",
    "Sealed",
    "check_result",
    "hookimpl",
    "hooks_for",
]
