"""Built-in attribution models: last touch (the default) and engagement-weighted.

Like any third-party plugin, this module imports only ``core.plugin``; Clasp hands each model the
sale and the touches inside the window and stores what it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.plugin import AttributionModel, Credit, SaleFacts, Touch, hookimpl


class LastTouch(AttributionModel):
    """All the credit to the most recent touch before the sale, from any store."""

    name = "last_touch"
    title = "Last touch"
    description = (
        "The whole sale goes to the most recent delivered text or completed call/text task to the "
        "client within the window before the sale, whichever store it came from."
    )

    def credit(self, sale: SaleFacts, touches: Sequence[Touch]) -> list[Credit]:
        return [Credit(touches[0])] if touches else []


# How much a touch counts relative to a delivered text nobody answered: a conversation (the client
# replied) shows the outreach landed; a call or text an associate made by hand shows personal effort.
REPLIED = 3.0
PERSONAL_TASK = 2.0
DELIVERED = 1.0
AUTOMATED = 0.5


class EngagementWeighted(AttributionModel):
    """The sale split across every touch in the window, weighted by how engaged each one was."""

    name = "engagement_weighted"
    title = "Engagement-weighted"
    description = (
        "The sale is shared by every touch in the window: a text the client replied to counts 3, a "
        "completed call or text task 2, a delivered text 1, and an automated text nobody answered "
        "0.5. Shares are proportional to those points."
    )

    def score(self, touch: Touch) -> float:
        if touch.replied_at is not None:
            return REPLIED
        if touch.kind == "task":
            return PERSONAL_TASK
        return AUTOMATED if touch.automated else DELIVERED

    def credit(self, sale: SaleFacts, touches: Sequence[Touch]) -> list[Credit]:
        scores = [(t, self.score(t)) for t in touches]
        total = sum(s for _, s in scores)
        if total <= 0:
            return []
        return [Credit(t, s / total) for t, s in scores]


@hookimpl
def clasp_register_attribution_models(register: Any) -> None:
    register(LastTouch())
    register(EngagementWeighted())
