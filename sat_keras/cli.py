"""`sat-keras`: command-line flags mapped onto the library's functions."""

import argparse
import json
import sys

from sat_keras.data.datasets import dataset_names
from sat_keras.data.datasets import read_dataset
from sat_keras.data.download import download_flickr8k
from sat_keras.data.features import extract_features
from sat_keras.decoding import SearchSettings
from sat_keras.distribute import STRATEGIES
from sat_keras.distribute import make_strategy
from sat_keras.encoders import build_encoder
from sat_keras.encoders import encoder_names
from sat_keras.encoders import weights_argument
from sat_keras.evaluation import evaluate
from sat_keras.export import export_captioner
from sat_keras.export.image_checks import ImageLimits
from sat_keras.inference import caption_image_files
from sat_keras.inference import plot_file_captions
from sat_keras.models.caption_ensemble import CaptionEnsemble
from sat_keras.models.presets import preset_names
from sat_keras.models.presets import preset_settings
from sat_keras.models.saving import load_captioner
from sat_keras.recipes import default_preset
from sat_keras.recipes import run_demo
from sat_keras.recipes import train_recipe
from sat_keras.serving.http_service import HTTPLimits
from sat_keras.serving.server import serve
from sat_keras.training.self_critical import BASELINES
from sat_keras.training.self_critical import SelfCriticalSettings
from sat_keras.training.settings import DataSettings
from sat_keras.training.settings import RunSettings

DEFAULT_MODEL = "flickr8k"  # the trained captioner that ships (models.preset_loaders)


def _demo(args):
    result = run_demo(output_dir=args.output_dir, epochs=args.epochs,
                      num_images=args.num_images, seed=args.seed)
    if args.export:
        path = export_captioner(result["model"], args.export, num_captions=args.num_captions)
        print(f"SavedModel written to {path}")
    return 0


def _download(args):
    """Fetches the dataset first when --download asks for it (Flickr8k only)."""
    if not args.download:
        return
    if args.dataset != "flickr8k":
        raise ValueError(f"--download fetches Flickr8k only; --dataset is {args.dataset}.")
    download_flickr8k(args.data_dir)


# Flags that set one value of the preset (`recipes.train_recipe` overrides): the
# flag's dest -> its path. `--set PATH=VALUE` reaches every other value.
_PRESET_FLAGS = {
    "epochs": "training.epochs", "batch_size": "training.batch_size",
    "learning_rate": "training.learning_rate", "patience": "training.patience",
    "select_from": "training.select_from", "num_images": "training.num_images",
    "clip_norm": "training.clip_norm", "fine_tune_layers": "training.fine_tune_layers",
    "fine_tune_from": "training.fine_tune_from", "batch_by_image": "training.batch_by_image",
    "encoder_lr_multiplier": "training.encoder_lr_multiplier",
    "encoder_weights": "training.encoder_weights", "encoder": "encoder.name",
    "doubly_stochastic_weight": "model.doubly_stochastic_weight",
    "label_smoothing": "model.label_smoothing", "units": "model.decoder.units",
    "annotation_dropout": "model.decoder.annotation_dropout",
    "embedding_dropout": "model.decoder.embedding_dropout",
    "annotation_projection": "model.decoder.annotation_projection",
    "init_from": "training.init_from",
}
_SECTIONS = ("model", "encoder", "training")


def preset_overrides(args):
    """The preset overrides of `sat-keras train`: its value flags, then each `--set`."""
    pairs = [(path, getattr(args, dest)) for dest, path in _PRESET_FLAGS.items()
             if getattr(args, dest) is not None]
    pairs += [parse_setting(text) for text in args.set or ()]
    overrides = {}
    for path, value in pairs:
        *parents, name = path.split(".")
        node = overrides
        for parent in parents:
            node = node.setdefault(parent, {})
        node[name] = value
    return overrides


def parse_setting(text):
    """`--set PATH=VALUE` as (full path, value). PATH is a path in the model's config
    (`decoder.units`, `label_smoothing`) or starts with a preset section
    (`training.epochs`, `encoder.name`, `model.decoder.units`); VALUE is JSON
    (`768`, `0.1`, `true`, `[8, 16]`) or else a string (`hard`). `null` is
    refused: None means "not given", so it would change nothing."""
    path, separator, value = text.partition("=")
    if not separator or not path or any(not part for part in path.split(".")):
        raise ValueError(f"--set takes PATH=VALUE, e.g. --set decoder.units=768. "
                         f"Received: {text!r}")
    if path.split(".")[0] not in _SECTIONS:
        path = "model." + path
    try:
        value = json.loads(value)
    except json.JSONDecodeError:
        return path, value
    if value is None:
        raise ValueError(f"--set {text}: null means not given, so it would change nothing; "
                         "leave the setting out to keep the preset's value.")
    return path, value


