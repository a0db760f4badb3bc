"""Test doubles. The only fake nightshift allows is the model provider's HTTP API:
`nightshift.testing.fake_anthropic` (kept out of this module so `python -m` can run it cleanly)."""
