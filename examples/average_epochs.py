"""A run's model with the mean of several epochs' weights (checkpoint averaging).

    sat-keras train ... --output-dir RUN --keep-epoch-weights
    python examples/average_epochs.py --run RUN --epochs 8 9 10 --output AVERAGED
    python examples/tune_decoding.py --model AVERAGED ...   # score it on dev

Reads RUN/model.keras (the architecture, vocabulary and chosen decoding)
and RUN/epochs/epoch_NN.weights.h5, and writes AVERAGED/model.keras.
"""

import argparse

from sat_keras.models.saving import load_captioner
from sat_keras.models.saving import save_captioner
from sat_keras.training.averaging import average_weight_files
from sat_keras.training.averaging import epoch_weight_files


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True,
                        help="a run directory trained with --keep-epoch-weights")
    parser.add_argument("--epochs", type=int, nargs="+", required=True,
                        help="the epochs (1-based) whose weights to average")
    parser.add_argument("--output", required=True, help="directory for the averaged model")
    args = parser.parse_args()
    files = epoch_weight_files(args.run, args.epochs)
    model = average_weight_files(load_captioner(args.run), files)
    save_captioner(model, args.output)
    print(f"The mean of epochs {args.epochs} saved to {args.output}")


if __name__ == "__main__":
    main()
