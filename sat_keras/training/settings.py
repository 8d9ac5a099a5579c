"""The settings of a training run, as small frozen objects.

`recipes.train_recipe` takes a preset (`models.presets`: the model, its
encoder and a "training" dict) plus three of these, and `fit.train` the two
it needs:

- `DataSettings`: which data (dataset, folder, captions file, cached features);
- `TrainingSettings`: how the model learns (the preset's "training" dict as
  an object: batch, learning rate, epochs, epoch selection, fine-tuning);
- `RunSettings`: where and how the run goes (run directory, seed, strategy,
  precision, backups, time budget, output).

Changing one setting is `dataclasses.replace(settings, epochs=3)`; a preset's
values change through overrides (`presets.preset_settings(name, overrides)`,
`sat-keras train --set training.epochs=3`).
"""

import dataclasses
from typing import Any
from typing import Callable

DEFAULT_ENCODER_MULTIPLIER = 0.1


@dataclasses.dataclass(frozen=True)
class DataSettings:
    """Which data a run trains on (see `data.datasets.read_dataset`).

    Attributes:
        dataset: a `data.datasets.dataset_names()` name; "synthetic" is
            generated in `data_dir` if missing.
        data_dir: the dataset's folder.
        captions_file: karpathy / coco / csv: the captions file.
        missing: listed images missing on disk: "error" or "skip".
        features_dir: cached features of the encoder (`extract-features`);
            without it images go through the encoder at every step.
    """

    dataset: str
    data_dir: str
    captions_file: str | None = None
    missing: str = "error"
    features_dir: str | None = None

    @property
    def synthetic(self):
        return self.dataset == "synthetic"


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """How a model learns: a preset's "training" dict, checked, as an object.

    Attributes:
        batch_size: the global batch (split over replicas).
        learning_rate: Adam's peak rate; cross-entropy follows a cosine decay.
        epochs: planned epochs (the schedule's length).
        max_length: longest caption trained on, in words.
        image_size: side in pixels images are resized to for the encoder
            (None: the model trains on cached features only).
        min_count, max_vocabulary_size: the vocabulary: words seen at least
            `min_count` times in training captions, at most this many.
        num_images: synthetic data only: images to generate.
        validation_images: val images whose greedy captions are scored
            every epoch (None: all).
        patience: epochs without a better val BLEU-4 before stopping, the
            best epoch kept (None: no selection, the last epoch is kept).
        select_from: with a patience, compare epochs only from this fraction
            of the schedule on (`recipes.epoch_selection`).
        search: the decoding chosen on dev (`decoding.SearchSettings`
            arguments), saved with the model as its default.
        clip_norm: clip each gradient to this norm.
        fine_tune_layers: fine-tune the encoder's top N weighted layers
            (needs images, not cached features).
        fine_tune_from: a layer of the pretrained encoder (its
            `cache_layer`), e.g. "conv4_block6_out": the layers above it are
            fine-tuned (the top `fine_tune_layers` of them if that is set
            too), from features cached at it (`features_dir`) or from images.
        batch_by_image: batches of whole images with all their captions
            (`data.pipeline.make_image_group_dataset`), so that a trained
            encoder runs once per image, not once per caption (False:
            captions bucketed by length). On one replica only.
        encoder_lr_multiplier: when fine-tuning, the encoder's learning
            rate relative to the decoder's (None: 0.1).
        encoder_weights: a pretrained encoder's weights: "imagenet" (what
            None gives; downloads), "none" (random), or a weights file.
        jit_compile: XLA-compile the training step (off: it did not pay on
            a 2-core CPU, `benchmarks/train_step_xla.py`).
        init_from: a trained model's handle (`Captioner.from_preset`) whose
            decoder weights this run starts from (`training.warm_start`),
            e.g. a soft model for hard attention (None: a fresh decoder).
    """

    batch_size: int
    learning_rate: float
    epochs: int
    max_length: int
    image_size: int | None = None
    min_count: int = 1
    max_vocabulary_size: int | None = None
    num_images: int | None = None
    validation_images: int | None = None
    patience: int | None = None
    select_from: float = 0.0
    search: dict | None = None
    clip_norm: float | None = None
    fine_tune_layers: int | None = None
    fine_tune_from: str | None = None
    batch_by_image: bool = False
    encoder_lr_multiplier: float | None = None
    encoder_weights: str | None = None
    jit_compile: bool = False
    init_from: str | None = None

    def __post_init__(self):
        for name in ("batch_size", "epochs", "max_length", "min_count"):
            _check_positive_int(name, getattr(self, name))
        for name in ("image_size", "max_vocabulary_size", "num_images", "validation_images",
                     "fine_tune_layers"):
            if getattr(self, name) is not None:
                _check_positive_int(name, getattr(self, name))
        if self.patience is not None and (not isinstance(self.patience, int)
                                          or self.patience < 0):
            raise ValueError(f"patience must be a non-negative integer or None. "
                             f"Received: patience={self.patience!r}")
        if not 0.0 <= self.select_from < 1.0:
            raise ValueError(f"select_from must be at least 0 and below 1. "
                             f"Received: select_from={self.select_from!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive. "
                             f"Received: learning_rate={self.learning_rate!r}")
        if self.encoder_lr_multiplier is not None and not self.fine_tunes:
            raise ValueError("encoder_lr_multiplier (--encoder-lr-multiplier) applies only "
                             "when fine-tuning: set fine_tune_layers (--fine-tune-layers N) "
                             "or fine_tune_from (--fine-tune-from LAYER).")

    @classmethod
    def from_dict(cls, values):
        """From a preset's "training" dict; an unknown name is an error, not ignored."""
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"Unknown training settings {unknown}. Known: {sorted(names)}")
        return cls(**values)

    def as_dict(self):
        return dataclasses.asdict(self)

    @property
    def fine_tunes(self):
        """Whether the encoder (some of its layers) trains."""
        return bool(self.fine_tune_layers or self.fine_tune_from)

    @property
    def encoder_multiplier(self):
        """The encoder's learning-rate multiplier when fine-tuning, else None (one rate)."""
        if not self.fine_tunes:
            return None
        if self.encoder_lr_multiplier is None:
            return DEFAULT_ENCODER_MULTIPLIER
        return self.encoder_lr_multiplier


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Where and how a run goes.

    Attributes:
        output_dir: the run directory (`training.runs`): the model, config,
            metrics, TensorBoard logs and, while training, a backup from
            which a killed run resumes when started again. None: `fit.train`
            keeps nothing (the recipe needs one).
        seed: seeds data generation, shuffling and weight initialisation.
        strategy: a `tf.distribute` strategy (None: the current one).
        mixed_precision: "mixed_float16" or "mixed_bfloat16" (the global
            Keras policy: layers compute in 16 bits, weights and loss in 32).
        backup_every_steps: back up every this many optimizer steps.
        max_minutes: wall-clock budget for all the run's stages.
        keep_epoch_weights: also save every cross-entropy epoch's weights
            as RUN/epochs/epoch_NN.weights.h5 (for `training.averaging`).
        terminate_on_nan: stop at the first NaN or infinite loss and raise
            `FloatingPointError`.
        verbose: Keras `fit` verbosity (progress bars by default).
        print_fn: where the report lines go.
    """

    output_dir: str | None = None
    seed: int = 0
    strategy: Any = None
    mixed_precision: str | None = None
    backup_every_steps: int = 100
    max_minutes: float | None = None
    keep_epoch_weights: bool = False
    terminate_on_nan: bool = True
    verbose: Any = "auto"
    print_fn: Callable = print

    def __post_init__(self):
        _check_positive_int("backup_every_steps", self.backup_every_steps)
        if self.mixed_precision not in (None, "mixed_float16", "mixed_bfloat16"):
            raise ValueError(f"mixed_precision must be None, 'mixed_float16' or "
                             f"'mixed_bfloat16'. Received: {self.mixed_precision!r}")


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
