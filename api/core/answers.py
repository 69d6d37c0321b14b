"""What a send answers: the first time, and replayed for a repeated Idempotency-Key."""

from __future__ import annotations

from dataclasses import dataclass, replace

from api.core.problems import Problem


@dataclass(frozen=True)
class Answer:
    """A status, a body and its content type; `replayed` when an earlier request's answer."""

    status: int
    body: str
    content_type: str = "application/json"
    replayed: bool = False

    @classmethod
    def of_problem(cls, problem: Problem) -> Answer:
        return cls(problem.status, problem.body, problem.content_type)

    def as_replay(self) -> Answer:
        return replace(self, replayed=True)
