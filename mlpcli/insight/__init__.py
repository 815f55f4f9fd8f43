"""What a network learned and why it learns or fails: mlp inspect, mlp summary, mlp plot's
decision regions, curves and detectors, and their figures."""
