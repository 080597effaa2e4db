"""Everything for running the product locally and in tests, and nothing production needs:
the Telnyx sandbox, the embedded Redis, and the ``serve`` and ``telnyx_sandbox`` commands.

A production install may leave this package out: settings add the app only when it is
importable, and no production module imports it (import-linter enforces it).
"""
