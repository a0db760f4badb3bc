"""Code-change workers: take a task, change a clone of the repository with the agent, test, deliver.

    target ─▶ workspace.clone (shallow, isolated) ─▶ branch nightshift/<kind>/<slug>
           ─▶ loop: agent (per-kind system prompt + tools) ─▶ question? ask a human, resume the session
                    ─▶ test command ─▶ failed? feed the failures back into the same session (--resume)
           ─▶ commit (what changed and why) ─▶ by permission level: push | push + pull request |
              approval by a human, then push ─▶ workspace removed (kept when the run failed)

Every module here is plain Python without Prefect: `flows/codechange.py` wraps the steps in tasks and
supplies the two things only a flow can do (pausing for a human, publishing artifacts) as callables.

    kinds.py      what each kind of change may do: prompt templates, tools, flow name
    target.py     the repository to change (URL or path, base branch, test command, token), names
    gitauth.py    how git gets the token without it reaching argv, URLs, logs or artifacts
    workspace.py  clone / branch / commit / push / diff with GitPython
    checks.py     the repository's test command, through `nightshift.process.run_command`
    replies.py    the agent's structured reply: done, or a question for a human
    briefs.py     the rendered prompts and the `AgentRequest` of each kind
    loop.py       agent ⇄ tests ⇄ human iterations on one agent session
    report.py     the run's report; commit message, pull request body, artifact texts and rows
    github.py     GitHub remote detection, pull request and review payloads, a PyGithub client
    review.py     review findings, where they land on a diff, repair turns
"""
