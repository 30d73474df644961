"""haechi.host.gateway: the HTTP gateway in front of model APIs (adapters, policy, actions)."""
