# nightshift worker image: a Python venv with nightshift (from uv.lock) + the pinned,
# native Claude Code CLI on PATH as `claude`; runs as the non-root user nightshift (10001).
#
#   docker build -t nightshift/worker .              # public base, anywhere
#   scripts/build_image.sh                           # here: local base image + host CA bundle
#
# Works with BuildKit and with the legacy builder (no RUN --mount, no heredocs).
#
# Node: not in the image. The one pinned CLI, Claude Code, is a native binary; Node-based CLIs (Gemini
# needs Node >= 20) would not run on Debian bookworm's nodejs 18 anyway. Adding one means a stage with
# the official Node 22 tarball (pinned + sha256), like the claude stage below, not apt's nodejs.
#
# The sandbox (nightshift/sandbox) runs `python -m nightshift.sandbox.entry ... -- claude ...` in this
# image: the bytecode of the project is compiled at build time because the root file system is
# read-only at run time.
#
# CA bundle: behind a TLS-intercepting proxy put the full CA bundle at docker/ca/ca-bundle.crt
# (scripts/build_image.sh does it; git-ignored). Only the build stages use it; the final image
# is built from BASE_IMAGE and never contains it. No API key or other secret enters any layer.

ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---- tools: base + optional build CA + uv ----------------------------------------------------
FROM ${BASE_IMAGE} AS tools
LABEL io.nightshift.managed=true
COPY docker/ca/ /tmp/ns-ca/
RUN if [ -s /tmp/ns-ca/ca-bundle.crt ]; then cp /tmp/ns-ca/ca-bundle.crt /etc/ssl/certs/ca-certificates.crt; fi
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
ARG UV_VERSION=0.13.9
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install -q "uv==${UV_VERSION}"

# ---- claude: the native binary out of the npm platform package ------------------------------
# Bump both together: npm view @anthropic-ai/claude-code-linux-x64@VERSION dist.integrity
FROM tools AS claude
ARG CLAUDE_CODE_VERSION=2.1.330
ARG CLAUDE_CODE_INTEGRITY=sha512-9Gn+V7DtJ8M1nztP9CeDVl9g3RtrepI7rOFTyPRRnZe8D6zebIHKmC7OvBauucuAP0X0k85SDN/LPVZyjsGezQ==
COPY docker/fetch_npm_binary.py /tmp/fetch_npm_binary.py
RUN python3 /tmp/fetch_npm_binary.py @anthropic-ai/claude-code-linux-x64 "${CLAUDE_CODE_VERSION}" \
        "${CLAUDE_CODE_INTEGRITY}" package/claude /out/claude \
    && /out/claude --version | grep -qF "${CLAUDE_CODE_VERSION}"

# ---- deps: third-party dependencies only ----------------------------------------------------
# Keyed on the lock's export, not on pyproject.toml: edits to tool settings or dev deps keep
# this (slow) layer cached. --locked fails the build when uv.lock is stale.
FROM tools AS lock
WORKDIR /src
COPY pyproject.toml uv.lock ./
RUN /opt/uv/bin/uv export --quiet --locked --no-dev --no-emit-project --no-header \
        --format requirements-txt -o /requirements.txt

FROM tools AS deps
ENV UV_PYTHON=python3 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1
COPY --from=lock /requirements.txt /requirements.txt
RUN /opt/uv/bin/uv venv --quiet /opt/venv \
    && /opt/uv/bin/uv pip install --quiet --python /opt/venv/bin/python --no-deps --require-hashes \
        -r /requirements.txt

# ---- project: nightshift itself, installed into a prefix laid over /opt/venv -----------------
FROM deps AS project
COPY . /src
RUN /opt/uv/bin/uv pip install --quiet --compile-bytecode --python /opt/venv/bin/python --no-deps --prefix /opt/project /src

# ---- worker ----------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS worker
ARG CLAUDE_CODE_VERSION=2.1.330
LABEL io.nightshift.managed=true \
      io.nightshift.role=worker \
      io.nightshift.claude-code.version=${CLAUDE_CODE_VERSION}
# git is in the local base already; the public python:*-slim base needs it from apt.
RUN if ! command -v git >/dev/null 2>&1; then \
        apt-get update && apt-get install -y --no-install-recommends git \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && groupadd --gid 10001 nightshift \
    && useradd --uid 10001 --gid 10001 --home-dir /home/nightshift --create-home --shell /bin/bash nightshift \
    && install -d -o 10001 -g 10001 /workspace
COPY --from=claude /out/claude /usr/local/bin/claude
COPY --from=deps /opt/venv /opt/venv
COPY --from=project /opt/project/ /opt/venv/
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/nightshift \
    DISABLE_AUTOUPDATER=1
USER 10001:10001
WORKDIR /workspace
CMD ["bash"]
