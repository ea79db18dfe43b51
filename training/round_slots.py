"""Click rounds carried across training steps (config `"rounds_per_example": N`).

Today's loop spends no-grad passes to reach an example's click round: an example trained at round r costs r forward
passes first (0.26 s each for a batch of 4 on the 2-core machine, 45 % of a step). Here each batch slot keeps its
example for N consecutive steps instead and trains on it at every round 0..N-1; the next round's error click comes
from the prediction the train step made anyway (one step older weights), so no pass is spent. Every round is trained
once per example, the same spread over rounds as passes drawn uniformly from 0..N-1 (`max_click_passes` N-1), but
each object now appears in N consecutive batches; slots are staggered so that about batch/N of them take a fresh
example each step.

A resumed run starts every slot afresh (the slots' clicks are not in the checkpoint); the fresh examples of a step
still depend only on (seed, step, slot), as in training.batches.
"""
from __future__ import annotations

import numpy as np


class RoundSlots:
    def __init__(self, batch_size: int, rounds: int):
        if rounds < 1:
            raise ValueError(f"rounds_per_example {rounds}: give 1 or more (1: every example is trained once, at round 0)")
        self.rounds = rounds
        self.offsets = [slot * rounds // batch_size for slot in range(batch_size)]
        self.examples: list = [None] * batch_size
        self.round = [0] * batch_size

    def fresh(self, step: int) -> list[int]:
        """The slots that take a new example at `step` by the schedule (independent of what the slots hold)."""
        return [slot for slot, offset in enumerate(self.offsets) if (step + offset) % self.rounds == 0]

    def batch(self, step: int, stream) -> list[dict]:
        """This step's examples: the scheduled fresh ones (every slot, on a run's first step) and the kept ones."""
        slots = sorted(set(self.fresh(step)) | {slot for slot, example in enumerate(self.examples) if example is None})
        for slot, example in zip(slots, stream.batch(step, slots, self.fresh)):
            self.examples[slot], self.round[slot] = example, 0
        return list(self.examples)

    def advance(self, step: int, stream, predictions: np.ndarray) -> None:
        """After the train step: slots that keep their example next step get its error click from `predictions`."""
        leaving = set(self.fresh(step + 1))
        kept = [slot for slot in range(len(self.examples)) if slot not in leaving]
        clicked = stream.add_error_clicks([self.examples[slot] for slot in kept], predictions[kept])
        for slot, example in zip(kept, clicked):
            self.examples[slot] = example
            self.round[slot] += 1
