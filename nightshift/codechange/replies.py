"""What the agent says at the end of a turn: done (with a summary), or a question for a human.

The agent is asked for structured output (`--json-schema REPLY_SCHEMA`, the CLI's `StructuredOutput`
tool). When a turn ends without it, the final message is read instead: JSON in it is used, and a last
paragraph that ends with a question mark is a question. Anything else is "done" with the text as
summary: the tests decide whether it really is.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from nightshift.agents.base import AgentOutcome

REPLY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {
            "type": "string",
            "enum": ["done", "question"],
            "description": "done: the task is complete; question: you need an answer from a human to go on",
        },
        "question": {"type": "string", "description": "the one question for the human (status question)"},
        "summary": {"type": "string", "description": "what you changed and why, or why you are asking"},
    },
    "required": ["status", "summary"],
    "additionalProperties": False,
}
_FENCED_JSON = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL)


class AgentReply(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["done", "question"]
    question: str | None = None
    summary: str = ""
    structured: bool = Field(default=True, description="False: read from the final message text")

    @model_validator(mode="after")
    def _question_has_text(self) -> AgentReply:
        if self.status == "question":
            self.question = (self.question or self.summary).strip()
            if not self.question:
                raise ValueError("a question reply needs the question")
        return self


def _from_mapping(data: Any, *, structured: bool) -> AgentReply | None:
    if not isinstance(data, dict):
        return None
    try:
        return AgentReply.model_validate({**data, "structured": structured})
    except ValidationError:
        return None


def _json_in(text: str) -> Any:
    for candidate in [text.strip(), *_FENCED_JSON.findall(text)]:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    return None


def _trailing_question(text: str) -> str | None:
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    if paragraphs and paragraphs[-1].rstrip("*_ )").endswith("?"):
        return paragraphs[-1]
    return None


def parse_reply(outcome: AgentOutcome) -> AgentReply:
    """The agent's reply of one successful turn."""
    reply = _from_mapping(outcome.structured_output, structured=True)
    if reply is not None:
        return reply
    text = outcome.final_text.strip()
    reply = _from_mapping(_json_in(text), structured=False)
    if reply is not None:
        return reply
    question = _trailing_question(text)
    if question is not None:
        return AgentReply(status="question", question=question, summary=text, structured=False)
    return AgentReply(status="done", summary=text, structured=False)
