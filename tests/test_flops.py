"""The FLOP counter the benchmarks use (benchmarks/flops.py), checked by hand."""

import importlib.util
import pathlib
import sys

_FILE = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "flops.py"
_SPEC = importlib.util.spec_from_file_location("flops", _FILE)
flops = sys.modules.setdefault("flops", importlib.util.module_from_spec(_SPEC))
_SPEC.loader.exec_module(flops)
Sizes = flops.Sizes
decoding_flops = flops.decoding_flops
image_forward_flops = flops.image_forward_flops
training_flops = flops.training_flops
word_forward_flops = flops.word_forward_flops

BENCHMARK = Sizes(locations=196, features=512, embedding=512, units=512, attention=512,
                  vocabulary=5000)


def test_the_counts_by_hand_at_the_benchmark_size():
    # W_a a: 196 x 512 x 512 multiply-adds; h0 and c0: 2 x 512 x 512.
    assert image_forward_flops(BENCHMARK) == 2 * 196 * 512 * 512 + 2 * 2 * 512 * 512
    lstm = 2 * 1536 * 2048
    attention = 2 * 512 * 512 + 2 * 196 * 512 + 2 * 196 * 512 + 2 * 512
    output = 2 * 512 * 512 * 2 + 2 * 512 * 5000
    assert word_forward_flops(BENCHMARK) == lstm + attention + output  # 13.4 MFLOP


def test_training_is_three_forwards_per_word_and_two_per_image():
    per_image, per_word = image_forward_flops(BENCHMARK), word_forward_flops(BENCHMARK)
    assert training_flops(BENCHMARK, [10, 12]) == 2 * 2 * per_image + 3 * 22 * per_word
    assert decoding_flops(BENCHMARK, 20, 1, beam_size=3) == per_image + 3 * 20 * per_word