def _train(args):
    if args.preset and args.attention:
        raise ValueError("--attention picks the default preset's twin; with --preset, name "
                         f"the twin itself (e.g. {args.preset.removesuffix('_hard')}_hard).")
    self_critical = _self_critical_settings(args)
    _download(args)
    data = DataSettings(args.dataset, args.data_dir, captions_file=args.captions_file,
                        missing=args.missing, features_dir=args.features)
    run = RunSettings(args.output_dir, seed=args.seed,
                      strategy=make_strategy(args.strategy, tpu=args.tpu),
                      mixed_precision=args.mixed_precision,
                      backup_every_steps=args.backup_every, max_minutes=args.max_minutes,
                      keep_epoch_weights=args.keep_epoch_weights)
    train_recipe(data, run,
                 preset=args.preset or default_preset(args.dataset, args.attention or "soft"),
                 overrides=preset_overrides(args), self_critical=self_critical)
    return 0


def _self_critical_settings(args):
    """The --scst-* flags as `SelfCriticalSettings`, or None without --scst-epochs."""
    given = [flag for flag, value in (("--scst-learning-rate", args.scst_learning_rate),
                                      ("--scst-samples", args.scst_samples),
                                      ("--scst-baseline", args.scst_baseline),
                                      ("--[no-]scst-score-end", args.scst_score_end),
                                      ("--scst-dropout", args.scst_dropout))
             if value is not None]
    if args.scst_epochs is None:
        if given:
            raise ValueError(f"{', '.join(given)} apply to the self-critical stage: "
                             "add --scst-epochs N.")
        return None
    chosen = {"learning_rate": args.scst_learning_rate, "num_samples": args.scst_samples,
              "baseline": args.scst_baseline, "score_end": args.scst_score_end,
              "dropout": args.scst_dropout}
    return SelfCriticalSettings(args.scst_epochs,
                                **{k: v for k, v in chosen.items() if v is not None})


def _caption(args):
    model = load_captioner(args.model)
    outcomes = caption_image_files(model, args.images, _given_search(args))
    for outcome in outcomes:
        if outcome.error is None:
            print(f"{outcome.path}: {outcome.caption}")
        else:
            print(f"{outcome.path}: error: {outcome.error}", file=sys.stderr)
    if args.attention_plot:
        for path in plot_file_captions(outcomes, args.attention_plot):
            print(f"attention plot: {path}")
    return 1 if any(outcome.error for outcome in outcomes) else 0


def _extract_features(args):
    _download(args)
    records = read_dataset(args.dataset, args.data_dir, captions_file=args.captions_file,
                           missing=args.missing)
    encoder = build_encoder(args.encoder, weights=weights_argument(args.encoder_weights))
    extract_features([r.image_path for r in records], encoder, args.output,
                     image_size=encoder.image_size, batch_size=args.batch_size,
                     dtype=args.dtype)
    return 0


def _evaluate(args):
    _download(args)
    evaluate(args.model, args.dataset, args.data_dir, split=args.split,
             search=_given_search(args), output_path=args.output,
             with_meteor=not args.no_meteor, tokenization=args.tokenization,
             captions_file=args.captions_file, missing=args.missing)
    return 0


def _export(args):
    limits = ImageLimits(max_bytes=args.max_image_bytes, max_pixels=args.max_image_pixels,
                         max_request_pixels=args.max_request_pixels)
    models = [load_captioner(handle) for handle in args.model]
    model = models[0] if len(models) == 1 else CaptionEnsemble(models)
    path = export_captioner(model, args.output,
                            search={**_given_search(args), "num_captions": args.num_captions},
                            max_batch_size=args.max_batch_size, limits=limits,
                            jit_compile=args.jit_compile, overwrite=args.overwrite,
                            weights_dtype=args.weights_dtype)
    print(f"SavedModel written to {path}")
    return 0


