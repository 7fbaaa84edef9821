"""The Dkron-compatible /v1 REST API."""
