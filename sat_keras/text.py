"""Caption normalisation and the `Vocabulary` (ids per DESIGN.md)."""

import collections
import json
import re
import unicodedata

PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
SPECIAL_TOKENS = (PAD, START, END, UNK)
PAD_ID, START_ID, END_ID, UNK_ID = 0, 1, 2, 3

# ASCII punctuation, the class RE2 calls [[:punct:]]; `data/tokenization.py`
# applies the same class in the graph so both sides tokenise alike.
PUNCTUATION_PATTERN = r"[!-/:-@\[-`{-~]"

_FORMAT = "sat_keras.vocabulary"
_FORMAT_VERSION = 1


def normalize_caption(text):
    """Lowercases, replaces ASCII punctuation by spaces and splits on spaces.

    The rule matches `sat_keras.data.tokenization.normalize` (NFKC case
    folding as in tensorflow-text's `case_fold_utf8`).

    Args:
        text: a caption (str).

    Returns:
        A list of words, possibly empty.

    Example:
    >>> normalize_caption("A dog's ball, in the PARK.")
    ['a', 'dog', 's', 'ball', 'in', 'the', 'park']
    """
    if not isinstance(text, str):
        raise TypeError(
            f"A caption must be a str. Received: {type(text).__name__} {text!r}"
        )
    folded = unicodedata.normalize("NFKC", text).casefold()
    folded = unicodedata.normalize("NFKC", folded)
    return re.sub(PUNCTUATION_PATTERN, " ", folded).split()


class Vocabulary:
    """Word <-> id mapping: `<pad>`=0, `<start>`=1, `<end>`=2, `<unk>`=3.

    Words follow by descending frequency in the training captions (ties in
    alphabetical order, so a build is deterministic).

    Args:
        tokens: every token in id order; must begin with the four special
            tokens.

    Example:
    >>> vocabulary = Vocabulary.build(["a red circle", "a blue square"])
    >>> vocabulary.encode("a red cat")
    [1, 4, 7, 3, 2]
    >>> vocabulary.decode([1, 4, 7, 2, 0])
    'a red'
    """

    def __init__(self, tokens):
        tokens = list(tokens)
        if tuple(tokens[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(
                f"A vocabulary must start with {list(SPECIAL_TOKENS)}. "
                f"Received first tokens: {tokens[:len(SPECIAL_TOKENS)]}"
            )
        duplicates = [t for t, n in collections.Counter(tokens).items() if n > 1]
        if duplicates:
            raise ValueError(
                f"Vocabulary tokens must be unique. Repeated: {duplicates[:5]}"
            )
        self.tokens = tokens
        self._ids = {token: index for index, token in enumerate(tokens)}

    @classmethod
    def build(cls, captions, min_count=1, max_size=None):
        """Builds a vocabulary from training captions.

        Args:
            captions: iterable of caption strings (training split only).
            min_count: words seen fewer times map to `<unk>`.
            max_size: cap on the total size, special tokens included.
        """
        if not isinstance(min_count, int) or min_count < 1:
            raise ValueError(
                f"min_count must be a positive integer. Received: {min_count!r}"
            )
        if max_size is not None and (
            not isinstance(max_size, int) or max_size <= len(SPECIAL_TOKENS)
        ):
            raise ValueError(
                f"max_size must be None or an integer > {len(SPECIAL_TOKENS)}. "
                f"Received: max_size={max_size!r}"
            )
        counts = collections.Counter()
        for caption in captions:
            counts.update(normalize_caption(caption))
        for special in SPECIAL_TOKENS:
            counts.pop(special, None)
        words = sorted(
            (w for w, n in counts.items() if n >= min_count),
            key=lambda w: (-counts[w], w),
        )
        if max_size is not None:
            words = words[: max_size - len(SPECIAL_TOKENS)]
        return cls(list(SPECIAL_TOKENS) + words)

    def __len__(self):
        return len(self.tokens)

    def __eq__(self, other):
        return isinstance(other, Vocabulary) and self.tokens == other.tokens

    def id_of(self, word):
        return self._ids.get(word, UNK_ID)

    def encode(self, caption, add_start=True, add_end=True):
        """Caption string -> list of ids (unknown words -> `<unk>`)."""
        ids = [self.id_of(word) for word in normalize_caption(caption)]
        return [START_ID] * add_start + ids + [END_ID] * add_end

    def decode(self, ids):
        """Ids -> caption string; stops at `<end>`, drops `<pad>`/`<start>`."""
        words = []
        for index in ids:
            index = int(index)
            if index == END_ID:
                break
            if index in (PAD_ID, START_ID):
                continue
            if not 0 <= index < len(self.tokens):
                raise ValueError(
                    f"Token id {index} is outside the vocabulary of size "
                    f"{len(self.tokens)}."
                )
            words.append(self.tokens[index])
        return " ".join(words)

    def to_json(self):
        return {"format": _FORMAT, "version": _FORMAT_VERSION, "tokens": self.tokens}

    @classmethod
    def from_json(cls, data):
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(
                f"Not a sat_keras vocabulary: expected a JSON object with "
                f'"format": "{_FORMAT}". Received keys: '
                f"{sorted(data) if isinstance(data, dict) else type(data).__name__}"
            )
        return cls(data["tokens"])

    def save(self, path):
        with open(path, "w", encoding="utf-8") as file:
            json.dump(self.to_json(), file, ensure_ascii=False, indent=0)

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as file:
            try:
                data = json.load(file)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}: not valid JSON ({error})") from error
        return cls.from_json(data)
