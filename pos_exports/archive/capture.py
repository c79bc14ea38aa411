"""When a snapshot (customers, inventory) can be captured: the one rule that the archive, the retention guard,
the catch-up sensor and the export messages share.

The POS keeps no history of customers or stock, so the snapshot of a business-local day D can only be taken
while the present still describes D: from the end of D in the business's zone until `SNAPSHOT_MAX_LAG` (48 h)
later, `[end of D, end of D + 48 h)`. Before, D has not ended; after, a snapshot never captured is lost.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from pos_exports.periods import day_window

SNAPSHOT_MAX_LAG = dt.timedelta(hours=48)
NOT_ENDED, OPEN, LOST = "not_ended", "open", "lost"


@dataclass(frozen=True)
class Capture:
    """The capture window `[opens, closes)` of one business-day's snapshot."""

    day: dt.date
    opens: dt.datetime  # the end of the day in the business's zone (UTC)
    closes: dt.datetime  # opens + SNAPSHOT_MAX_LAG: from then on a missing snapshot is lost

    def state(self, now: dt.datetime) -> str:
        if now < self.opens:
            return NOT_ENDED
        return OPEN if now < self.closes else LOST

    def capturable(self, now: dt.datetime) -> bool:
        return self.state(now) == OPEN

    def hours_left(self, now: dt.datetime) -> int:
        """Whole hours left to capture it (rounded down; 0 in its last hour)."""
        return max(math.floor((self.closes - now).total_seconds() / 3600), 0)

    def note(self, now: dt.datetime) -> str:
        """One phrase for every message about it: the export error, the retention guard, the archive refusal."""
        state = self.state(now)
        if state == NOT_ENDED:
            return f"not capturable yet: the day ends at {self.opens.isoformat()}, then it can be captured for 48 h"
        if state == OPEN:
            return f"can still be captured for {self.hours_left(now)} h (until {self.closes.isoformat()})"
        return (
            f"never captured: lost (the POS keeps no history of this state; the capture window closed at "
            f"{self.closes.isoformat()}, {SNAPSHOT_MAX_LAG.total_seconds() / 3600:.0f} h after the end of the day)"
        )


def snapshot_capture(day: dt.date, timezone: str) -> Capture:
    """The capture window of the snapshot of local `day` in `timezone`."""
    end = day_window(day, timezone).end
    return Capture(day, end, end + SNAPSHOT_MAX_LAG)


def snapshot_capturable(day: dt.date, timezone: str, now: dt.datetime) -> bool:
    """Can the snapshot of local `day` be captured at `now` (aware)? The day ended less than 48 h ago."""
    return snapshot_capture(day, timezone).capturable(now)


def archive_command(dataset: str, day: dt.date, business_id: int) -> str:
    """The command that archives (captures) one dataset of one business-day."""
    return f"pos-exports archive --date {day.isoformat()} --dataset {dataset} --business-id {business_id}"
