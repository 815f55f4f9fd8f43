"""Run folders on disk: their layout and lock, atomic writes, model files and resume checkpoints,
the schemas those files must meet, and TensorBoard logs beside them."""
