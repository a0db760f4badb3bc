"""Agent ⇄ tests ⇄ human, on one agent session.

    turn 1: the task ─▶ reply ─┬─ question ─▶ ask a human ─▶ resume with the answer ─▶ reply ...
                               └─ done ─▶ tests ─┬─ pass ─▶ finished
                                                 └─ fail ─▶ resume with the failures (next iteration)

Every turn after the first resumes the session of the first (`--resume <id>`, same cwd and HOME), so
the agent sees its own earlier work, the failures and the answers. An iteration is one attempt at
passing the tests; questions do not use one up. The caller supplies the three steps (the flow wraps
them in Prefect tasks and a pause) and owns the `LoopRecord`, which is complete up to the point where
anything raised, so a failed run still shows its transcript, tests and cost.
"""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from nightshift.agents.base import AgentOutcome, AgentRequest, TranscriptEntry
from nightshift.codechange.checks import TestRun
from nightshift.codechange.replies import AgentReply, parse_reply
from nightshift.errors import ChangeError, TestsFailingError
from nightshift.prompts import render_prompt
from nightshift.results import RunCost

TurnPurpose = Literal["task", "tests-failed", "answer", "repair"]
LoopStatus = Literal["passed", "untested"]
DEFAULT_MAX_QUESTIONS = 3


class AgentTurn(BaseModel):
    """One agent call: its outcome and its part of the conversation."""

    model_config = ConfigDict(extra="forbid")

    outcome: AgentOutcome
    transcript: list[TranscriptEntry] = Field(default_factory=list)


class Exchange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str
    answer: str


class TurnSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int
    purpose: TurnPurpose
    session_id: str | None
    resumed: bool
    reply: Literal["done", "question"]
    structured: bool
    num_turns: int | None
    cost_usd: float
    duration_s: float


class LoopRecord(BaseModel):
    """Everything the loop did so far."""

    model_config = ConfigDict(extra="forbid")

    session_id: str | None = None
    turns: list[TurnSummary] = Field(default_factory=list)
    test_runs: list[TestRun] = Field(default_factory=list)
    exchanges: list[Exchange] = Field(default_factory=list)
    transcript: list[TranscriptEntry] = Field(default_factory=list)
    cost: RunCost = Field(default_factory=RunCost)
    summary: str = Field(default="", description="the agent's last summary of its work")
    pending_question: str | None = Field(default=None, description="asked and not answered (yet)")

    def add_turn(self, turn: AgentTurn, purpose: TurnPurpose, reply: AgentReply, resumed: bool) -> None:
        outcome = turn.outcome
        cost_usd = outcome.run_cost_usd or 0.0  # the runner subtracts earlier runs of a resumed session
        self.cost.add(outcome)
        self.session_id = outcome.session_id or self.session_id
        self.transcript += turn.transcript
        self.turns.append(
            TurnSummary(
                index=len(self.turns) + 1,
                purpose=purpose,
                session_id=outcome.session_id,
                resumed=resumed,
                reply=reply.status,
                structured=reply.structured,
                num_turns=outcome.num_turns,
                cost_usd=cost_usd,
                duration_s=round(outcome.duration_s, 3),
            )
        )
        if reply.summary:
            self.summary = reply.summary


class LoopSteps(Protocol):
    def agent(self, request: AgentRequest) -> AgentTurn:
        """Run one agent call (raises the errors of `nightshift.errors` on failure)."""
        ...

    def tests(self, iteration: int) -> TestRun | None:
        """Run the test command; None when the repository has none."""
        ...

    def ask(self, question: str, record: LoopRecord) -> str:
        """A human's answer to the agent's question (raises `HumanTimeoutError` when none comes)."""
        ...


def resume_request(first: AgentRequest, session_id: str, prompt: str) -> AgentRequest:
    """The same agent settings, cwd and HOME, continuing `session_id` with a new prompt."""
    return first.model_copy(update={"prompt": prompt, "resume_id": session_id, "session_id": None})


def failure_prompt(run: TestRun, max_iterations: int) -> str:
    return render_prompt(
        "codechange/tests_failed.md.j2",
        {
            "iteration": run.iteration,
            "max_iterations": max_iterations,
            "command": run.command,
            "exit_code": run.exit_code,
            "timed_out": run.timed_out,
            "output": run.output.replace("```", "ʼʼʼ"),
        },
    )


def answer_prompt(question: str, answer: str) -> str:
    return render_prompt("codechange/answer.md.j2", {"question": question, "answer": answer})


def run_loop(
    first: AgentRequest,
    steps: LoopSteps,
    record: LoopRecord,
    *,
    max_iterations: int,
    max_questions: int = DEFAULT_MAX_QUESTIONS,
) -> LoopStatus:
    """Iterate until the tests pass (or there are none); raise when they still fail at the end."""
    request = first
    purpose: TurnPurpose = "task"
    iteration = 1
    while True:
        turn = steps.agent(request)
        reply = parse_reply(turn.outcome)
        record.add_turn(turn, purpose, reply, resumed=request.resume_id is not None)
        session = record.session_id
        if session is None:
            raise ChangeError("the agent CLI reported no session id, so the conversation cannot continue")
        if reply.status == "question":
            question = reply.question or reply.summary
            if len(record.exchanges) >= max_questions:
                raise ChangeError(f"the agent asked more than {max_questions} questions; the last one: {question}")
            record.pending_question = question
            answer = steps.ask(question, record)
            record.pending_question = None
            record.exchanges.append(Exchange(question=question, answer=answer))
            request, purpose = resume_request(first, session, answer_prompt(question, answer)), "answer"
            continue
        run = steps.tests(iteration)
        if run is None:
            return "untested"
        record.test_runs.append(run)
        if run.passed:
            return "passed"
        if iteration >= max_iterations:
            raise TestsFailingError(
                f"the tests still fail after {iteration} iteration(s): {run.short()}", iterations=iteration
            )
        iteration += 1
        request, purpose = resume_request(first, session, failure_prompt(run, max_iterations)), "tests-failed"
