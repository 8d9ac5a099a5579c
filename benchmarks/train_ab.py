"""Training step time of two git revisions, interleaved in one process.

    python benchmarks/train_ab.py REVISION_A REVISION_B [--rounds 12] [--steps 6]

On a shared machine the speed drifts by 10-40% from minute to minute, so two
runs of `train_throughput.py` minutes apart cannot tell a 5% change from
noise. This script copies the `sat_keras` package of each revision (`git
show`, from the repository this script is in) under another name, builds the
benchmark-size model of `train_throughput.py` from each, and then times
`--steps` training steps of each in turn, `--rounds` times, alternating which
goes first, on the same batches, held in memory (`train_on_batch`: a new
input pipeline per round would add its start-up to the time). Prints each
revision's median ms/step and the median over rounds of B's time divided by
A's in the same round.
"""

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import train_throughput

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def package_copy(revision, name, folder):
    """Writes `sat_keras` at `revision` to folder/name, its imports renamed."""
    files = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", revision, "sat_keras"], cwd=REPOSITORY,
        check=True, capture_output=True, text=True).stdout.split()
    for path in files:
        if not path.endswith(".py"):
            continue
        source = subprocess.run(["git", "show", f"{revision}:{path}"], cwd=REPOSITORY,
                                check=True, capture_output=True, text=True).stdout
        target = os.path.join(folder, name + path[len("sat_keras"):])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as file:
            file.write(source.replace("sat_keras", name))


def build(package):
    """The benchmark-size model from `package`, traced for every bucket."""
    model = train_throughput.benchmark_model(package.ShowAttendTell, package.Vocabulary)
    for inputs, targets in train_throughput.caption_batches(64).take(24):
        model.train_on_batch(inputs, targets)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revisions", nargs=2)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="train_ab_")
    sys.path.insert(0, folder)
    names = ["revision_a", "revision_b"]
    models = {}
    for name, revision in zip(names, args.revisions):
        package_copy(revision, name, folder)
        models[name] = build(importlib.import_module(name))

    times = {name: [] for name in names}
    for round_index in range(args.rounds):
        order = names if round_index % 2 == 0 else names[::-1]
        batches = list(train_throughput.caption_batches(64, seed=100 + round_index)
                       .take(args.steps))
        for name in order:
            started = time.perf_counter()
            for inputs, targets in batches:
                models[name].train_on_batch(inputs, targets)
            times[name].append(1000 * (time.perf_counter() - started) / args.steps)
    a, b = (np.array(times[name]) for name in names)
    for revision, values in zip(args.revisions, (a, b)):
        print(f"{revision}: median {np.median(values):.0f} ms/step "
              f"(rounds: {', '.join(f'{value:.0f}' for value in values)})")
    print(f"B / A, median over rounds: {np.median(b / a):.3f} "
          f"(rounds: {np.min(b / a):.3f}-{np.max(b / a):.3f})")


if __name__ == "__main__":
    main()
