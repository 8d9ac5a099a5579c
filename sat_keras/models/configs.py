"""Named hyperparameter sets: model, encoder and training arguments.

`get_config(name)` returns a fresh copy; the CLI and examples only pick a
name and override single values.
"""

import copy

_CONFIGS = {
    # The built-in synthetic data on a laptop CPU: `sat-keras demo`.
    "synthetic": {
        "model": {"embedding_dim": 64, "units": 128, "attention_dim": 64,
                  "dropout": 0.1, "doubly_stochastic_weight": 1.0},
        "encoder": {"filters": [16, 32, 64]},
        "training": {"batch_size": 64, "learning_rate": 3e-3, "epochs": 9,
                     "image_size": 64, "max_length": 20, "num_images": 8000},
    },
    # Flickr8k on cached MobileNet conv_pw_11 features (14x14x512) on a CPU:
    # `examples/train_flickr8k.py` and `sat-keras train --dataset flickr8k`.
    "flickr8k_mobilenet": {
        "model": {"embedding_dim": 256, "units": 512, "attention_dim": 256,
                  "dropout": 0.5, "doubly_stochastic_weight": 1.0},
        "encoder": {"name": "mobilenet"},
        "training": {"batch_size": 64, "learning_rate": 1e-3, "epochs": 30,
                     "image_size": 224, "max_length": 22, "min_count": 5,
                     "validation_images": 250, "patience": 3},
    },
    # The authors' Flickr8k settings (arctic-captions evaluate_flickr8k.py):
    # word embedding 512, LSTM 1800, 512-d annotations, lambda 1, gating
    # scalar, deep output with prev2out and ctx2out, dropout, batch 64,
    # a 10,000-word vocabulary. Not reproduced: their 2-layer attention and
    # initial-state MLPs (ours have one layer each).
    "paper_soft": {
        "model": {"embedding_dim": 512, "units": 1800, "attention_dim": 512,
                  "dropout": 0.5, "doubly_stochastic_weight": 1.0},
        "encoder": {"name": "vgg19"},
        "training": {"batch_size": 64, "learning_rate": 1e-3, "epochs": 20,
                     "image_size": 224, "max_length": 30, "min_count": 1,
                     "max_vocabulary_size": 10000, "validation_images": 1000,
                     "patience": 5},
    },
}


# Hard-attention twins: the same sets with attention="hard" and without the
# doubly stochastic penalty, which belongs to soft attention (sec. 4.2.1)
# and is not part of hard attention's objective (sec. 4.1).
for _name in ("synthetic", "flickr8k_mobilenet", "paper_soft"):
    _hard = copy.deepcopy(_CONFIGS[_name])
    _hard["model"]["attention"] = "hard"
    _hard["model"]["doubly_stochastic_weight"] = 0.0
    _CONFIGS[_name.replace("_soft", "") + "_hard"] = _hard


def config_names():
    return sorted(_CONFIGS)


def get_config(name, **training_overrides):
    """A deep copy of the named set: {"model": ..., "encoder": ..., "training": ...}.

    `training_overrides` replace training values; None leaves a value as it is.
    """
    if name not in _CONFIGS:
        raise ValueError(f"Unknown config {name!r}. Available: {config_names()}")
    config = copy.deepcopy(_CONFIGS[name])
    config["training"].update(
        {key: value for key, value in training_overrides.items() if value is not None})
    return config
