"""Every registered network: two heads of 7, on a 48x48 grey batch."""

import pytest

torch = pytest.importorskip("torch", reason="network tests need the [train] extra (torch)")

from emolens.training.nets import count_parameters, create_net, list_nets  # noqa: E402

SEEDS = {"baseline_cnn", "resemotenet", "residual_cnn", "vgg_compact", "liu_cnn"}


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


@pytest.mark.parametrize("activation", ["relu", "elu", "tanh"])
@pytest.mark.parametrize("residual", [True, False])
def test_liu_cnn_switches_change_the_net_not_the_interface(activation, residual):
    """Liu's ablation switches: the activation is every nonlinearity, residual adds the blocks (and only
    their weights), dropout 0 removes every dropout layer; two heads of 7 either way."""
    net = create_net("liu_cnn", activation=activation, dropout=0.0, residual=residual).eval()
    kinds = {type(m).__name__ for m in net.modules()}
    chosen = {"relu": "ReLU", "elu": "ELU", "tanh": "Tanh"}[activation]
    assert chosen in kinds and not kinds & ({"ReLU", "ELU", "Tanh"} - {chosen})
    assert ("ResidualBlock" in kinds) == residual and not any(m.p > 0 for m in net.modules()
                                                             if isinstance(m, torch.nn.Dropout))
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == (12 if residual else 4)  # the 4-layer CNN, plus two convs per residual block
    with torch.no_grad():
        logits, intensity = net(torch.randn(2, 1, 48, 48))
    assert logits.shape == intensity.shape == (2, 7) and torch.isfinite(logits).all()
    plain = create_net("liu_cnn", activation=activation, dropout=0.0, residual=False)
    assert (count_parameters(net) > count_parameters(plain)) == residual
    dropped = create_net("liu_cnn", dropout=0.5)
    assert sorted(m.p for m in dropped.modules() if isinstance(m, torch.nn.Dropout)) == [0.25] * 4 + [0.5]


@pytest.mark.parametrize("name, parameters, tensors", [
    ("baseline_cnn", 1_179_854, 42), ("resemotenet", 9_385_182, 80), ("residual_cnn", 1_210_862, 64),
    ("vgg_compact", 6_671_822, 38),
])
def test_seed_nets_keep_their_weights_for_old_checkpoints(name, parameters, tensors):
    """The activation switch added for liu_cnn left the seed nets as their checkpoints (the running
    paper runs' last.pt among them) were saved: same parameters, same state-dict entries, ReLU only."""
    net = create_net(name)
    assert (count_parameters(net), len(net.state_dict())) == (parameters, tensors)
    kinds = {type(m).__name__ for m in net.modules()}
    assert "ReLU" in kinds and not kinds & {"ELU", "Tanh"}


def test_every_recipe_parses_and_builds_its_net():
    from pathlib import Path

    from emolens.training.recipe import Recipe

    recipes = sorted((Path(__file__).resolve().parents[1] / "recipes").rglob("*.toml"))
    assert len(recipes) >= 6
    for path in recipes:
        r = Recipe.load(path)
        net = create_net(r.net.name, **r.net.args)
        assert count_parameters(net) > 0, path
