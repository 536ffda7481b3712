"""Checkpoint selection: the generator closest to the training rows ships, and patience ends a run."""

from __future__ import annotations

import torch
from torch import nn

from gen_factory.models import ModelSpec, build_models
from gen_factory.train.hyper import default_hyper
from gen_factory.train.loop import GANTrainer
from gen_factory.train.selection import BestGenerator, best_models

MEANS = torch.tensor([[-2.0, 0.0, 1.0], [2.0, 1.0, -1.0]])


class Gaussians(nn.Module):
    """A stand-in generator with a known output law: each label's mean plus `shift`, unit noise."""

    def __init__(self, shift: float, swap_labels: bool = False):
        super().__init__()
        self.shift, self.swap_labels = shift, swap_labels

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return MEANS[1 - labels if self.swap_labels else labels] + self.shift + noise[:, :3]


class UniformImages(nn.Module):
    """A stand-in image generator: uniform 16x16 pixels plus `shift`, ignoring noise and labels."""

    def __init__(self, shift: float):
        super().__init__()
        self.shift = shift

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.rand(len(noise), 1, 16, 16) + self.shift


def real_rows(n: int = 400) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 2, (n,), generator=gen)
    return MEANS[labels] + torch.randn(n, 3, generator=gen), labels


def test_distance_is_small_for_the_real_law_and_grows_with_the_error():
    selector = BestGenerator(*real_rows(), noise_dim=8)
    right, off, far = (selector.distance(Gaussians(s)) for s in (0.0, 1.0, 3.0))
    assert right < 0.2 < off < far
    assert selector.distance(Gaussians(0.0, swap_labels=True)) > off  # right rows, wrong labels


def test_images_are_projected_to_a_fixed_number_of_dimensions():
    images, labels = torch.rand(60, 1, 16, 16), torch.zeros(60, dtype=torch.long)
    selector = BestGenerator(images, labels, noise_dim=8)
    assert selector.rotation.shape == (256, 64)
    assert selector.distance(UniformImages(0.0)) < selector.distance(UniformImages(1.0))


def _outputs(generator: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return generator(torch.ones(4, 64), torch.tensor([0, 1, 0, 1]))


def test_the_best_recorded_generator_is_kept_and_patience_stops():
    g, d = build_models(ModelSpec("table", 2, [3]))
    trainer = GANTrainer(g, d, default_hyper("table"), 64)
    selector = BestGenerator(*real_rows(), noise_dim=64, patience=2)
    trainer.step(*real_rows(8))
    selector.record(trainer, 1, 5.0)
    trainer.step(*real_rows(8))
    selector.record(trainer, 2, 3.0)
    kept = _outputs(trainer.g_ema)
    for epoch, distance in ((3, 4.0), (4, 6.0)):
        assert not selector.stop
        trainer.step(*real_rows(8))
        selector.record(trainer, epoch, distance)
    assert selector.stop and selector.best["epoch"] == 2
    assert not torch.equal(_outputs(trainer.g_ema), kept)  # training went on...
    generator, discriminator = best_models(trainer, selector.state_dict())
    assert torch.equal(_outputs(generator), kept)  # ...but epoch 2's generator is the one handed on
    assert all(torch.equal(a, b) for a, b in zip(discriminator.state_dict().values(),
                                                  selector.best["discriminator"].values(), strict=True))
    restored = BestGenerator(*real_rows(), noise_dim=64, patience=2)
    restored.load_state_dict(selector.state_dict())
    assert restored.stop and torch.equal(_outputs(restored.best_models(trainer)[0]), kept)


def test_without_patience_the_run_never_stops_early():
    g, d = build_models(ModelSpec("table", 2, [3]))
    trainer = GANTrainer(g, d, default_hyper("table"), 64)
    selector = BestGenerator(*real_rows(), noise_dim=64)
    for epoch in range(1, 12):
        selector.record(trainer, epoch, float(epoch))  # only worse after the first
    assert not selector.stop and selector.best["epoch"] == 1 and selector.since_best == 10
