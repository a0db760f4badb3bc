"""Where an agent CLI runs: a plain process, or a locked-down container that can only reach the model API.

One interface (`base.Sandbox`: `launch(argv, env, cwd, home) -> Launch`, then `Launch.close()`), chosen
per worker by its catalogue profile (`select.sandbox_for`):

    profile      backend    what the agent gets
    disabled     process    the runner as it always was (trusted local use)
    strict       docker     the repository mounted read-only, no network but the model API
    permissive   docker     the same, with a writable workspace (a copy, never the user's checkout)

Modules (this package's `__init__` imports nothing: `entry` and `bridge` run inside the container,
where every millisecond of interpreter start counts):

    base       Launch, Sandbox, ProcessSandbox, the active-sandbox context
    settings   SandboxSettings (NIGHTSHIFT_SANDBOX_* / NIGHTSHIFT_IMAGE), label names
    container  DockerSandbox: the `docker run` command line, ownership of the mounts, removal
    egress     the model API upstream and its host end (bridge + lease sockets)
    entry      the in-container entrypoint: bridge to the host socket, mount checks, exec the CLI
    bridge     the TCP <-> unix-socket forwarder both ends use
    pool       WarmPool: started containers that get the run's mounts by propagation, for fast starts
    reaper     reap(): remove labelled leftovers (containers, networks, volumes, host dirs)
    select     resolve_backend() (docker | process, never silently degraded) and sandbox_for()
"""
