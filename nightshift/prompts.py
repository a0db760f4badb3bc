"""The one module that renders prompts: jinja2 templates under `prompts/`, StrictUndefined.

Every worker has `prompts/<worker>.md.j2`; shared partials live in `prompts/_*.md.j2`. A missing
template, a syntax error or an undefined variable is a `PromptTemplateError` naming the template.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jinja2

from nightshift.errors import PromptTemplateError

PROMPTS_DIR = Path(os.environ.get("NIGHTSHIFT_PROMPTS_DIR", Path(__file__).resolve().parents[1] / "prompts"))


def environment(directory: Path = PROMPTS_DIR) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - prompts are plain text for a model, not HTML
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_prompt(template: str, variables: dict[str, Any], *, directory: Path = PROMPTS_DIR) -> str:
    """Render `template` (e.g. 'audit.md.j2') with `variables`; every failure names the template."""
    try:
        return environment(directory).get_template(template).render(**variables)
    except jinja2.TemplateNotFound as exc:
        raise PromptTemplateError(f"prompt template not found: {exc.name} (in {directory})", template=template) from exc
    except jinja2.TemplateSyntaxError as exc:
        where = f"{exc.filename or template}:{exc.lineno}"
        raise PromptTemplateError(f"prompt template syntax error at {where}: {exc.message}", template=template) from exc
    except jinja2.UndefinedError as exc:
        raise PromptTemplateError(f"prompt template {template}: {exc.message}", template=template) from exc
