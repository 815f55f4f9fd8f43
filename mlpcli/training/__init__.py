"""Training one run: the plan checked before torch, the loop and its callbacks, the two engines
(autograd, written-out backprop), optimisers, schedules, data parallelism, diagnostics, progress,
the learning-rate range test, the baselines beside the MLP (baselines/), and the orchestration
that writes the run folder."""
