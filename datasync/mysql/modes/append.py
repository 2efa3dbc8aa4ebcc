"""Append mode: copy rows whose integer key is above the largest one already synced.

For insert-only tables (logs, events).  Rows are COPYed straight into the target in
key order; updates and deletes of old rows are not seen (that is the contract of the mode).
"""

from __future__ import annotations

from ..copy import Counts, copy_select, table_ref
from ..types import q


def run(job, plan, step, previous):
    column = q(plan.cursor)
    where, args = (f"{column} > %s", (int(step.since),)) if step.since is not None else ("", None)
    rows, zeros = copy_select(job, plan, table_ref(plan), where=where, args=args, order=column)
    return Counts(inserted=rows, zero_dates=zeros), {}
