"""Conditional generators and discriminators for tables and images, and the GAN losses."""

from gen_factory.models.factory import ModelSpec, build_models, spec_for

__all__ = ["ModelSpec", "build_models", "spec_for"]
