"""Show, Attend and Tell (Xu et al., 2015) in Keras 3 on TensorFlow."""

from sat_keras import startup

startup.quiet_for_the_command_line()  # before the imports below start TensorFlow

# export and models.saving register the loaders of their formats (models.preset_loaders).
from sat_keras import export  # noqa: F401
from sat_keras.decoding import SearchSettings
from sat_keras.encoders import PretrainedEncoder
from sat_keras.encoders import SmallCNNEncoder
from sat_keras.layers.attentive_lstm_cell import AttentiveLSTMCell
from sat_keras.layers.hard_attention import HardAttentionSampler
from sat_keras.layers.soft_attention import BahdanauStyleSoftAttention
from sat_keras.models import saving  # noqa: F401
from sat_keras.models.caption_ensemble import CaptionEnsemble
from sat_keras.models.captioner import Captioner
from sat_keras.models.show_attend_tell import ShowAttendTell
from sat_keras.text import Vocabulary
from sat_keras.training import optimizers  # noqa: F401  (registers FineTuningAdam for loading)
from sat_keras.version import __version__

__all__ = [
    "__version__",
    "AttentiveLSTMCell",
    "BahdanauStyleSoftAttention",
    "CaptionEnsemble",
    "Captioner",
    "HardAttentionSampler",
    "PretrainedEncoder",
    "SearchSettings",
    "ShowAttendTell",
    "SmallCNNEncoder",
    "Vocabulary",
]
