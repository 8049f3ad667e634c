"""Every registered network: two heads of 7, on a 48x48 grey batch."""

import pytest

torch = pytest.importorskip("torch", reason="network tests need the [train] extra (torch)")

from emolens.training.nets import count_parameters, create_net, list_nets  # noqa: E402

SEEDS = {"baseline_cnn", "resemotenet", "residual_cnn", "vgg_compact"}


def test_registry_has_the_seed_architectures_and_ours():
    assert SEEDS | {"emonet"} <= set(list_nets())
    with pytest.raises(ValueError, match="unknown network 'nope'; choose one of"):
        create_net("nope")


@pytest.mark.parametrize("name", sorted(SEEDS | {"emonet"}))
def test_output_shapes(name):
    net = create_net(name).eval()
    with torch.no_grad():
        logits, intensity = net(torch.randn(3, 1, 48, 48))
    assert logits.shape == (3, 7) and intensity.shape == (3, 7)
    assert torch.isfinite(logits).all() and torch.isfinite(intensity).all()
    assert 0.1e6 < count_parameters(net) < 12e6
    assert net.arch == name


def test_emonet_is_configurable():
    small = create_net("emonet", width=16, blocks=(1, 1, 1, 1))
    assert count_parameters(small) < count_parameters(create_net("emonet"))


def test_every_recipe_parses_and_builds_its_net():
    from pathlib import Path

    from emolens.training.recipe import Recipe

    recipes = sorted((Path(__file__).resolve().parents[1] / "recipes").rglob("*.toml"))
    assert len(recipes) >= 6
    for path in recipes:
        r = Recipe.load(path)
        net = create_net(r.net.name, **r.net.args)
        assert count_parameters(net) > 0, path