def _serve(args):
    limits = HTTPLimits(timeout=args.rest_timeout, max_connections=args.max_connections)
    return serve(args.model_dir, port=args.port, rest_port=args.rest_port or None,
                 model_name=args.model_name, in_process=args.in_process,
                 deadline=args.deadline, web=not args.no_web, host=args.host,
                 http_limits=limits, grace=args.grace_period)


def _add_dataset_arguments(parser, default_dataset="synthetic"):
    parser.add_argument("--dataset", choices=dataset_names(), default=default_dataset,
                        help="the dataset's reader (data.datasets.read_dataset)")
    parser.add_argument("--data-dir", required=True,
                        help="the dataset or image folder (see data.datasets.read_dataset; "
                             "synthetic: generated there by train if missing)")
    parser.add_argument("--captions-file", default=None,
                        help="karpathy / coco / csv: the captions file (default: none)")
    parser.add_argument("--missing", choices=["error", "skip"], default="error",
                        help="listed images missing on disk: fail, or report and skip")
    parser.add_argument("--download", action="store_true",
                        help="flickr8k: fetch the images and captions into --data-dir first "
                             "(about 1 GB, once; needs internet)")


def _recipe_encoder():
    """The encoder of the real-data recipe that `sat-keras train` runs by default:
    `extract-features`' default too, so that the features it writes fit that recipe."""
    return preset_settings(default_preset("flickr8k"))["encoder"]["name"]


def _add_encoder_arguments(parser, default_encoder=None):
    parser.add_argument("--encoder", choices=encoder_names(), default=default_encoder,
                        help="default: the preset's" if default_encoder is None else
                        f"the encoder whose features are cached (default: {default_encoder}, "
                        "the encoder of sat-keras train's real-data recipe)")
    parser.add_argument("--encoder-weights", default=None,
                        help='"imagenet" (the default; downloads), "none", or a weights file')


def _given_search(args):
    """The decoding flags given (`_add_decoding_arguments`): the fields they change of
    the model's own `SearchSettings` (None: not given)."""
    return {field.name: getattr(args, field.name) for field in SearchSettings.flags()}


def _add_decoding_arguments(parser):
    """A flag per `SearchSettings.flags()` field (--beam-size, --max-length, ...):
    each None unless given, so that the model's own decoding fills it in."""
    for field in SearchSettings.flags():
        default = field.default
        if isinstance(default, bool):
            kind = {"action": argparse.BooleanOptionalAction}
            default = "yes" if default else "no"
        else:
            kind = {"type": type(default), "metavar": field.metadata["metavar"]}
        parser.add_argument("--" + field.name.replace("_", "-"), default=None, **kind,
                            help=f"{field.metadata['help']} (default: the model's own; "
                                 f"{default} for a model given none)")


