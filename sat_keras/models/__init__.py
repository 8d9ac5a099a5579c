from sat_keras.models.caption_ensemble import CaptionEnsemble
from sat_keras.models.show_attend_tell import ShowAttendTell

__all__ = ["CaptionEnsemble", "ShowAttendTell"]
