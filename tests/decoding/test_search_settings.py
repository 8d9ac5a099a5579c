"""`SearchSettings`: one checked object, changed field by field, read whole."""

import dataclasses
import json

import pytest

from sat_keras.decoding import SearchSettings

INF = float("inf")
# Per field: (a wrong type, an out-of-range value); a boolean has no range: two wrong types.
BAD_VALUES = {
    "max_length": ("20", 0), "beam_size": (2.0, 0), "length_penalty": ("1", INF),
    "temperature": ("hot", 0.0), "num_captions": ("1", 9), "suppress_unknown": ("yes", 1),
    "no_repeat_ngram_size": (2.5, -1), "min_length": ("2", 20)}
SHIPPED = SearchSettings(beam_size=5, length_penalty=1.0, suppress_unknown=True,
                         no_repeat_ngram_size=2)


def test_the_table_of_bad_values_covers_every_field():
    assert set(BAD_VALUES) == set(SearchSettings.field_names())


@pytest.mark.parametrize("name, value", [
    pytest.param(name, value, id=f"{name}-{kind}") for name, values in BAD_VALUES.items()
    for kind, value in zip(("wrong type", "out of range"), values)])
def test_a_bad_value_is_refused_when_the_settings_are_built(name, value):
    with pytest.raises(ValueError, match=name):
        SearchSettings(**{name: value})
    with pytest.raises(ValueError, match=name):
        SHIPPED.replace(**{name: value})


def test_replace_changes_the_fields_given_and_keeps_the_rest():
    changed = SHIPPED.replace(beam_size=3, min_length=2)
    assert changed == dataclasses.replace(SHIPPED, beam_size=3, min_length=2)
    assert SHIPPED.beam_size == 5  # frozen: a new object
    assert SHIPPED.replace(beam_size=None, length_penalty=None) is SHIPPED  # None: not given
    assert SHIPPED.replace() is SHIPPED


@pytest.mark.parametrize("call", [
    lambda: SHIPPED.replace(beam=3),
    lambda: SearchSettings.from_config({"beam": 3}),
    lambda: SearchSettings.from_value({"max_len": 9, "beam_size": 2}),
])
def test_an_unknown_field_is_refused_naming_it_and_the_known_ones(call):
    with pytest.raises(ValueError) as error:
        call()
    message = str(error.value)
    assert "Unknown decoding settings" in message and "beam_size" in message
    assert all(name in message for name in SearchSettings.field_names())


def test_a_changed_value_is_checked():
    with pytest.raises(ValueError, match="beam_size must be a positive integer"):
        SHIPPED.replace(beam_size=0)
    with pytest.raises(ValueError, match=r"num_captions must be an integer from 1 to beam_size"):
        SHIPPED.replace(beam_size=2, num_captions=3)


def test_none_means_not_given_when_built():
    assert SearchSettings(max_length=None, beam_size=None, length_penalty=None,
                          suppress_unknown=None, no_repeat_ngram_size=None,
                          min_length=None) == SearchSettings()


def test_the_config_round_trips_through_json():
    config = json.loads(json.dumps(SHIPPED.replace(num_captions=3).to_config()))
    assert set(config) == set(SearchSettings.field_names())
    assert SearchSettings.from_config(config) == SHIPPED.replace(num_captions=3)
    assert SearchSettings.from_value(config) == SHIPPED.replace(num_captions=3)
    assert SearchSettings.from_value(None) == SearchSettings()
    assert SearchSettings.from_value(SHIPPED) is SHIPPED
    with pytest.raises(TypeError, match="Expected SearchSettings"):
        SearchSettings.from_value("beam 5")


def test_one_caption_each_drops_only_the_n_best():
    assert SHIPPED.replace(num_captions=3).one_caption_each() == SHIPPED


def test_equal_settings_hash_alike():
    assert len({SHIPPED, SHIPPED.replace(beam_size=5), SHIPPED.replace(beam_size=4)}) == 2


def test_describe_names_what_differs_from_plain_search():
    assert SearchSettings().describe() == "beam 1"
    assert SHIPPED.describe() == ("beam 5, length penalty 1, <unk> suppressed, "
                                  "no repeated 2-grams")
    assert SHIPPED.replace(min_length=3).describe().endswith(", at least 3 words")
    assert SearchSettings(temperature=0.7).describe() == "sampled at temperature 0.7"


def test_the_command_line_flags_are_the_fields_marked_for_it():
    names = [field.name for field in SearchSettings.flags()]
    assert names == ["max_length", "beam_size", "length_penalty", "suppress_unknown",
                     "no_repeat_ngram_size", "min_length"]
    assert all(field.metadata["help"] for field in SearchSettings.flags())


def test_as_kwargs_is_deprecated_but_still_answers():
    with pytest.warns(DeprecationWarning, match="as_kwargs is deprecated"):
        assert SHIPPED.as_kwargs() == SHIPPED.to_config()