class _HelpWithDefaults(argparse.HelpFormatter):
    """Each option's help ends with its default, unless its text already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text or not action.option_strings or action.required
                or action.default in (None, argparse.SUPPRESS)):
            return text  # a None default is described in the text (tests/test_cli.py)
        value = {False: "off", True: "on"}.get(action.default, action.default)
        return f"{text} (default: {str(value).replace('%', '%%')})".strip()


def _command(commands, name, **kwargs):
    return commands.add_parser(name, formatter_class=_HelpWithDefaults, **kwargs)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="sat-keras", description="Show, Attend and Tell image captioning.",
        formatter_class=_HelpWithDefaults)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = _command(
        commands, "demo", help="generate synthetic data, train on CPU, report test BLEU-4, save")
    demo.add_argument("--output-dir", default="sat_keras_demo",
                      help="the folder of the generated data and the trained model")
    demo.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    demo.add_argument("--num-images", type=int, default=None, help="default: the preset's")
    demo.add_argument("--seed", type=int, default=0,
                      help="seeds the data, the initial weights and the shuffling")
    demo.add_argument("--export", default=None, metavar="DIR",
                      help="also export the model as a SavedModel, e.g. saved_models/shapes/1 "
                           "(default: none)")
    demo.add_argument("--num-captions", type=int, default=3, metavar="N",
                      help="with --export: the beam's N best captions among the outputs "
                           "(the caption page lists them)")
    demo.set_defaults(handler=_demo)

    train = _command(commands, "train", help="train a captioner")
    _add_dataset_arguments(train)
    train.add_argument("--output-dir", required=True,
                       help="the run directory: model, config, metrics, "
                            "TensorBoard logs, backup")
    train.add_argument("--preset", choices=preset_names(), default=None,
                       help="the architecture and training settings (models.presets); "
                            "default: synthetic for --dataset synthetic, else "
                            "flickr8k_resnet50 (their _hard twins with --attention hard)")
    train.add_argument("--attention", choices=["soft", "hard"], default=None,
                       help="picks the preset's hard twin when --preset is not given "
                            "(default: soft)")
    train.add_argument("--set", action="append", default=None, metavar="PATH=VALUE",
                       help="change one value of the preset (repeatable): a path in the "
                            "model's config (decoder.units=768, label_smoothing=0.1) or in "
                            "a preset section (training.epochs=3, encoder.name=mobilenet); "
                            "VALUE is JSON, else a string. Applied after the other flags "
                            "(default: none)")
    _add_encoder_arguments(train)
    train.add_argument("--features", default=None,
                       help="cached features of the encoder (sat-keras extract-features; "
                            "default: none, images go through the encoder)")
    train.add_argument("--fine-tune-layers", type=int, default=None, metavar="N",
                       help="fine-tune the encoder's top N weighted layers (needs images, "
                            "or features cached below them with --fine-tune-from; default: "
                            "none, the encoder stays frozen)")
    train.add_argument("--fine-tune-from", default=None, metavar="LAYER",
                       help="fine-tune the encoder's layers above LAYER, e.g. "
                            "conv4_block6_out for ResNet50's conv5 stage, from --features "
                            "extracted at LAYER (extract-features --encoder resnet50_conv4) "
                            "or from images (default: none)")
    train.add_argument("--batch-by-image", action="store_true", default=None,
                       help="batches of whole images with all their captions, so that a "
                            "fine-tuned encoder runs once per image (default: the preset's; "
                            "off in every preset)")
    train.add_argument("--encoder-lr-multiplier", type=float, default=None,
                       help="when fine-tuning: the encoder's learning rate relative "
                            "to the decoder's (default 0.1)")
    train.add_argument("--max-minutes", type=float, default=None,
                       help="stop training after this much wall-clock time (default: no "
                            "limit)")
    train.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    train.add_argument("--patience", type=int, default=None, metavar="EPOCHS",
                       help="stop after this many epochs without a better val BLEU-4 "
                            "(default: the preset's; the synthetic presets have none)")
    train.add_argument("--select-from", type=float, default=None, metavar="FRACTION",
                       help="with a patience: compare cross-entropy epochs only from this "
                            "fraction of the schedule on (default: the preset's, 0.5 for "
                            "Flickr8k; 0 compares them all)")
    train.add_argument("--batch-size", type=int, default=None,
                       help="the global batch of captions (default: the preset's)")
    train.add_argument("--doubly-stochastic-weight", type=float, default=None,
                       metavar="LAMBDA",
                       help="the attention penalty's weight (default: the preset's; "
                            "0 turns it off)")
    train.add_argument("--label-smoothing", type=float, default=None, metavar="E",
                       help="train on (1 - E) one-hot targets plus E spread over the "
                            "vocabulary (default: the preset's, 0)")
    train.add_argument("--annotation-dropout", type=float, default=None, metavar="RATE",
                       help="dropout on the annotations in training (default: the "
                            "preset's)")
    train.add_argument("--embedding-dropout", type=float, default=None, metavar="RATE",
                       help="dropout on the word embeddings in training (default: the "
                            "preset's)")
    train.add_argument("--units", type=int, default=None,
                       help="LSTM units (default: the preset's)")
    train.add_argument("--annotation-projection", type=int, default=None, metavar="SIZE",
                       help="embed each location's features into SIZE dimensions "
                            "(Dense + ReLU) before the decoder uses them (default: none, "
                            "the authors)")
    train.add_argument("--init-from", default=None, metavar="MODEL",
                       help="start the decoder (and a jointly trained encoder) from this "
                            "trained model's weights (a run directory, .keras file, export "
                            "or name with the same vocabulary and sizes), e.g. a soft model "
                            "for --attention hard, whose Flickr8k presets then train 3 "
                            "epochs at 2e-4 (their warm-start schedule; default: none, a "
                            "fresh decoder)")
    train.add_argument("--keep-epoch-weights", action="store_true",
                       help="save each cross-entropy epoch's weights in RUN/epochs/")
    train.add_argument("--learning-rate", type=float, default=None,
                       help="the peak of the cosine schedule (default: the preset's)")
    train.add_argument("--num-images", type=int, default=None,
                       help="synthetic only: images to generate (default: the preset's)")
    train.add_argument("--seed", type=int, default=0,
                       help="seeds the data, the initial weights and the shuffling")
    train.add_argument("--strategy", choices=STRATEGIES, default="default",
                       help="tf.distribute strategy; multi_worker reads TF_CONFIG")
    train.add_argument("--tpu", default=None,
                       help="tpu strategy: the TPU's name or address (default: the one the "
                            "environment names)")
    train.add_argument("--backup-every", type=int, default=100, metavar="STEPS",
                       help="back up every STEPS steps; rerunning a killed command resumes")
    train.add_argument("--clip-norm", type=float, default=None,
                       help="clip each gradient to this norm (default: the preset's; none "
                            "in every preset)")
    train.add_argument("--mixed-precision", choices=["mixed_float16", "mixed_bfloat16"],
                       default=None, help="16-bit compute (GPUs); weights and loss in float32 "
                                          "(default: none, float32 throughout)")
    train.add_argument("--scst-epochs", type=int, default=None, metavar="N",
                       help="after cross-entropy, N epochs of self-critical sequence "
                            "training on the CIDEr-D reward (output-dir/self_critical; "
                            "default: none)")
    train.add_argument("--scst-learning-rate", type=float, default=None,
                       help="its constant learning rate (default 5e-5)")
    train.add_argument("--scst-samples", type=int, default=None,
                       help="captions sampled per image (default 5)")
    train.add_argument("--scst-baseline", choices=BASELINES, default=None,
                       help="mean: the other samples' mean reward (default, Luo 2020); "
                            "greedy: the greedy caption's (Rennie et al. 2017)")
    train.add_argument("--scst-score-end", action=argparse.BooleanOptionalAction,
                       default=None,
                       help="the reward scores a caption's end as a word, so captions that "
                            "stop mid-phrase score lower (default: yes, as Luo's code)")
    train.add_argument("--scst-dropout", action="store_const", const=True, default=None,
                       help="differentiate the sampled captions' log-probabilities with "
                            "the decoder's dropout on, as Luo's code trains (soft "
                            "attention; default: off, the policy that captions)")
    train.set_defaults(handler=_train)

    caption = _command(commands, "caption", help="caption image files")
    caption.add_argument("images", nargs="+", help="image files (JPEG, PNG, GIF, BMP)")
    caption.add_argument("--model", default=DEFAULT_MODEL,
                         help="a registered name, a directory written by train/demo, a "
                              ".keras file, a SavedModel (sat-keras export), or an archive "
                              f"URL ending in #sha256=HEX (default: {DEFAULT_MODEL}, the "
                              "Flickr8k captioner that ships with sat_keras)")
    _add_decoding_arguments(caption)
    caption.add_argument("--attention-plot", default=None, metavar="PNG",
                         help="write the image and one attention panel per word "
                              "(default: none)")
    caption.set_defaults(handler=_caption)

    extract = _command(
        commands, "extract-features", help="run a pretrained encoder over a dataset's images once")
    _add_dataset_arguments(extract, default_dataset="flickr8k")
    _add_encoder_arguments(extract, default_encoder=_recipe_encoder())
    extract.add_argument("--output", required=True, help="the feature folder")
    extract.add_argument("--batch-size", type=int, default=32, help="images encoded at once")
    extract.add_argument("--dtype", choices=["float16", "float32"], default="float16",
                         help="how the features are stored")
    extract.set_defaults(handler=_extract_features)

    evaluate = _command(
        commands, "evaluate", help="caption a dataset split and report every caption metric")
    evaluate.add_argument("--model", required=True)
    _add_dataset_arguments(evaluate)
    evaluate.add_argument("--split", choices=["train", "val", "test"], default="test",
                          help="the split captioned and scored")
    _add_decoding_arguments(evaluate)
    evaluate.add_argument("--output", default=None,
                          help="results JSON file (default: none, printed only)")
    evaluate.add_argument("--tokenization", choices=["auto", "normalize", "ptb"],
                          default="auto",
                          help="ptb: coco-caption's Java PTB tokenizer; auto: ptb where "
                               "Java and pycocoevalcap are installed")
    evaluate.add_argument("--no-meteor", action="store_true",
                          help="skip METEOR (it needs Java and pycocoevalcap)")
    evaluate.set_defaults(handler=_evaluate)

    export = _command(
        commands, "export", help="write a SavedModel for TF Serving (image bytes in, captions out)")
    export.add_argument("--model", required=True, action="append",
                        help="directory written by train/demo, a .keras file, or an export; "
                             "given several times, their ensemble (word probabilities "
                             "averaged at every step; decoding: the first model's unless "
                             "given)")
    export.add_argument("--output", required=True, metavar="DIR",
                        help="the version directory, e.g. saved_models/NAME/1")
    _add_decoding_arguments(export)
    export.add_argument("--num-captions", type=int, default=None, metavar="N",
                        help="also return the beam's N best captions (outputs nbest_*); "
                             "N from 1 to the beam size (default: the model's own; none for "
                             "a model given none)")
    export.add_argument("--max-batch-size", type=int, default=64,
                        help="requests with more images are refused")
    export.add_argument("--max-image-bytes", type=int, default=ImageLimits.max_bytes,
                        help="bytes of one encoded image")
    export.add_argument("--max-image-pixels", type=int, default=ImageLimits.max_pixels,
                        help="pixels one image decodes to (a GIF: frames x screen)")
    export.add_argument("--max-request-pixels", type=int,
                        default=ImageLimits.max_request_pixels,
                        help="pixels all the images of one request decode to")
    export.add_argument("--jit-compile", action="store_true",
                        help="XLA-compile the search")
    export.add_argument("--overwrite", action="store_true", help="replace an existing version")
    export.add_argument("--weights-dtype", choices=["float32", "float16", "int8"],
                        default="float32",
                        help="float16 stores the weights in half the size, int8 (per-channel "
                             "quantized matrices and kernels) in a quarter; the graph reads "
                             "them back and computes in float32")
    export.set_defaults(handler=_export)

    serve = _command(
        commands, "serve", help="serve an exported model over gRPC (and REST): TF Serving "
                                "when tensorflow_model_server is on PATH, else in-process")
    serve.add_argument("--model-dir", default=DEFAULT_MODEL,
                       help="the model base path holding numbered versions (e.g. "
                            "saved_models/shapes), a registered name or an archive URL "
                            f"(default: {DEFAULT_MODEL}, the captioner that ships)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="the interface to listen on (default 127.0.0.1: this machine "
                            "only; 0.0.0.0: every interface, e.g. in a container)")
    serve.add_argument("--port", type=int, default=8500, help="gRPC port")
    serve.add_argument("--rest-port", type=int, default=8501,
                       help="REST port, which also serves the caption page at / "
                            "(default 8501, as TF Serving's image; 0: no REST)")
    serve.add_argument("--model-name", default=None,
                       help="the name clients ask for; default: the directory's name")
    serve.add_argument("--in-process", action="store_true",
                       help="use the in-process servers even if TF Serving is installed")
    serve.add_argument("--deadline", type=float, default=30.0, metavar="SECONDS",
                       help="in-process servers: seconds a request may take before it is "
                            "answered DEADLINE_EXCEEDED")
    serve.add_argument("--rest-timeout", type=float, default=30.0, metavar="SECONDS",
                       help="REST and page: seconds to wait for a request's headers, and "
                            "again for its body; an idle connection is closed after it")
    serve.add_argument("--max-connections", type=int, default=64,
                       help="REST and page: open connections at once; more are answered "
                            "503 (default 64)")
    serve.add_argument("--grace-period", type=float, default=10.0, metavar="SECONDS",
                       help="in-process servers: on Ctrl-C or SIGTERM, seconds the requests "
                            "in flight get to finish")
    serve.add_argument("--no-web", action="store_true",
                       help="with TF Serving: give it the REST port itself, without the "
                            "caption page in front")
    serve.set_defaults(handler=_serve)
    for command in commands.choices.values():
        command.add_argument("--verbose", action="store_true",
                             help="show TensorFlow's start-up lines (hidden by default; "
                                  "see sat_keras.startup)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError, FileExistsError, FloatingPointError) as error:
        print(f"sat-keras {args.command}: error: {error}", file=sys.stderr)
        return 2


def run():
    sys.exit(main())
