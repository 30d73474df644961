"""Host functions a sandboxed plugin may call, one module per capability family."""
