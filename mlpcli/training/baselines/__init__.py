"""The models set beside the MLP on the same split (`train.baseline`, `--baseline`): the linear
model and the kernel machine, fitted after the MLP (fit.py, kernel.py), and a sweep's kernel
point as a run folder of its own (kernel_run.py)."""
