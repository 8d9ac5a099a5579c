"""Images/s of feature extraction with the MobileNet encoder on real JPEGs.

    python benchmarks/extract.py [--data-dir ../shared/data/flickr8k] [--images 512]
        [--batch-size 32] [--weights ../shared/weights/mobilenet_1_0_224_imagenet_no_top.weights.h5]

Runs `data.features.extract_features` (read, decode, resize, MobileNet to
conv_pw_11: 14 x 14 x 512, float16 TFRecord shards) over the first --images
photos of the Flickr8k folder into a temporary folder, after a warm-up
batch, and prints images/s with the matmul rate measured in this process.
"""

import argparse
import glob
import os
import tempfile
import time

from machine import matmul_gflops

from sat_keras.data.features import extract_features
from sat_keras.encoders import build_encoder

SHARED = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", "..", "shared"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.path.join(SHARED, "data", "flickr8k"))
    parser.add_argument("--weights", default=os.path.join(
        SHARED, "weights", "mobilenet_1_0_224_imagenet_no_top.weights.h5"))
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    paths = sorted(glob.glob(os.path.join(args.data_dir, "**", "*.jpg"), recursive=True))
    if len(paths) < args.images:
        raise SystemExit(f"{args.data_dir} holds {len(paths)} JPEGs; {args.images} wanted")
    paths = paths[: args.images]
    matmul = matmul_gflops()
    encoder = build_encoder("mobilenet", weights=args.weights)
    with tempfile.TemporaryDirectory() as folder:
        extract_features(paths[: args.batch_size], encoder, os.path.join(folder, "warm"),
                         image_size=encoder.image_size, batch_size=args.batch_size,
                         verbose=0, print_fn=lambda *a: None)
        started = time.perf_counter()
        result = extract_features(paths, encoder, os.path.join(folder, "timed"),
                                  image_size=encoder.image_size, batch_size=args.batch_size,
                                  verbose=0, print_fn=lambda *a: None)
        seconds = time.perf_counter() - started
    print(f"fp32 matmul 2048x2048: {matmul:.1f} GFLOP/s")
    print(f"MobileNet (conv_pw_11, {tuple(result['shape'])}), batch {args.batch_size}: "
          f"{result['count']} real JPEGs in {seconds:.1f} s = "
          f"{result['count'] / seconds:.1f} images/s (read, decode, resize, encode, write)")


if __name__ == "__main__":
    main()
