"""Cost caps for consolidation: per run and per UTC day, on sessions, input tokens and LLM calls.

:class:`Budget` wraps the configured :class:`~engramdb.llm.base.LLM` for one run. Before each
call it estimates the call's input tokens (characters / 4, the estimate used everywhere in
engramdb) and refuses, with :class:`~engramdb.errors.BudgetExceededError`, a call that would
take the run or the namespace's day past a cap; after the call it records what the model
reported (the estimate when it reports nothing) in the store's per-day ledger, so every
process sharing the store sees the same daily totals. Sessions are counted the same way with
:meth:`Budget.take_session` before a session is summarized.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import BudgetExceededError, InvalidInputError
from ..llm.base import LLM, Completion, Message
from ..manager.transcript import estimate_tokens
from ..store.base import Store
from ..types import Spend, utc_day


@dataclass(frozen=True, slots=True)
class Caps:
    """Upper bounds on what consolidation spends; ``None`` means no bound."""

    max_sessions: int | None = None
    max_input_tokens: int | None = None
    max_llm_calls: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_sessions", "max_input_tokens", "max_llm_calls"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise InvalidInputError(f"{name} must be a non-negative integer or None: {value}")


@dataclass(frozen=True, slots=True)
class CostCaps:
    """The caps of one run and of one UTC day of a namespace (all its scopes together).

    The defaults bound a run to 20 sessions, 200k input tokens and 40 calls, and a day to
    100 sessions, 1M input tokens and 200 calls: a background schedule can never burn more
    than a day's cap, whatever it finds to do.
    """

    run: Caps = field(default_factory=lambda: Caps(20, 200_000, 40))
    day: Caps = field(default_factory=lambda: Caps(100, 1_000_000, 200))


def estimate_input_tokens(messages: Sequence[Message]) -> int:
    """The input tokens of ``messages``, estimated as characters / 4 (rounded up)."""
    return estimate_tokens("".join(message.content for message in messages))


class Budget:
    """The spend of one consolidation run of ``scope``, checked against ``caps`` before every
    LLM call and session, and recorded in ``store``'s ledger under ``day``.

    Use :meth:`llm` to get the wrapped model to hand to the phases; ``spent`` is what this run
    spent so far.
    """

    def __init__(
        self,
        store: Store,
        namespace: str,
        scope: str,
        caps: CostCaps | None = None,
        *,
        day: str | None = None,
    ) -> None:
        self.store = store
        self.namespace = namespace
        self.scope = scope
        self.caps = caps or CostCaps()
        self.day = day or utc_day()
        self.spent = Spend()

    def today(self) -> Spend:
        """What the whole namespace spent on this run's day, every scope and process."""
        total = Spend()
        for row in self.store.spend_list(self.namespace, since=self.day):
            if row.day == self.day:
                total = total + row.spend
        return total

    def _check(self, adding: Spend) -> None:
        day = self.today()
        for window, caps, used in (("run", self.caps.run, self.spent), ("day", self.caps.day, day)):
            for name, limit, before, more in (
                ("max_sessions", caps.max_sessions, used.sessions, adding.sessions),
                ("max_input_tokens", caps.max_input_tokens, used.input_tokens, adding.input_tokens),
                ("max_llm_calls", caps.max_llm_calls, used.llm_calls, adding.llm_calls),
            ):
                if more and limit is not None and before + more > limit:
                    raise BudgetExceededError(
                        f"the {window} cap {name}={limit:,} would be passed "
                        f"({before:,} spent, {more:,} more needed); nothing was sent",
                        cap=f"{window}.{name}",
                        limit=limit,
                        used=before,
                    )

    def _record(self, spend: Spend) -> None:
        self.spent = self.spent + spend
        self.store.spend_add(self.namespace, self.day, self.scope, spend)

    def take_session(self) -> None:
        """Count one more session for this run, or raise BudgetExceededError if a cap is
        reached (nothing counted then)."""
        self._check(Spend(sessions=1))
        self._record(Spend(sessions=1))

    def check_call(self, messages: Sequence[Message]) -> int:
        """Raise BudgetExceededError if a call with ``messages`` would pass a cap; returns its
        estimated input tokens."""
        estimate = estimate_input_tokens(messages)
        self._check(Spend(llm_calls=1, input_tokens=estimate))
        return estimate

    def record_call(self, estimate: int, completion: Completion | None) -> Spend:
        """Record one call: the tokens the model reported, the estimate when it reported none
        (or the call failed: a failed call may still have been billed)."""
        usage = completion.usage if completion is not None else None
        spend = Spend(
            llm_calls=1,
            input_tokens=usage.prompt_tokens if usage and usage.prompt_tokens else estimate,
            output_tokens=usage.completion_tokens if usage else 0,
        )
        self._record(spend)
        return spend

    def llm(self, inner: LLM) -> BudgetedLLM:
        """``inner`` behind this budget: each call is checked first and recorded after."""
        return BudgetedLLM(inner, self)


class BudgetedLLM:
    """An :class:`~engramdb.llm.base.LLM` whose calls are checked against and recorded in a
    :class:`Budget`."""

    def __init__(self, inner: LLM, budget: Budget) -> None:
        self.inner = inner
        self.budget = budget
        self.model = inner.model

    def complete_json(
        self, messages: Sequence[Message], schema: Mapping[str, Any], *, name: str
    ) -> Completion:
        estimate = self.budget.check_call(messages)
        completion: Completion | None = None
        try:
            completion = self.inner.complete_json(messages, schema, name=name)
            return completion
        finally:
            self.budget.record_call(estimate, completion)

    async def acomplete_json(
        self, messages: Sequence[Message], schema: Mapping[str, Any], *, name: str
    ) -> Completion:
        estimate = self.budget.check_call(messages)
        completion: Completion | None = None
        try:
            completion = await self.inner.acomplete_json(messages, schema, name=name)
            return completion
        finally:
            self.budget.record_call(estimate, completion)


__all__ = ["Budget", "BudgetedLLM", "Caps", "CostCaps", "estimate_input_tokens"]
