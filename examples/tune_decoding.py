"""Dev scores of one model over beam sizes and length penalties, from cached features.

    python examples/tune_decoding.py --model RUN --data-dir DATA_DIR \\
        --features FEATURES --settings 1:0,3:0,5:0,3:1 --output tuning.json

Each setting is BEAM:LENGTH_PENALTY. Every row holds the caption metrics
(coco-caption PTB tokenization where Java and pycocoevalcap are installed),
how varied the captions are and how focused their attention is. Several
--model flags score their ensemble (`CaptionEnsemble`: the models' word
probabilities averaged at every step); they must share the vocabulary and
the features.

For hard-attention models, `--hard-inference` sets the context at test time
(the expected one, a sampled location or the most attended one), and
`--attention-paths K` (with "sample") decodes along K sampled location paths
at once, each with its own state, averaging their word probabilities at
every step of the beam (an ensemble of the model with itself).
"""

import argparse
import json
import time

from sat_keras import CaptionEnsemble
from sat_keras.data.features import CachedFeatures
from sat_keras.data.flickr8k import read_flickr8k
from sat_keras.data.records import select_split
from sat_keras.decoding import SearchSettings
from sat_keras.evaluation import attention_statistics
from sat_keras.evaluation import format_metrics
from sat_keras.metrics import caption_diversity
from sat_keras.metrics import caption_metrics
from sat_keras.metrics import coco_tools_available
from sat_keras.models.saving import load_captioner
from sat_keras.training.attention_gradients import reseed


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, action="append",
                        help="a run directory, .keras file or export; repeat for an ensemble")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--features", required=True, help="the model encoder's cached features")
    parser.add_argument("--split", default="val")
    parser.add_argument("--settings", default="1:0,3:0,5:0,3:1")
    parser.add_argument("--max-length", type=int, default=20)
    parser.add_argument("--suppress-unknown", action="store_true",
                        help="never write <unk> (every setting)")
    parser.add_argument("--hard-inference", choices=("expected", "sample", "argmax"),
                        default=None, help="hard attention's context at test time "
                        "(default: the model's own)")
    parser.add_argument("--attention-paths", type=int, default=1,
                        help='sampled location paths averaged per step (with "sample")')
    parser.add_argument("--seed", type=int, default=0, help="for sampled locations")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    if args.attention_paths < 1 or (args.attention_paths > 1 and args.hard_inference != "sample"):
        parser.error("--attention-paths K > 1 needs --hard-inference sample")

    models = [load_captioner(path) for path in args.model]
    if args.hard_inference:
        for loaded in models:
            if loaded.decoder.attention != "hard":
                parser.error(f"--hard-inference needs hard attention; {loaded.name} is soft")
            loaded.decoder.hard_inference = args.hard_inference
            reseed(loaded, args.seed)
    models = models * args.attention_paths  # each path its own state and samples
    model = models[0] if len(models) == 1 else CaptionEnsemble(models)
    records = select_split(read_flickr8k(args.data_dir), args.split)
    features = CachedFeatures(args.features).lookup([r.image_path for r in records]).numpy()
    tokenization = "ptb" if coco_tools_available() else "normalize"
    rows = []
    for setting in args.settings.split(","):
        beam, penalty = setting.split(":")
        started = time.perf_counter()
        search = SearchSettings(beam_size=int(beam), length_penalty=float(penalty),
                                max_length=args.max_length,
                                suppress_unknown=args.suppress_unknown)
        outputs = model.caption(features=features, search=search)
        scores = caption_metrics([r.captions for r in records], outputs["captions"],
                                 tokenization=tokenization)
        rows.append({"beam_size": int(beam), "length_penalty": float(penalty),
                     "suppress_unknown": args.suppress_unknown,
                     "hard_inference": args.hard_inference,
                     "attention_paths": args.attention_paths, **scores,
                     **caption_diversity(outputs["captions"]),
                     **attention_statistics(outputs["attention_weights"]),
                     "seconds": time.perf_counter() - started})
        print(f"beam {beam}, length penalty {penalty}: {format_metrics(scores)}", flush=True)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as file:
            json.dump({"model": args.model[0] if len(args.model) == 1 else args.model,
                       "split": args.split, "tokenization": tokenization, "rows": rows},
                      file, indent=1)


if __name__ == "__main__":
    main()
