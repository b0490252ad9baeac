"""PostgreSQL snapshots as the agent keeps them: the text of a ``pg_snapshot``.

A snapshot ``xmin:xmax:xip`` shows a transaction id ``x`` (treats it as finished) when
``x < xmin``, or when ``x < xmax`` and ``x`` is not in ``xip``; that is exactly
``pg_visible_in_snapshot``. The agent's checkpoint is such a text, and so is its *floor*
(see :mod:`terrafusion_agent.sync.reader`). These few functions compare and combine
them without a round trip to the server.
"""

from __future__ import annotations

from typing import NamedTuple


class Snapshot(NamedTuple):
    xmin: int
    xmax: int
    xip: frozenset[int]

    def __str__(self) -> str:
        return f"{self.xmin}:{self.xmax}:{','.join(str(x) for x in sorted(self.xip))}"


def parse(text: str) -> Snapshot:
    """``"728:731:728,729"`` as a :class:`Snapshot`; ValueError for anything else."""
    parts = text.split(":")
    if len(parts) != 3:
        raise ValueError(f"not a pg_snapshot: {text!r}")
    xmin, xmax = int(parts[0]), int(parts[1])
    xip = frozenset(int(x) for x in parts[2].split(",") if x)
    if xmax < xmin or any(not xmin <= x < xmax for x in xip):
        raise ValueError(f"not a pg_snapshot: {text!r}")
    return Snapshot(xmin, xmax, xip)


def shows(s: Snapshot, xid: int) -> bool:
    """Whether ``s`` shows transaction ``xid`` (``pg_visible_in_snapshot``)."""
    return xid < s.xmin or (xid < s.xmax and xid not in s.xip)


def contains(a: Snapshot, b: Snapshot) -> bool:
    """Whether ``a`` shows every transaction ``b`` shows.

    Sufficient: take ``x`` shown by ``b``; then ``x < b.xmax <= a.xmax``, and ``x`` is
    not in ``a.xip`` (every id there is one ``b`` does not show), so ``a`` shows it.
    Necessary for a snapshot ``b`` that PostgreSQL made (or :func:`union` of those):
    its ``xmax - 1`` is a finished transaction, so ``b`` shows it, and an ``a`` with a
    smaller xmax does not; and an id of ``a.xip`` that ``b`` shows is one ``a`` does not.
    """
    return a.xmax >= b.xmax and not any(shows(b, x) for x in a.xip)


def union(a: Snapshot, b: Snapshot) -> Snapshot:
    """The snapshot showing exactly what ``a`` or ``b`` shows.

    Below the smaller xmax an id is hidden from both only when both list it; from the
    smaller xmax up to the larger one, only when the snapshot reaching further lists it.
    """
    small, big = (a, b) if a.xmax <= b.xmax else (b, a)
    xip = frozenset(x for x in big.xip if x >= small.xmax or x in small.xip)
    return Snapshot(min(xip, default=big.xmax), big.xmax, xip)


def below(xid: int) -> Snapshot:
    """The snapshot showing every transaction before ``xid`` and none after."""
    return Snapshot(xid, xid, frozenset())
