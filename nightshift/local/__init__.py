"""Local (non-AI) analysis workers: real static analysis that runs without any agent CLI or credentials.

One module per worker (`repomap`, `audit`, `testgaps`, `document`, `refactor`, `optimize`, `predict`),
each with a `run_<worker>(repo, ...) -> LocalResult`; `needs_agent` gives the result of agent-only
workers when no agent is available. Nothing here depends on Prefect.
"""
