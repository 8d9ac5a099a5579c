"""TensorFlow error messages, readable."""

import re

_NOISE = re.compile(r"^(Graph execution error:|Detected at node|<stack traces unavailable>|"
                    r"\s*\[\[\{\{|\s*File |\s*$)")


def op_error_text(error):
    """An op error's own message, without graph-execution preamble and decorations.

    `assertion failed: [text]` becomes `text`.
    """
    lines = (getattr(error, "message", None) or str(error)).strip().splitlines()
    text = next((line for line in lines if not _NOISE.match(line)), lines[0] if lines else "")
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", text)
    text = re.sub(r"\s*\[Op:.*$", "", text).strip()
    match = re.fullmatch(r"assertion failed: \[(.*)\]", text)
    return match.group(1) if match else text
