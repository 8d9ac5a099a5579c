"""What the benchmarks measure the machine by: its fp32 matmul rate and peak memory."""

import resource
import time

import tensorflow as tf


def matmul_gflops(size=2048, repeats=10, trials=3):
    """Best-of-`trials` fp32 GFLOP/s of size x size matmuls (2 size^3 FLOPs each)."""
    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size), stddev=size ** -0.5)

    @tf.function
    def chain(a, b):
        for _ in range(repeats):  # a chain, so no product can be computed once and reused
            a = tf.matmul(a, b)
        return a

    chain(a, b).numpy()  # warm-up
    best = float("inf")
    for _ in range(trials):
        started = time.perf_counter()
        chain(a, b).numpy()
        best = min(best, time.perf_counter() - started)
    return 2 * size ** 3 * repeats / best / 1e9


def peak_rss_mib():
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def describe_machine():
    import os
    import platform

    return f"{platform.machine()}, {os.cpu_count()} cores, TensorFlow {tf.__version__}"
