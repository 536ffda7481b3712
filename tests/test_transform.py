import numpy as np
import torch

from gen_factory.data import load_dataset
from gen_factory.data.datasets import table_from_frame
from gen_factory.data.transform import encoding_from_dict, encoding_to_dict, fit_encoding


def test_table_encoding_round_trips_and_restores_integers(gauss_table):
    data = table_from_frame(gauss_table, "label")
    enc = encoding_from_dict(encoding_to_dict(fit_encoding(data)))  # through JSON, as workers get it
    assert enc.integer == [False, False, True]
    codes = enc.encode(data.features)
    assert np.allclose(codes.mean(axis=0), 0, atol=1e-5) and np.allclose(codes.std(axis=0), 1, atol=1e-4)
    back = enc.decoder()(torch.from_numpy(codes)).numpy()
    np.testing.assert_allclose(back, data.features, rtol=1e-5, atol=1e-4)
    noisy = enc.decoder()(torch.from_numpy(codes) + 0.3).numpy()
    assert np.all(noisy[:, 2] == np.round(noisy[:, 2]))  # whole numbers
    assert noisy[:, 2].max() <= 9 and noisy[:, 2].min() >= 0  # clipped to the observed range


def test_image_encoding_maps_to_tanh_range_and_back():
    data = load_dataset("digits")
    enc = fit_encoding(data)
    codes = enc.encode(data.images)
    assert codes.min() == -1.0 and codes.max() == 1.0
    back = enc.decoder()(torch.from_numpy(codes)).numpy()
    np.testing.assert_allclose(back, data.images, atol=1e-5)
    np.testing.assert_allclose(enc.encoder()(torch.from_numpy(data.images)).numpy(), codes, atol=1e-6)
