"""Attention pictures as in the paper's figures: the image, then one panel per word."""

import math

import numpy as np


def grid_shape(num_locations):
    """(rows, columns) of a square attention grid; an error if L is not square."""
    side = math.isqrt(num_locations)
    if side * side != num_locations:
        raise ValueError(
            f"Cannot lay {num_locations} attention locations on a square grid; "
            f"pass grid=(rows, columns) explicitly."
        )
    return side, side


def plot_attention(image, words, attention_weights, output_path, grid=None, columns=5,
                   opacity=0.6):
    """Writes a PNG: the image, then each word over its attention map.

    Each map (rows x columns grid cells) is stretched over the image with
    bilinear interpolation, as the paper's figures upsample the 14x14 grid.

    Args:
        image: uint8 (H, W, 3), the image as the encoder saw it.
        words: the generated words (no `<end>`), one panel each.
        attention_weights: (>= len(words), L), alpha_t of the word at step t.
        output_path: the PNG file to write.
        grid: (rows, columns) of the attention grid; by default sqrt(L) square.
        columns: panels per row of the figure.
        opacity: opacity of the attention overlay.

    Returns:
        output_path.
    """
    from matplotlib.figure import Figure  # slow to import; only pictures need it

    attention_weights = np.asarray(attention_weights, "float32")
    if attention_weights.ndim != 2 or attention_weights.shape[0] < len(words):
        raise ValueError(
            f"attention_weights must be (steps >= {len(words)} words, locations). "
            f"Received shape {attention_weights.shape}"
        )
    rows, grid_columns = grid or grid_shape(attention_weights.shape[1])
    height, width = np.asarray(image).shape[:2]
    panels = len(words) + 1
    figure_rows = math.ceil(panels / columns)
    figure = Figure(figsize=(2.2 * min(panels, columns), 2.4 * figure_rows))
    for index in range(panels):
        axes = figure.add_subplot(figure_rows, min(panels, columns), index + 1)
        axes.imshow(image)
        axes.set_axis_off()
        if index == 0:
            axes.set_title("image", fontsize=9)
            continue
        attention_map = attention_weights[index - 1].reshape(rows, grid_columns)
        axes.imshow(attention_map, cmap="gray", alpha=opacity, interpolation="bilinear",
                    extent=(0, width, height, 0))
        axes.set_title(words[index - 1], fontsize=9)
    figure.tight_layout()
    figure.savefig(output_path, format="png", dpi=80)
    return output_path
