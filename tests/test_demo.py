import pytest

from sat_keras.decoding import SearchSettings
from sat_keras.evaluation import evaluate_records
from sat_keras.recipes import run_demo


@pytest.mark.slow
def test_demo_reaches_the_bleu_4_bar_and_beam_3_is_no_worse(tmp_path):
    lines = []
    result = run_demo(str(tmp_path), verbose=0, print_fn=lines.append)
    greedy = result["metrics"]["bleu_4"]
    assert result["split"] == "test" and greedy >= 0.80, "\n".join(lines)
    assert any("BLEU-4" in line for line in lines)
    beam, _ = evaluate_records(result["model"], result["records"],
                               SearchSettings(max_length=20, beam_size=3))
    assert beam["bleu_4"] >= greedy, (beam["bleu_4"], greedy)
