"""A ComfyUI prompt's progress as one count over all its samplers (base, refiner, hires pass), as the local engine
reports a job: the steps count on from sampler to sampler up to their sum, never back to 1."""

from __future__ import annotations

SAMPLER_NODES = ("KSampler", "KSamplerAdvanced")


def node_steps(node: dict) -> int:
    """The steps a sampler node runs, as ComfyUI's progress counts them (its `max`): KSampler all its `steps` (a
    denoise below 1 stretches the schedule and runs the last `steps` of it); KSamplerAdvanced the steps from
    `start_at_step` to `end_at_step` of its `steps`-step schedule (nodes.common_ksampler slices the sigmas, and
    latent_preview's callback reports `len(sigmas) - 1` of the slice as the total)."""
    inputs = node.get("inputs") or {}
    steps = inputs.get("steps")
    if not isinstance(steps, int) or isinstance(steps, bool):
        return 0
    if node.get("class_type") == "KSampler":
        return steps
    start, end = inputs.get("start_at_step", 0), inputs.get("end_at_step", steps)
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (start, end)):
        return steps
    return max(0, min(end, steps) - start)


def graph_sampler_steps(graph: dict) -> dict[str, int]:
    """node id -> the steps it runs, for every sampler node of an API-format graph."""
    return {node_id: node_steps(node) for node_id, node in graph.items()
            if isinstance(node, dict) and node.get("class_type") in SAMPLER_NODES}


class SamplerProgress:
    """Folds the server's per-sampler progress messages (value 1..max, then 1..max again for the next sampler) into
    (step, total) over the whole prompt: total = the sum of the graph's sampler steps."""

    def __init__(self, graph: dict):
        self.steps = graph_sampler_steps(graph)
        self.total = sum(self.steps.values())
        self.done: dict[str, int] = {}  # sampler -> steps it reported
        self._current: str | None = None
        self._unnamed = 0  # a message without a node (older servers): a drop in `value` starts the next sampler

    def update(self, value: int, maximum: int, node: str | None) -> tuple[int, int]:
        if node is None or node not in self.steps:
            node = self._unnamed_node(value)
        elif node not in self.done and self._current is not None and self._current in self.steps:
            self.done[self._current] = self.steps[self._current]  # a sampler ends where the next one starts
        self._current = node
        limit = self.steps.get(node, maximum)
        self.done[node] = max(self.done.get(node, 0), min(value, limit))
        total = max(self.total, sum(self.done.values()))  # a server counting more than the graph says: never past
        return sum(self.done.values()), total

    def _unnamed_node(self, value: int) -> str:
        key = f"?{self._unnamed}"
        if key in self.done and value < self.done[key]:
            self._unnamed += 1
            key = f"?{self._unnamed}"
        return key
