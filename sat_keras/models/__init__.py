from sat_keras.models.show_attend_tell import ShowAttendTell

__all__ = ["ShowAttendTell"]
