"""What runs where a model is used: the ONNX bundle (onnx_model), rows and images from it (sampling),
anomaly scores from it (scoring). Torch-free, so serving replicas and bulk actors stay small."""
