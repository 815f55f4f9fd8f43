"""Using a trained model: loading it from a run folder or a model file, eval and predict,
per-class results, and the ONNX export."""
