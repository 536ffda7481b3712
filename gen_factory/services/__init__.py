"""Applications built from the stages: train-and-register (pipeline), bulk datasets on Ray Data
(bulk), augmentation and anomaly baselines, Ray Job submission (jobs), the local Ray it all uses
(cluster)."""
