"""Numbers in the words of the lines fastmlp prints."""

from __future__ import annotations


def count(n, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1.

    Examples
    --------
    >>> count(1, "epoch"), count(2, "thread"), count(0, "epoch")
    ('1 epoch', '2 threads', '0 epochs')
    """
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
