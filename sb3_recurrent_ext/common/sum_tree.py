"""A sum tree for proportional prioritized sampling (Schaul et al., 2016), vectorised over a batch."""

from __future__ import annotations

import numpy as np


class SumTree:
    """Binary tree whose leaves hold non-negative priorities and whose inner nodes hold their children's sum.

    Sampling a leaf with probability ``priority / total`` costs one array operation per tree level; updating a
    batch of priorities adds each leaf's change to all its ancestors in one ``np.add.at`` (never one per leaf).
    Inner sums are kept by adding changes, so they carry float64 rounding (relative 1e-16 per update).

    :param capacity: number of leaves.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity={capacity!r} must be a positive integer")
        self.capacity = capacity
        self.depth = max(1, int(np.ceil(np.log2(capacity))))
        self.n_leaves = 1 << self.depth
        # node 1 is the root; node i has children 2i and 2i + 1; leaves are n_leaves .. 2 * n_leaves - 1
        self.nodes = np.zeros(2 * self.n_leaves, dtype=np.float64)
        # leaves with a positive priority, kept up to date by update(): counting them is asked for at every sample
        self.n_nonzero = 0

    @property
    def total(self) -> float:
        return float(self.nodes[1])

    @property
    def leaves(self) -> np.ndarray:
        """``(capacity,)`` view of the leaf priorities."""
        return self.nodes[self.n_leaves : self.n_leaves + self.capacity]

    def count_nonzero(self) -> int:
        """Leaves with a positive priority (a counter, not a scan over the capacity)."""
        return self.n_nonzero

    def update(self, index: np.ndarray, priority: np.ndarray | float) -> None:
        """Set the priorities of leaves ``index`` (repeated indices: the last value wins)."""
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        if index.size == 0:
            return
        priority = np.broadcast_to(np.asarray(priority, dtype=np.float64), index.shape)
        if not np.all((priority >= 0) & (priority < np.inf)):  # NaN fails both
            raise ValueError("priorities must be finite and non-negative")
        if index.size == 1:  # one env's step: nothing to deduplicate
            unique_index, priority_of_unique = index, priority
        else:
            # the last value of a repeated index wins: count each leaf once, with that value
            unique_index, last = np.unique(index[::-1], return_index=True)
            priority_of_unique = priority[::-1][last]
        leaves = unique_index + self.n_leaves
        old, new = self.nodes[leaves], priority_of_unique
        self.n_nonzero += int(np.count_nonzero(new > 0)) - int(np.count_nonzero(old > 0))
        self.nodes[leaves] = new
        # every ancestor of every changed leaf, (depth, n), gets the leaf's change in one unbuffered add (shared
        # ancestors add up): one array operation instead of three per tree level
        ancestors = leaves[None, :] >> np.arange(1, self.depth + 1)[:, None]
        np.add.at(self.nodes, ancestors.ravel(), np.tile(new - old, self.depth))

    def find(self, values: np.ndarray) -> np.ndarray:
        """Leaf index where each prefix sum in ``values`` (in ``[0, total)``) falls."""
        nodes = np.ones(len(values), dtype=np.int64)
        values = np.asarray(values, dtype=np.float64).copy()
        for _ in range(self.depth):
            left = 2 * nodes
            go_right = values >= self.nodes[left]
            values = np.where(go_right, values - self.nodes[left], values)
            nodes = np.where(go_right, left + 1, left)
        leaves = nodes - self.n_leaves
        # rounding can land on an empty leaf next to the last non-empty one; step back to a non-empty leaf
        empty = self.nodes[nodes] <= 0
        if np.any(empty):
            nonzero = np.flatnonzero(self.leaves > 0)
            positions = np.searchsorted(nonzero, leaves[empty]).clip(max=len(nonzero) - 1)
            leaves[empty] = nonzero[positions]
        return leaves

    def sample(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """Stratified proportional sampling: one leaf from each of ``batch_size`` equal slices of the total."""
        if self.total <= 0:
            raise ValueError("cannot sample from a sum tree whose priorities are all zero")
        bounds = np.linspace(0.0, self.total, batch_size + 1)
        values = rng.uniform(bounds[:-1], bounds[1:])
        return self.find(np.minimum(values, np.nextafter(self.total, 0)))
