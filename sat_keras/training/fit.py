"""The fit loop: `train` compiles and fits a captioner on bucketed caption batches."""

import functools

import keras
import tensorflow as tf

from sat_keras.data.pipeline import count_batches
from sat_keras.data.pipeline import count_image_group_batches
from sat_keras.data.pipeline import make_caption_dataset
from sat_keras.data.pipeline import make_image_group_dataset
from sat_keras.data.pipeline import make_per_image_dataset
from sat_keras.distribute import is_chief
from sat_keras.distribute import shard_by_data
from sat_keras.training.backup import ResumableEarlyStopping
from sat_keras.training.backup import optimizer_step
from sat_keras.training.optimizers import FineTuningAdam
from sat_keras.training.runs import RunDirectory
from sat_keras.training.settings import RunSettings


def train(model, train_records, val_records, settings, run=None, callbacks=(), features=None,
          sample_records=(), self_critical=None):
    """Compiles (Adam with cosine decay) and fits on bucketed caption batches.

    With `features` (a `data.features.CachedFeatures`) the batches hold cached
    encoder features instead of images; the encoder is then not run, or only
    its layers above its `cache_layer`. When the encoder is fine-tuned
    (`settings.fine_tune_layers` or `fine_tune_from`) the optimizer is
    `optimizers.FineTuningAdam`, the encoder's learning rate
    `settings.encoder_multiplier` times the decoder's. With
    `settings.batch_by_image` the batches hold whole images with all their
    captions (`make_image_group_dataset`), validation's too.

    Training batches drop each bucket's partial batch (see
    `make_caption_dataset`), so that with `jit_compile=True` XLA compiles
    one program per bucket. XLA is off by default: at the "synthetic" config
    size it did not pay on a 2-core CPU (`benchmarks/train_step_xla.py`,
    batch 64, 12 tokens: 84 against 85 ms a step with images, 85 against
    28 ms from features).

    Args:
        settings: a `training.settings.TrainingSettings`: batch size (the
            global batch, split over the replicas), learning rate, epochs,
            image size, caption length, gradient clipping, fine-tuning, XLA.
        run: a `training.settings.RunSettings` (default: `RunSettings()`):
            the seed, the `tf.distribute` strategy (the model must have been
            built in its scope), verbosity, and with an `output_dir` a run
            directory (`training.runs.RunDirectory`): metrics, TensorBoard
            logs and a backup every `backup_every_steps` steps. If it holds
            a backup, training resumes from it (weights, optimizer state,
            step) and runs the planned steps that remain, on the batches
            the uninterrupted run would have seen; a
            `backup.ResumableEarlyStopping` among the callbacks keeps its
            best epoch there too.
        callbacks: Keras callbacks for `fit`.
        features: cached features (see above).
        sample_records: val records whose captions go to TensorBoard.
        self_critical: a `training.self_critical.SelfCritical` whose reward
            was built from `train_records`: the model then trains on it
            from per-image batches (`make_per_image_dataset`, partial
            batches dropped) at the constant learning rate (Rennie et al.
            and Luo keep it fixed), instead of the cross-entropy loss.
            Validation stays the teacher-forced loss on caption batches.

    Returns:
        A Keras `History` of the epochs run by this call.
    """
    run = run or RunSettings()
    strategy = run.strategy or tf.distribute.get_strategy()
    vocabulary = model.vocabulary
    batch_size, max_length, epochs = settings.batch_size, settings.max_length, settings.epochs
    batching = dict(batch_size=batch_size, image_size=settings.image_size,
                    max_length=max_length, seed=run.seed, features=features)

    def train_batches(first_epoch, skip=0):
        """Epochs first_epoch, ... of training batches, the first `skip` left out."""
        if self_critical is not None:
            batches = make_per_image_dataset(
                train_records, batch_size=batch_size, image_size=settings.image_size,
                seed=run.seed, drop_remainder=True, features=features, from_epoch=first_epoch)
        else:
            batches = caption_batches(train_records, vocabulary, shuffle=True,
                                      drop_remainder=True, from_epoch=first_epoch, **batching)
        return shard_by_data(batches.skip(skip))

    if settings.batch_by_image and strategy.num_replicas_in_sync > 1:
        # Each replica's share of a batch would split its images and captions apart.
        raise ValueError("batch_by_image (--batch-by-image) trains on one replica; this "
                         f"strategy has {strategy.num_replicas_in_sync} in sync.")
    caption_batches, count = ((make_image_group_dataset, count_image_group_batches)
                              if settings.batch_by_image else
                              (make_caption_dataset, functools.partial(
                                  count_batches, max_length=max_length)))
    val_batches = shard_by_data(caption_batches(val_records, vocabulary, shuffle=False,
                                                **batching))
    if self_critical is not None:
        if hasattr(self_critical.reward, "__len__") and len(
                self_critical.reward) != len(train_records):
            raise ValueError(f"The reward holds the references of {len(self_critical.reward)} "
                             f"images; the training split has {len(train_records)}: build it "
                             "from the training records.")
        steps_per_epoch = len(train_records) // batch_size
        schedule = settings.learning_rate
    else:
        steps_per_epoch = count(train_records, batch_size, drop_remainder=True)
        schedule = keras.optimizers.schedules.CosineDecay(
            settings.learning_rate, max(epochs * steps_per_epoch, 1), alpha=0.05)
    if steps_per_epoch == 0:
        unit = "images" if self_critical is not None else "captions"
        raise ValueError(
            f"The training split yields no full batch of {batch_size} {unit}. "
            f"Use a smaller batch size or more data."
        )
    nan_guard = _StopOnNaN() if run.terminate_on_nan else None
    callbacks = ([nan_guard] if nan_guard else []) + list(callbacks)
    directory = (RunDirectory(run.output_dir, write=is_chief(strategy)) if run.output_dir
                 else None)
    if directory:
        directory.check_vocabulary(vocabulary)
        callbacks += directory.callbacks(run.backup_every_steps, sample_records, max_length,
                                         features)
    with strategy.scope():
        if not model.built:
            model.build({"features": (None,) + tuple(features.shape)} if features is not None
                        else {"images": (None, settings.image_size, settings.image_size, 3)})
        multiplier = settings.encoder_multiplier
        optimizer = (keras.optimizers.Adam(schedule, clipnorm=settings.clip_norm)
                     if multiplier is None else
                     FineTuningAdam(schedule, encoder_multiplier=multiplier,
                                    clipnorm=settings.clip_norm))
        model.compile(optimizer=optimizer, jit_compile=settings.jit_compile,
                      self_critical=self_critical)
        model.optimizer.build(model.trainable_variables)  # a LossScaleOptimizer under mixed_float16
        done = directory.restore(model) if directory else 0
    for callback in callbacks:
        if directory and isinstance(callback, ResumableEarlyStopping):
            callback.keep_in(directory.backup_dir, epochs, resume=bool(done),
                             write=directory.write)
    total_steps = epochs * steps_per_epoch
    if done:
        run.print_fn(f"Resumed from the backup in {directory.backup_dir} at step {done} of "
                     f"{total_steps} (epoch {done // steps_per_epoch + 1}, "
                     f"step {done % steps_per_epoch} of {steps_per_epoch})")
    fit = functools.partial(
        model.fit, validation_data=val_batches,
        validation_steps=count(val_records, batch_size),
        callbacks=callbacks, verbose=run.verbose,
        shuffle=False)  # each epoch's batches are shuffled by (seed, epoch)
    epoch, offset = divmod(done, steps_per_epoch)
    histories = []
    if offset:  # the interrupted epoch's remaining steps, on the batches it would have seen
        histories.append(fit(train_batches(epoch, skip=offset),
                             steps_per_epoch=steps_per_epoch - offset, initial_epoch=epoch,
                             epochs=epoch + 1))
        epoch += 1
    if epoch < epochs and not (histories and model.stop_training):
        histories.append(fit(train_batches(epoch), steps_per_epoch=steps_per_epoch,
                             initial_epoch=epoch, epochs=epochs))
    if nan_guard and nan_guard.step is not None:
        kept = f"; the last backup is kept in {directory.backup_dir}" if directory else ""
        raise FloatingPointError(
            f"The loss became NaN or infinite at step {nan_guard.step}, so training stopped"
            f"{kept}. Lower the learning rate or clip gradients (clip_norm, --clip-norm).")
    if directory:
        directory.finish()  # the run ended by its own rules; a rerun starts afresh
    return _merged_history(histories)


class _StopOnNaN(keras.callbacks.TerminateOnNaN):
    """TerminateOnNaN that remembers the optimizer step it stopped at."""

    step = None

    def on_batch_end(self, batch, logs=None):
        super().on_batch_end(batch, logs)
        if self.model.stop_training and self.step is None:
            self.step = optimizer_step(self.model)


def _merged_history(histories):
    merged = keras.callbacks.History()
    merged.history, merged.epoch = {}, []
    for history in histories:
        merged.epoch.extend(history.epoch)
        for name, values in history.history.items():
            merged.history.setdefault(name, []).extend(values)
    return merged
