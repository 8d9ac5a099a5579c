from sat_keras.layers.attentive_lstm_cell import AttentiveLSTMCell
from sat_keras.layers.hard_attention import HardAttentionSampler
from sat_keras.layers.soft_attention import BahdanauStyleSoftAttention

__all__ = ["AttentiveLSTMCell", "BahdanauStyleSoftAttention", "HardAttentionSampler"]
