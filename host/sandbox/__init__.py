"""haechi.host.sandbox: run a verified plugin in a kernel-confined child process.

Example (inside an event loop)::

    verdict = verify_directory("hello-filter", state, host_version=..., now=...)
    child = await SandboxedChild.spawn(verdict.bundle)   # only verified bytes go in
    await child.call("inspect", [["hello world"]], timeout=1.0)
"""

from .errors import SandboxError
from .process import SandboxedChild, SandboxPolicy

__all__ = ["SandboxError", "SandboxPolicy", "SandboxedChild"]
