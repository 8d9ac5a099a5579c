"""The settings of a training run, as small frozen objects.

`recipes.train_recipe` takes a preset (`models.presets`: the model, its
encoder and a "training" dict) plus three of these, and `fit.train` the two
it needs:

- `DataSettings`: which data (dataset, folder, captions file, cached features);
- `TrainingSettings`: how the model learns (the preset's "training" dict as
  an object: batch, learning rate, epochs, epoch selection, fine-tuning);
- `RunSettings`: where and how the run goes (run directory, seed, strategy,
  precision, backups, time budget, output).

Each checks every field when it is built (a wrong type or value raises
`ValueError` naming it), so a bad setting fails before any data is read or
any step trained; None means "not given" (the field's default). Changing
one setting is `dataclasses.replace(settings, epochs=3)`; a preset's
values change through overrides (`presets.preset_settings(name, overrides)`,
`sat-keras train --set training.epochs=3`).
"""

import dataclasses
from typing import Any
from typing import Callable

import tensorflow as tf

from sat_keras import checks
from sat_keras.data.datasets import dataset_names
from sat_keras.decoding import SearchSettings

DEFAULT_ENCODER_MULTIPLIER = 0.1
MISSING_IMAGES = ("error", "skip")
MIXED_PRECISION = ("mixed_float16", "mixed_bfloat16")
VERBOSITY = ("auto", 0, 1, 2)


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

    def __post_init__(self):
        checks.fill_defaults(self)
        checks.one_of("dataset", self.dataset, dataset_names())
        checks.text("data_dir", self.data_dir)
        checks.text("captions_file", self.captions_file, optional=True)
        checks.one_of("missing", self.missing, MISSING_IMAGES)
        checks.text("features_dir", self.features_dir, optional=True)

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
        search: the decoding chosen on dev, a `decoding.SearchSettings` (or
            a dict of its fields, checked and turned into one), which the
            trained model is saved with as its own (None: the model's
            default, greedy).
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
    search: SearchSettings | None = None
    clip_norm: float | None = None
    fine_tune_layers: int | None = None
    fine_tune_from: str | None = None
    batch_by_image: bool = False
    encoder_lr_multiplier: float | None = None
    encoder_weights: str | None = None
    jit_compile: bool = False
    init_from: str | None = None

    def __post_init__(self):
        checks.fill_defaults(self)
        for name in ("batch_size", "epochs", "max_length", "min_count"):
            checks.positive_int(name, getattr(self, name))
        for name in ("image_size", "max_vocabulary_size", "num_images", "validation_images",
                     "fine_tune_layers"):
            checks.positive_int(name, getattr(self, name), optional=True)
        checks.positive_number("learning_rate", self.learning_rate)
        checks.non_negative_int("patience", self.patience, optional=True)
        checks.number("select_from", self.select_from, low=0.0, high=1.0)
        if self.search is not None:
            object.__setattr__(self, "search", _search_settings(self.search))
        checks.positive_number("clip_norm", self.clip_norm, optional=True)
        checks.text("fine_tune_from", self.fine_tune_from, optional=True)
        checks.boolean("batch_by_image", self.batch_by_image)
        checks.positive_number("encoder_lr_multiplier", self.encoder_lr_multiplier,
                               optional=True)
        checks.text("encoder_weights", self.encoder_weights, optional=True)
        checks.boolean("jit_compile", self.jit_compile)
        checks.text("init_from", self.init_from, optional=True)
        if self.encoder_lr_multiplier is not None and not self.fine_tunes:
            raise ValueError("encoder_lr_multiplier (--encoder-lr-multiplier) applies only "
                             "when fine-tuning: set fine_tune_layers (--fine-tune-layers N) "
                             "or fine_tune_from (--fine-tune-from LAYER).")

    @classmethod
    def from_dict(cls, values):
        """From a preset's "training" dict; an unknown name is an error, not ignored."""
        checks.check_names("training settings", values,
                           [field.name for field in dataclasses.fields(cls)])
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
        checks.fill_defaults(self)
        checks.text("output_dir", self.output_dir, optional=True)
        checks.non_negative_int("seed", self.seed)
        if self.strategy is not None and not isinstance(self.strategy, tf.distribute.Strategy):
            raise ValueError("strategy must be a tf.distribute.Strategy or None (see "
                             f"distribute.make_strategy). Received: strategy={self.strategy!r}")
        checks.one_of("mixed_precision", self.mixed_precision, MIXED_PRECISION, optional=True)
        checks.positive_int("backup_every_steps", self.backup_every_steps)
        checks.positive_number("max_minutes", self.max_minutes, optional=True)
        checks.boolean("keep_epoch_weights", self.keep_epoch_weights)
        checks.boolean("terminate_on_nan", self.terminate_on_nan)
        if self.verbose not in VERBOSITY or isinstance(self.verbose, bool):
            raise ValueError(f"verbose must be one of {list(VERBOSITY)}. "
                             f"Received: verbose={self.verbose!r}")
        if not callable(self.print_fn):
            raise ValueError(f"print_fn must be callable. Received: print_fn={self.print_fn!r}")


def _search_settings(value):
    """A `SearchSettings` from one or a dict of its fields; anything else is refused."""
    if not isinstance(value, (SearchSettings, dict)):
        raise ValueError(f"search must be a SearchSettings, a dict of its fields or None. "
                         f"Received: search={value!r}")
    try:
        return SearchSettings.from_value(value)
    except ValueError as error:
        raise ValueError(f"search: {error}") from None
