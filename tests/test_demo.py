import pytest

from sat_keras.demo import run_demo


@pytest.mark.slow
def test_demo_reaches_the_bleu_4_bar(tmp_path):
    lines = []
    result = run_demo(str(tmp_path), verbose=0, print_fn=lines.append)
    assert result["bleu_4"] >= 0.80, "\n".join(lines)
    assert any("BLEU-4" in line for line in lines)
