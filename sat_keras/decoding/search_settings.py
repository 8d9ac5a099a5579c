"""`SearchSettings`, the one decoding object, and `search`, the search it chooses.

A captioner carries its `SearchSettings` (`compile(search=...)`) in its
config, preset, `.keras` file and export (`export_config.json`'s "search"),
and every door reads it as an object: Python's `caption` and `generate`,
`sat-keras caption`, `evaluate` and `export`, and the exported graph that
both servers run. A new option is a field here (with its check and its
`--flag` help) and its constraint in `constraints.py`; `search` applies it.
"""

import dataclasses
import warnings

from sat_keras import checks
from sat_keras.decoding.beam_search import beam_search
from sat_keras.decoding.beam_search import check_num_captions
from sat_keras.decoding.constraints import block_repeated_ngrams
from sat_keras.decoding.constraints import require_min_length
from sat_keras.decoding.constraints import suppress_tokens
from sat_keras.decoding.word_by_word import greedy_search
from sat_keras.decoding.word_by_word import sample_search
from sat_keras.text import UNK_ID


def _option(default, help, flag=True, metavar=None):
    """A field with its `sat-keras` flag's help (`flag`: caption, evaluate and export
    take it as --NAME; the command line leaves the others to Python)."""
    return dataclasses.field(default=default,
                             metadata={"help": help, "flag": flag, "metavar": metavar})


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    """How captions are searched for: a captioner's decoding, end to end.

    `beam_size` 1 (with `num_captions` None) is greedy search, larger sizes
    the batched `beam_search` with `length_penalty`; a `temperature` draws
    every word instead (`sample_search`). `num_captions` n (1 to beam_size)
    asks for the beam's n best besides the best, which stays the same.
    `suppress_unknown` never emits `<unk>` (`suppress_tokens`; default
    False: the model's own distribution, as the authors decode).
    `no_repeat_ngram_size` n > 0 never repeats an n-gram within a caption
    (`block_repeated_ngrams`; 0, the default: no blocking, as the authors
    decode). `min_length` n > 0 writes no `<end>` before n words
    (`require_min_length`; 0: none).

    Built, it is checked: a wrong type or value raises `ValueError`, and
    None means "not given" (the field's default). Frozen and hashable: a
    model keeps one compiled search per distinct settings. A change is
    `settings.replace(beam_size=3)`, which refuses unknown fields.

    Example:
    >>> settings = SearchSettings(beam_size=5, length_penalty=1.0)
    >>> settings.replace(beam_size=3).describe()
    'beam 3, length penalty 1'
    """

    max_length: int = _option(20, "the most words per caption, <end> included")
    beam_size: int = _option(1, "1: greedy search; more: beam search")
    length_penalty: float = _option(
        0.0, "beam search ranks by score / ((5 + length) / 6) ** ALPHA", metavar="ALPHA")
    temperature: float | None = _option(
        None, "draw each word from softmax(logits / temperature) instead", flag=False)
    num_captions: int | None = _option(
        None, "also the beam's N best captions, best first", flag=False)
    suppress_unknown: bool = _option(False, "never write <unk>")
    no_repeat_ngram_size: int = _option(
        0, "never repeat an N-word phrase within a caption (0: allow)", metavar="N")
    min_length: int = _option(0, "write no <end> before N words (0: no minimum)", metavar="N")

    def __post_init__(self):
        checks.fill_defaults(self)
        checks.positive_int("max_length", self.max_length)
        checks.positive_int("beam_size", self.beam_size)
        checks.number("length_penalty", self.length_penalty)
        checks.positive_number("temperature", self.temperature, optional=True)
        check_num_captions(self.num_captions, self.beam_size)
        checks.boolean("suppress_unknown", self.suppress_unknown)
        checks.non_negative_int("no_repeat_ngram_size", self.no_repeat_ngram_size)
        checks.non_negative_int("min_length", self.min_length)
        if self.min_length >= self.max_length:
            raise ValueError(f"min_length must be below max_length ({self.max_length}), which "
                             f"counts <end>. Received: min_length={self.min_length!r}")
        if self.num_captions is not None and self.temperature is not None:
            raise ValueError("num_captions comes from beam search; it does not combine with "
                             "temperature sampling.")
        object.__setattr__(self, "length_penalty", float(self.length_penalty))

    @classmethod
    def field_names(cls):
        return tuple(field.name for field in dataclasses.fields(cls))

    @classmethod
    def flags(cls):
        """The fields `sat-keras` takes as flags: `dataclasses.Field`s, with their
        metadata's "help" and "metavar"."""
        return tuple(field for field in dataclasses.fields(cls) if field.metadata["flag"])

    @classmethod
    def from_config(cls, config):
        """From a dict of its fields (`to_config`); an unknown field raises ValueError."""
        if not isinstance(config, dict):
            raise TypeError(f"Expected a dict of SearchSettings fields. Received: {config!r}")
        checks.check_names("decoding settings", config, cls.field_names())
        return cls(**config)

    @classmethod
    def from_value(cls, value):
        """None (the defaults), a `SearchSettings`, or a dict of its fields."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            return cls.from_config(value)
        raise TypeError(f"Expected SearchSettings, a dict of its fields or None. "
                        f"Received: {value!r}")

    def to_config(self):
        """Every field, as a JSON-ready dict."""
        return dataclasses.asdict(self)

    def replace(self, **changes):
        """These settings with `changes` merged in: a None value is not given (the field
        keeps its value); an unknown field raises ValueError naming the known ones."""
        checks.check_names("decoding settings", changes, self.field_names())
        changes = checks.given(changes)
        return dataclasses.replace(self, **changes) if changes else self

    def one_caption_each(self):
        """These settings without `num_captions`: the best caption, which the n best
        begin with, for doors that write one caption per image."""
        return dataclasses.replace(self, num_captions=None)

    def describe(self):
        """"beam 5, length penalty 1, <unk> suppressed": what a report names."""
        if self.temperature is not None:
            words = [f"sampled at temperature {self.temperature:g}"]
        else:
            words = [f"beam {self.beam_size}"]
            if self.length_penalty:
                words.append(f"length penalty {self.length_penalty:g}")
        if self.suppress_unknown:
            words.append("<unk> suppressed")
        if self.no_repeat_ngram_size:
            words.append(f"no repeated {self.no_repeat_ngram_size}-grams")
        if self.min_length:
            words.append(f"at least {self.min_length} words")
        return ", ".join(words)

    def as_kwargs(self):
        """Deprecated: pass the object (`search=settings`) or read `to_config()`."""
        warnings.warn("SearchSettings.as_kwargs is deprecated: pass the settings object "
                      "(caption(..., search=settings)) or read settings.to_config().",
                      DeprecationWarning, stacklevel=2)
        return self.to_config()


def search(step, initial_state, memory, num_locations, settings=None, seed=None):
    """The search that `settings` (a `SearchSettings`; None: its defaults) choose.

    `temperature` set: `sample_search` (drawing with `seed`); otherwise
    `greedy_search` for beam size 1 and one caption each, `beam_search`
    for the rest. The step is first wrapped in the constraints the settings
    ask for: `suppress_tokens` for `suppress_unknown`,
    `block_repeated_ngrams` for `no_repeat_ngram_size`,
    `require_min_length` for `min_length`. Returns that search's dict.
    """
    settings = SearchSettings.from_value(settings)
    if settings.suppress_unknown:
        step = suppress_tokens(step, [UNK_ID])
    if settings.no_repeat_ngram_size:
        step, initial_state = block_repeated_ngrams(step, initial_state, memory,
                                                    settings.no_repeat_ngram_size,
                                                    settings.max_length)
    if settings.min_length:
        step, initial_state = require_min_length(step, initial_state, memory,
                                                 settings.min_length)
    common = dict(num_locations=num_locations, max_length=settings.max_length)
    if settings.temperature is not None:
        return sample_search(step, initial_state, memory, temperature=settings.temperature,
                             seed=seed, **common)
    if settings.beam_size == 1 and settings.num_captions is None:
        return greedy_search(step, initial_state, memory, **common)
    return beam_search(step, initial_state, memory, beam_size=settings.beam_size,
                       length_penalty=settings.length_penalty,
                       num_captions=settings.num_captions, **common)
