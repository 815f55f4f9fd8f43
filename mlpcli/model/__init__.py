"""The network and what its outputs mean: the factory over layer sizes, the layer structure
counted from a config, each task's loss, output transform and metrics, and scoring in batches."""
