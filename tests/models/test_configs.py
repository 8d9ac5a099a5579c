import pytest

from sat_keras.models.configs import config_names
from sat_keras.models.configs import get_config


def test_overrides_replace_training_values_and_none_keeps_them():
    config = get_config("synthetic", epochs=2, batch_size=None)
    assert config["training"]["epochs"] == 2
    assert config["training"]["batch_size"] == get_config("synthetic")["training"]["batch_size"]
    assert get_config("synthetic")["training"]["epochs"] != 2  # a fresh copy each time


def test_hard_twins_and_unknown_names():
    assert get_config("synthetic_hard")["model"]["attention"] == "hard"
    for name in ("synthetic", "flickr8k_mobilenet", "paper_soft"):
        hard = get_config(name.replace("_soft", "") + "_hard")["model"]
        assert get_config(name)["model"]["doubly_stochastic_weight"] == 1.0
        assert hard["doubly_stochastic_weight"] == 0.0  # sec. 4.2.1's term is soft attention's
    assert "paper_hard" in config_names()
    with pytest.raises(ValueError, match="Unknown config"):
        get_config("nope")
