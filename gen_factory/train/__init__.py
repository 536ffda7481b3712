"""Training: the plain-PyTorch GAN step (loop.py) and its Ray Train wiring (distributed.py)."""
