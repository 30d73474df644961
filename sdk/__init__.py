"""haechi.sdk: what plugin code imports (hook specifications, result models, capability client).

The SDK is built in issue #5; until then this package only reserves the import name that
bundles and the sandbox will use.
"""

__all__: list[str] = []
