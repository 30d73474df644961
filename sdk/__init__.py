"""haechi.sdk: what plugin code and the host agree on.

Today this is the protocol contract (:mod:`haechi.sdk.protocol`): the hooks each plugin kind
may offer, the protocol version of the sandbox handshake, and the wire shape of every hook's
answer, which the host checks. Issue #5 adds the pluggy hook specifications, typed models,
the capability client and the test harness on top of it.

Example::

    >>> from haechi.sdk import check_result, hooks_for
    >>> hooks_for("filter")
    ('inspect', 'setup', 'teardown')
    >>> check_result("inspect", [{"type": "email", "segment": 0, "start": 3, "end": 9}])
    [{'type': 'email', 'segment': 0, 'start': 3, 'end': 9}]
"""

from .protocol import PROTOCOL_VERSION, ResultError, check_result, hooks_for

__all__ = ["PROTOCOL_VERSION", "ResultError", "check_result", "hooks_for"]
