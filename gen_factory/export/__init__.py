"""Trained torch modules to a self-contained ONNX bundle (bundle), and the anomaly thresholds the
bundle ships with, set on its own exported scorer (calibrate)."""
