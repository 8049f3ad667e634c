"""The ``emolens`` command. Thin: parse arguments, call the library, print.

Sub-commands that need the ``[train]`` extra import torch inside their body only, so
``emolens predict`` and friends never load it.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from emolens.emotions import EMOTIONS
from emolens.options import cli_check as _in_range  # every numeric option's range: emolens.options

app = typer.Typer(
    help="Emotion recognition on faces: photos, video, live camera. Train, evaluate and export models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: rich markup would eat bracketed text such as 'emolens[serve]' from the help, and
    # typer's rich panels print a type placeholder after every flag ("--json <bool>") that invites "--json true".
    rich_markup_mode=None,
)
console = Console()
# The default is emolens.people.persons.SAME_PERSON (not imported here: it loads OpenCV); a test keeps them equal.
SAME_PERSON_HELP = ("two faces closer than this face-descriptor distance are one person (default 0.5; "
                    "lower: fewer people merged, more split; BENCHMARKS.md \"Persons\").")
err_console = Console(stderr=True, soft_wrap=True)


def shown(text: object) -> str:
    """A user-supplied string (a file name, a message holding one) ready for rich: bytes that are
    not UTF-8 and control characters shown as ``\\xNN``, markup brackets escaped."""
    from emolens.file_names import printable

    return escape(printable(text))


def fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {shown(message)}")
    raise typer.Exit(code)


def _need_stdout() -> None:
    """Refuse up front when standard output is closed (``>&-``): the results would go nowhere."""
    if sys.stdout is None or sys.stdout.closed:
        fail("standard output is closed, so the results would be lost; redirect it to a file "
             "(> results.txt) or to /dev/null")


def _refuse_empty(values, what: str) -> None:
    """An empty string is no path (an unset shell variable): ``Path("")`` would mean the current folder."""
    if any(v is not None and str(v) == "" for v in values):
        fail(f"{what} is an empty string (an unset shell variable?); give a path")


def _need_train_extra() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        fail("this command needs the training extra: pip install 'emolens[train]'")


# ---------------------------------------------------------------------------------------
# model side: nets, train, export, evaluate


@app.command("nets")
def nets_command() -> None:
    """List the network architectures `emolens train` can build."""
    _need_train_extra()
    from emolens.training import nets as nets_module
    from emolens.training.nets import count_parameters, create_net, list_nets

    table = Table("name", "parameters", "description")
    for name in list_nets():
        doc = (getattr(nets_module, name).__doc__ or "").strip().splitlines()[0]
        table.add_row(name, f"{count_parameters(create_net(name)) / 1e6:.2f} M", doc)
    console.print(table)


@app.command("train")
def train_command(
    recipe: Path = typer.Option(..., "--recipe", "-r", help="Recipe TOML file (see recipes/)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: checkpoints, log.jsonl, curves.png."),
    epochs: Optional[int] = typer.Option(None, min=1, help="Override the recipe's number of epochs."),
    limit: Optional[int] = typer.Option(None, min=0, help="Use only the first N training rows (smoke runs)."),
    val_limit: Optional[int] = typer.Option(None, min=0, help="Use only the first N validation rows."),
    data: Optional[Path] = typer.Option(None, help="Override the recipe's dataset path."),
    ferplus: Optional[Path] = typer.Option(None, help="Override the recipe's FER+ votes file (fer2013new.csv)."),
    resume: bool = typer.Option(True, help="Resume from OUT/last.pt when it exists."),
    stop_after: int = typer.Option(0, min=0, help="End this invocation after N epochs (resume later with the same "
                                   "command), to fit a long run into a session."),
    progress: bool = typer.Option(True, help="Show a progress bar per epoch."),
    keep_epochs: bool = typer.Option(False, help="Keep every epoch's last.pt as OUT/epochs/eNNN.pt (hard links, "
                                     "~34 MB each for emonet), for benchmarks/weight_average.py."),
) -> None:
    """Train a model from a recipe; rerun the same command to resume after an interruption.

    The whole recipe (with the options above applied) is checked before any data loads; a run
    whose loss stops being finite ends with exit code 1, its last good last.pt kept.
    """
    _need_train_extra()
    from emolens.runtime import ModelError
    from emolens.training.data import DatasetError
    from emolens.training.loop import TrainingError, train
    from emolens.training.recipe import Recipe

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    data_overrides = {"limit": limit, "val_limit": val_limit, "path": None if data is None else str(data),
                      "ferplus": None if ferplus is None else str(ferplus)}
    overrides = {"train": {"epochs": epochs} if epochs is not None else {},
                 "data": {k: v for k, v in data_overrides.items() if v is not None}}
    try:
        r = Recipe.load(recipe, overrides)
    except ValueError as exc:
        fail(str(exc))
    try:
        last = train(r, out, resume=resume, progress=progress, stop_after=stop_after, keep_epochs=keep_epochs)
    except TrainingError as exc:
        fail(str(exc), code=1)
    except (DatasetError, ModelError, ValueError) as exc:  # ModelError: an .onnx teacher that does not run
        fail(str(exc))
    except KeyboardInterrupt:
        fail(f"interrupted; rerun the same command to resume from {out / 'last.pt'}", code=130)
    console.print(f"done: validation accuracy {last.get('val_accuracy', float('nan')):.4f}; "
                  f"checkpoints and curves in {out}")


@app.command("export")
def export_command(
    checkpoint: Path = typer.Argument(..., help="A run's best.pt or last.pt."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .onnx path; the model card is written beside it (.json)."),
    data: Optional[Path] = typer.Option(None, help="Dataset measured into the card (default: the recipe's)."),
    calibrate: bool = typer.Option(True, help="Fit a softmax temperature on the validation split and store it."),
    limit: int = typer.Option(0, min=0, help="Measure the card's numbers on the first N validation rows only "
                              "(0 = all)."),
    weights: Optional[str] = typer.Option(None, help="How the file stores the weights: float16 (half of float32), "
                                          "int8 (a quarter; per-channel scales) or float32 (as trained: research "
                                          "runs); default: the recipe's [export] weights, else float16. Inference "
                                          "computes in float32 either way (emolens quantize makes it int8)."),
) -> None:
    """Export a checkpoint to ONNX (both heads) with a model card, and check it against torch.

    The checkpoint is read as data only (tensors, numbers, strings): a file holding anything
    else is refused unexecuted; weights or outputs that are not finite are refused too.
    """
    _need_train_extra()
    from emolens.runtime import ModelError
    from emolens.training.checkpoint import CheckpointError
    from emolens.training.data import DatasetError
    from emolens.training.export import ExportError, export_model

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        card = export_model(checkpoint, out, data=data, calibrate=calibrate, limit=limit, weights=weights)
    except (ExportError, CheckpointError, DatasetError, ModelError, FileNotFoundError) as exc:
        fail(str(exc))
    console.print_json(json.dumps(card))


@app.command("quantize")
def quantize_command(
    model: Path = typer.Argument(..., help="An exported .onnx model (float32 arithmetic) with its card beside it."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .onnx path; its model card is written beside it (.json)."),
    data: Path = typer.Option(..., help="fer2013.csv(.gz): Training rows calibrate, PublicTest is measured into the card."),
    ferplus: Optional[Path] = typer.Option(None, help="FER+ votes (fer2013new.csv) for the card's intensity RMSE."),
    rows: int = typer.Option(1024, help="Training faces that calibrate the activation ranges (seeded random choice)."),
    seed: int = typer.Option(0, min=0, help="Seed of the calibration choice."),
    limit: int = typer.Option(0, min=0, help="Read only the first N rows of each split (0 = all; for quick checks)."),
) -> None:
    """Make a model compute in int8 (static quantization, ~2x faster on a CPU), measured against the float model."""
    import importlib.util

    if importlib.util.find_spec("onnx") is None:  # ONNX Runtime's quantizer is built on it
        fail("emolens quantize needs the onnx package: pip install 'emolens[train]'")
    from emolens.runtime import ModelError
    from emolens.training.data import DatasetError
    from emolens.training.quantize import QuantizeError, quantize_model

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        card = quantize_model(model, out, data, rows=rows, seed=seed, ferplus=ferplus, limit=limit)
    except (QuantizeError, DatasetError, ModelError) as exc:
        fail(str(exc))
    v = card["validation"]
    console.print(f"{out}: PublicTest accuracy {100 * v['accuracy']:.2f}% (float model {100 * v['source_accuracy']:.2f}%), "
                  f"top emotion differs on {v['source_top_emotion_differs']} of {v['n']} faces; "
                  f"{card['file_size_bytes'] / 1e6:.2f} MB, batch-1 {card['latency_ms_batch1']} ms; card {out.with_suffix('.json')}")


@app.command("evaluate")
def evaluate_command(
    data: str = typer.Argument(..., help="fer2013.csv(.gz), a class-folder tree or a FERPlus folder."),
    model: Optional[Path] = typer.Option(None, help="Exported .onnx model (default: the shipped model)."),
    split: Optional[str] = typer.Option(None, help="Training / PublicTest / PrivateTest / all "
                                        "(default: PrivateTest if present, else PublicTest)."),
    ferplus: Optional[Path] = typer.Option(None, help="FER+ votes (fer2013new.csv) for intensity RMSE and "
                                           "FER+ majority accuracy."),
    tta: bool = typer.Option(False, "--tta", help="Average the face and its mirror image."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    plot: Optional[Path] = typer.Option(None, help="Write the confusion-matrix picture to this file "
                                        "(.png, .svg or .pdf)."),
    limit: int = typer.Option(0, min=0, help="Only the first N rows (0 = all)."),
) -> None:
    """Measure a model on a labelled dataset through the same ONNX runtime users run."""
    from emolens.evaluate import check_plot_path, evaluate_dataset
    from emolens.runtime import ModelError
    from emolens.training.data import DatasetError

    if data.strip() == "":
        fail("the dataset is an empty string (an unset shell variable?); pass fer2013.csv(.gz), a class-folder "
             "tree or a FERPlus folder")
    try:
        if plot is not None:  # before the evaluation: a wrong place is reported at once
            check_plot_path(plot, data)
        report = evaluate_dataset(data, model=model, split=split, ferplus=ferplus, tta=tta, limit=limit)
    except (DatasetError, ModelError, ValueError) as exc:
        fail(str(exc))
    if plot is not None:
        from emolens.draw import plot_confusion

        plot.parent.mkdir(parents=True, exist_ok=True)
        plot_confusion(report, plot)
    if as_json:
        print(json.dumps(report, allow_nan=False))
        return
    table = Table(title=f"{escape(report['model'])} on {escape(report['data'])} ({report['split']}, n={report['n']}"
                        f"{', TTA' if tta else ''})")
    table.add_column("emotion")
    for col in ("recall", "precision", "f1", "n"):
        table.add_column(col, justify="right")
    for e in EMOTIONS:
        pc = report["per_class"][e]
        table.add_row(e, f"{pc['recall']:.3f}", f"{pc['precision']:.3f}", f"{pc['f1']:.3f}", str(pc["n"]))
    console.print(table)
    console.print(f"accuracy [bold]{report['accuracy']:.4f}[/]   macro-F1 {report['macro_f1']:.4f}")
    if report.get("intensity_rmse") is not None:
        console.print(f"intensity RMSE vs FER+ vote fractions {report['intensity_rmse']:.4f}")
    if report.get("ferplus_majority_accuracy") is not None:
        console.print(f"FER+ majority-vote accuracy {report['ferplus_majority_accuracy']:.4f} "
                      f"(top intensity: {report['ferplus_majority_accuracy_intensity']:.4f}; "
                      f"n={report['ferplus_majority_n']})")
    if plot is not None:
        console.print(f"confusion matrix written to {escape(str(plot))}", highlight=False)


# ---------------------------------------------------------------------------------------
# photo side: predict, detectors


@app.command("predict")
def predict_command(
    paths: list[str] = typer.Argument(..., metavar="INPUTS", help="Pictures, folders (searched recursively; hidden "
                                      "files and symlinked folders skipped) or glob patterns (quote them: 'shots/*.jpg')."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON Lines on stdout: one object per input "
                                 '{"file", "faces": [...], "error"}.'),
    annotate: Optional[str] = typer.Option(None, "--annotate", metavar="OUT_DIR",
                                           help="Write each picture with boxes, landmarks and emotion bars "
                                           "into this folder (never over an input picture: a folder where a "
                                           "copy would replace an input is refused)."),
    detector: Optional[str] = typer.Option(None, "--detector", "-d", help="Face detector backend "
                                           "(default: blazeface; see `emolens detectors`)."),
    align: bool = typer.Option(True, "--align/--no-align", help="Align faces by their landmarks "
                               "(--no-align: crop the detector box)."),
    crop: Optional[str] = typer.Option(None, help="Face framing by name: aligned, box, box-wide "
                                       "(overrides --align)."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Exported .onnx model "
                                         "(default: the shipped model)."),
    max_faces: Optional[int] = typer.Option(None, callback=_in_range("max_faces"),
                                            help="Keep only the N largest faces per picture."),
    group_people: bool = typer.Option(False, "--group-people", help="Give every face a person id, the same for "
                                      "the same person across all the pictures (dlib face descriptors)."),
    same_person: Optional[float] = typer.Option(None, "--same-person", metavar="DISTANCE",
                                                callback=_in_range("same_person"),
                                                help="With --group-people: " + SAME_PERSON_HELP),
    collages: bool = typer.Option(False, "--collages", help="With --group-people: a picture may show one person "
                                  "several times (montages); by default the faces of one picture are different "
                                  "people."),
    summary_json: Optional[str] = typer.Option(None, "--summary-json", metavar="FILE.json",
                                               help="With --group-people: write the per-person summary (pictures "
                                               "and their files, faces, dominant emotion, mean scores and "
                                               "intensities) as JSON; works with --json too."),
) -> None:
    """Find faces in pictures and recognise their emotions.

    Prints a table per picture (or JSON Lines with --json). A picture without a face is not an error. Bad files are reported on stderr and skipped; the exit code is 1 when any input failed.
    """
    from emolens.faces.detect import UnknownDetectorError
    from emolens.output_paths import OutputPathError, check_distinct, check_output_file, prepare_output_folder
    from emolens.predict import PeopleTally, annotation_targets, expand_inputs, predict_files
    from emolens.recognize import Recognizer
    from emolens.runtime import ModelError

    _refuse_empty(paths, "an input")
    _refuse_empty([annotate], "--annotate")
    for given, flag in ((same_person is not None, "--same-person"), (collages, "--collages")):
        if given and not group_people:
            fail(f"{flag} sets how people are grouped: add --group-people (or leave {flag} out)")
    if summary_json is not None and not group_people:
        fail("--summary-json writes the per-person summary: add --group-people (or leave --summary-json out)")
    _need_stdout()
    inputs = expand_inputs(paths)
    if summary_json is not None:   # before the models load, as --annotate
        try:
            check_distinct([(p, "input picture") for p, err in inputs if err is None],
                           [(summary_json, "people summary (--summary-json)")])
            check_output_file(summary_json, "people summary (--summary-json)", (".json",))
        except OutputPathError as exc:
            fail(str(exc))
    if annotate is not None:   # before the models load: a wrong folder is reported at once
        try:
            annotation_targets(inputs, annotate)
            prepare_output_folder(annotate, "annotated pictures")
        except OutputPathError as exc:
            fail(str(exc))
    try:
        options = {} if detector is None else {"detector": detector}
        recognizer = Recognizer(model=model, align=align, crop=crop, max_faces=max_faces, **options)
    except (ModelError, UnknownDetectorError, ValueError) as exc:
        fail(str(exc))
    failed = 0
    show_progress = len(inputs) > 3
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TimeRemainingColumn(), console=err_console, transient=True,
                        disable=not show_progress)
    tally = PeopleTally() if group_people and (summary_json is not None or not as_json) else None
    with progress:
        task = progress.add_task("analysing", total=len(inputs))
        for result in predict_files(recognizer, inputs, annotate=None if annotate is None else Path(annotate),
                                    group_people=group_people, same_person=same_person, collages=collages):
            progress.advance(task)
            if result.error is not None:
                failed += 1
                if not as_json:
                    progress.console.print(f"[bold red]error:[/] {shown(result.error)}", highlight=False,
                                           soft_wrap=True)
            if as_json:
                sys.stdout.write(json.dumps(result.to_dict(), allow_nan=False) + "\n")
                sys.stdout.flush()
            elif result.error is None or result.faces:
                _print_photo_table(result)
            if tally is not None:
                tally.add(result)
    if tally is not None and not as_json:
        _print_people_summary(tally)
    if summary_json is not None:
        _write_people_summary(tally, summary_json, len(inputs), failed)
    if failed:
        err_console.print(f"{failed} of {len(inputs)} input(s) failed", highlight=False)
        raise typer.Exit(1)


def _print_photo_table(result) -> None:
    if not result.faces:
        console.print(f"[bold]{shown(result.file)}[/]: no face found", highlight=False, soft_wrap=True)
        return
    console.print(f"[bold]{shown(result.file)}[/]: {len(result.faces)} face(s)", highlight=False, soft_wrap=True)
    from rich import box

    table = Table(box=box.SIMPLE_HEAD,
                  pad_edge=False, padding=(0, 1), collapse_padding=True)
    table.add_column("#", justify="right", no_wrap=True)
    if result.persons is not None:
        table.add_column("who", justify="right", no_wrap=True)
    table.add_column("box x,y,w,h", no_wrap=True)
    table.add_column("yaw", justify="right", no_wrap=True)
    table.add_column("emotion", style="bold", no_wrap=True)
    for e in EMOTIONS:
        table.add_column(SHORT_EMOTION[e], justify="right", no_wrap=True)
    for i, face in enumerate(result.faces, 1):
        cells = [f"{round(100 * face.scores[e])}" if e != face.emotion else f"[bold]{round(100 * face.scores[e])}[/]"
                 for e in EMOTIONS]
        marks = ("" if face.aligned else "*") + ("" if face.frontal else "~")
        who = [] if result.persons is None else ["-" if result.persons[i - 1] is None else f"P{result.persons[i - 1]}"]
        table.add_row(str(i), *who, ",".join(map(str, face.box)), "-" if face.pose is None else str(round(face.pose.yaw) + 0),
                      face.emotion + marks, *cells)
    console.print(table)
    console.print("scores in % (the 7 sum to 100); yaw in degrees", style="dim")
    if not all(f.aligned for f in result.faces):
        console.print("* no landmarks that fit (small or turned face): box crop used", style="dim")
    if not all(f.frontal for f in result.faces):
        console.print("~ not frontal (|yaw| > 30 degrees or unknown): less reliable", style="dim")
    if result.annotated:
        console.print(f"annotated: {shown(result.annotated)}", style="dim", highlight=False, soft_wrap=True)


def _write_people_summary(tally, path: str, pictures: int, failed: int) -> None:
    """``predict --summary-json``: the per-person summary, replaced whole (never half-written)."""
    from emolens.output_paths import staged_output

    summary = {"pictures": pictures, "failed": failed, **tally.to_dict()}
    target = Path(path)
    try:
        if target.exists() and not target.is_file():     # /dev/stdout, a pipe: written as they are
            target.write_text(json.dumps(summary, indent=2) + "\n")
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        with staged_output(target) as staged:
            staged.write_text(json.dumps(summary, indent=2) + "\n")
    except OSError as exc:
        fail(f"{path}: cannot write the people summary ({exc.strerror or exc}); choose another file", code=1)
    err_console.print(f"people summary: {shown(path)}", style="dim", highlight=False, soft_wrap=True)


def _print_people_summary(tally) -> None:
    """``predict --group-people``'s closing table: per person the pictures, faces and mean scores."""
    from rich import box

    rows = tally.rows()
    console.print(f"[bold]people[/]: {len(rows)} person(s)" + (f"; {tally.unnamed} face(s) without a person "
                  "(under 40 px or no landmarks that fit)" if tally.unnamed else ""), highlight=False, soft_wrap=True)
    if not rows:
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True)
    for name in ("person", "pictures", "faces"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("dominant", style="bold", no_wrap=True)
    for e in EMOTIONS:
        table.add_column(SHORT_EMOTION[e], justify="right", no_wrap=True)
    for r in rows:
        means = r["mean_scores"]
        table.add_row(f"P{r['person']}", str(r["pictures"]), str(r["faces"]), f"{r['dominant']} {means[r['dominant']]:.2f}",
                      *(f"{round(100 * means[e])}" for e in EMOTIONS))
    console.print(table)
    console.print("mean scores in % over the person's frontal faces (all its faces when none is frontal)",
                  style="dim")


@app.command("video")
def video_command(
    source: str = typer.Argument(..., metavar="INPUT", help="A video file (mp4, avi, mkv, webm, mov, ...) "
                                 "or a camera number (0 = the first camera)."),
    csv_out: Optional[str] = typer.Option(None, "--csv", metavar="FILE", help="One row per frame and face: "
                                           "frame, time, track id, box, emotion, 7 scores, 7 intensities "
                                           "(smoothed)."),
    jsonl_out: Optional[str] = typer.Option(None, "--jsonl", metavar="FILE", help="The same as JSON Lines, "
                                             "with raw (unsmoothed) values and landmarks."),
    out: Optional[str] = typer.Option(None, "--out", "-o", metavar="FILE.mp4", help="Write the annotated "
                                       "video with the source's audio: boxes, person ids, emotions, score "
                                       "bars (H.264; .webm: VP9)."),
    summary: bool = typer.Option(False, "--summary", help="Print per-face emotion shares and the dominant "
                                 "emotion (the default when no other output is asked for)."),
    summary_json: Optional[str] = typer.Option(None, "--summary-json", metavar="FILE.json",
                                               help="Write the per-face summary as JSON."),
    plot: Optional[str] = typer.Option(None, "--plot", metavar="FILE.png", help="Write an emotion timeline "
                                       "per face (.png, .svg or .pdf)."),
    show: bool = typer.Option(False, "--show", help="Show a live window (needs a display and OpenCV with a "
                              "GUI; q or Esc stops)."),
    every: int = typer.Option(1, "--every", callback=_in_range("every"),
                              help="Analyse every Nth frame of a file."),
    realtime: bool = typer.Option(False, "--realtime", help="Play a file at its own speed and drop frames when "
                                  "analysis lags, as with a camera."),
    detect_every: int = typer.Option(5, "--detect-every", callback=_in_range("detect_every"),
                                     help="Run the face detector every N analysed frames; faces are followed "
                                     "by their landmarks in between (1: detect on every frame)."),
    half_life: float = typer.Option(0.5, "--half-life", callback=_in_range("half_life"),
                                    help="Smoothing half-life in seconds (0: no smoothing)."),
    max_missed: int = typer.Option(15, "--max-missed", callback=_in_range("max_missed"),
                                   help="Analysed frames a face may go unseen before its track ends."),
    detector: Optional[str] = typer.Option(None, "--detector", "-d", help="Face detector backend "
                                           "(see `emolens detectors`)."),
    detect_side: int = typer.Option(640, "--detect-side", callback=_in_range("detect_side"),
                                    help="Longest side of the frame copy the detector runs on (smaller: "
                                    "faster, misses small faces)."),
    align: bool = typer.Option(True, "--align/--no-align", help="Align faces by their landmarks."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Exported .onnx model "
                                         "(default: the shipped model)."),
    max_faces: Optional[int] = typer.Option(None, callback=_in_range("max_faces"),
                                            help="Keep only the N largest faces per frame."),
    shots: str = typer.Option("hash", "--shots", help="Shot-cut detector: hash, content, histogram or off. A cut "
                              "ends every track, so no track or smoothed score crosses it."),
    persons: bool = typer.Option(True, "--persons/--no-persons", help="Give every track a person id from face "
                                 "descriptors, stable across shots (a few descriptors per track)."),
    same_person: Optional[float] = typer.Option(None, "--same-person", metavar="DISTANCE",
                                                callback=_in_range("same_person"), help="Persons: " + SAME_PERSON_HELP),
    all_poses: bool = typer.Option(False, "--all-poses", help="Count every face in the summary and the plot, "
                                   "not only frontal ones (|yaw| <= 30 degrees)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on stderr."),
) -> None:
    """Recognise emotions on the faces of a video file or a live camera, in real time.

    Faces keep a track id within a shot (a cut ends every track) and a person id across
    shots; their scores are smoothed over time. The summary is per person, counting frontal
    faces only unless --all-poses. Outputs are
    written as frames are processed; Ctrl-C (or SIGTERM) stops and keeps what was written, the
    annotated video and the summary finished (exit code 130; 143 for SIGTERM). Outputs are
    checked first: never the input video, never two into one file.
    """
    from emolens.faces.detect import UnknownDetectorError
    from emolens.recognize import Recognizer
    from emolens.runtime import ModelError
    import signal

    from emolens.video import (StopSignals, VideoError, VideoOutputs, check_outputs, gui_problem, open_source,
                               run_video)

    _refuse_empty([source], "the video")
    from emolens.people.shots import SHOT_METHODS

    if shots not in SHOT_METHODS:
        fail(f"--shots {shown(shots)}: unknown shot-cut detector; choose one of {', '.join(SHOT_METHODS)}")
    if same_person is not None and not persons:
        fail("--same-person sets how tracks are grouped into persons, which --no-persons turns off: "
             "drop one of the two")
    grouping = {} if same_person is None else {"same_person": same_person}
    for value, flag in ((csv_out, "--csv"), (jsonl_out, "--jsonl"), (out, "--out"), (summary_json, "--summary-json"),
                        (plot, "--plot")):
        _refuse_empty([value], flag)
    if show and (problem := gui_problem()):
        fail(problem)
    print_summary = summary or not any([csv_out, jsonl_out, out, summary_json, plot, show])
    if print_summary:
        _need_stdout()
    outputs = VideoOutputs(csv=csv_out, jsonl=jsonl_out, video=out, summary_json=summary_json, plot=plot)
    try:  # inputs and outputs first: a wrong path is reported before the models load
        check_outputs(outputs, source)
        opened = open_source(source, every=every, realtime=realtime)
    except VideoError as exc:
        fail(str(exc))
    try:
        options = {} if detector is None else {"detector": detector}
        recognizer = Recognizer(model=model, align=align, max_faces=max_faces, detect_side=detect_side, **options)
    except (ModelError, UnknownDetectorError, ValueError) as exc:
        opened.close()
        fail(str(exc))
    except KeyboardInterrupt:
        opened.close()
        fail("interrupted before any frame was analysed", code=130)

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=err_console, transient=True,
                   disable=not progress)
    state = {}

    def on_start(src) -> None:
        state["task"] = bar.add_task(shown(Path(src.name).name if not src.name.startswith("camera") else src.name),
                                     total=src.expected, rate="")

    def on_frame(result, run) -> None:
        rate = f"{run.processing_fps:.1f} frames/s" + (f", {run.dropped} dropped" if run.dropped else "")
        bar.update(state["task"], advance=1, rate=rate)

    # Ctrl-C and SIGTERM stop the run; later ones are ignored until the command has reported.
    with StopSignals() as signals:
        try:
            with bar:
                report = run_video(recognizer, opened, outputs, show=show, on_frame=on_frame, on_start=on_start,
                                   detect_every=detect_every, half_life=half_life, max_missed=max_missed,
                                   shots=shots, persons=persons, all_poses=all_poses, stop_signals=signals,
                                   **grouping)
        except VideoError as exc:
            fail(str(exc))
        except KeyboardInterrupt:  # raised by a callback before the first frame
            fail("interrupted before any frame was analysed", code=130)
        if print_summary:
            _print_video_summary(report)
        written = [shown(p) for p in (csv_out, jsonl_out, out, summary_json, plot) if p is not None]
        err_console.print(f"{report.processed} frames analysed in {report.seconds:.1f} s "
                          f"({report.processing_fps:.1f} frames/s), {len(report.persons())} person(s), "
                          f"{len(report.tracks)} track(s), {report.shots} shot(s)"
                          + (f", {report.dropped} frames dropped" if report.dropped else "")
                          + (f"; written: {', '.join(written)}" if written else ""), highlight=False,
                          soft_wrap=True)
        for warning in report.warnings:
            err_console.print(f"[bold yellow]warning:[/] {shown(warning)}", highlight=False, soft_wrap=True)
        if report.error:
            fail(f"{report.error} (outputs hold the {report.processed} frames analysed before it)", code=1)
    if report.interrupted:
        # The command ends here: a further Ctrl-C or SIGTERM could only break into the interpreter's
        # shutdown (a stray traceback, the exit status of a kill), so they are ignored from now on.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        how, code = ("terminated (SIGTERM)", 143) if report.interrupted_by == "SIGTERM" else ("interrupted", 130)
        fail(f"{how} after {report.processed} frames; the outputs hold those frames", code=code)


def _print_video_summary(report) -> None:
    """Persons first (time on screen, dominant emotion, share of time per emotion), then tracks; 80 columns."""
    from rich import box

    if not report.tracks:
        console.print(f"[bold]{shown(report.source)}[/]: no face found in {report.processed} frames",
                      highlight=False, soft_wrap=True)
        return
    persons = report.persons()
    # The name on a line of its own: as a table title, a long one was wrapped and cut off.
    console.print(f"[bold]{shown(report.source)}[/]: {len(persons)} person(s) in {len(report.tracks)} track(s), "
                  f"{report.shots} shot(s), {report.processed} frames", highlight=False, soft_wrap=True)

    def table(first: str) -> Table:
        t = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True)
        t.add_column(first, justify="right", no_wrap=True)
        t.add_column("time (s)", justify="right", no_wrap=True)
        t.add_column("dominant", no_wrap=True)
        for e in EMOTIONS:
            t.add_column(SHORT_EMOTION[e], justify="right", no_wrap=True)
        return t

    def cells(d: dict) -> list[str]:
        if d["dominant"] is None:
            return ["-", *("-" for _ in EMOTIONS)]
        return [f"{d['dominant']} {d['mean_scores'][d['dominant']]:.2f}",
                *(f"{round(100 * d['shares'][e])}" for e in EMOTIONS)]

    people = table("person")
    for p in persons:
        d = p.to_dict(report.frame_seconds)
        name = f"P{d['person']}" + ("" if d["identified"] else "*")
        people.add_row(name, f"{d['seconds_on_screen']:.1f}", *cells(d))
    console.print(people)
    tracks = table("track")
    for stats in sorted(report.tracks.values(), key=lambda s: s.track_id):
        d = stats.to_dict()
        who = "" if d["person"] is None else f"P{d['person']} "
        tracks.add_row(f"{who}#{d['track_id']}", f"{d['start']:.1f}-{d['end']:.1f}", *cells(d))
    console.print(tracks)
    notes = ["% of counted frames per top emotion (smoothed); dominant = highest mean score"]
    if any(not p.identified for p in persons):
        notes.append("P*: a track no face descriptor could name (small or turned face), a person of its own")
    left = report.left_out
    if left and not report.all_poses:
        notes.append(f"{left} face-frames left out as not frontal (|yaw| > 30 or no landmarks); --all-poses "
                     "counts them")
    for note in notes:
        console.print(note, style="dim", highlight=False)


SHORT_EMOTION = {"angry": "ang", "disgust": "dis", "fear": "fea", "happy": "hap", "sad": "sad",
                 "surprise": "sur", "neutral": "neu"}


@app.command("detectors")
def detectors_command() -> None:
    """List the face detector backends for --detector."""
    from emolens.faces.detect import DEFAULT_DETECTOR, list_detectors

    _need_stdout()
    table = Table("name", "description")
    for name, description in list_detectors().items():
        table.add_row(name + (" (default)" if name == DEFAULT_DETECTOR else ""), description)
    console.print(table)


# ---------------------------------------------------------------------------------------
# archives: batch


@app.command("batch")
def batch_command(
    paths: list[str] = typer.Argument(..., metavar="INPUTS", help="Photos and videos: files, folders "
                                      "(searched recursively; hidden files and symlinked folders skipped), glob "
                                      "patterns (quote them) and manifests (.txt: one path a line; .csv or .parquet: "
                                      "a 'path' column)."),
    out: str = typer.Option(..., "--out", "-o", metavar="DIR", help="Results folder: faces/ (Parquet), "
                             "inputs.parquet, summary.csv. Rerunning into it resumes."),
    detector: Optional[str] = typer.Option(None, "--detector", "-d", help="Face detector backend "
                                           "(default: blazeface; see `emolens detectors`)."),
    align: bool = typer.Option(True, "--align/--no-align", help="Align faces by their landmarks."),
    crop: Optional[str] = typer.Option(None, help="Face framing by name: aligned, box, box-wide "
                                       "(overrides --align)."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Exported .onnx model "
                                         "(default: the shipped model)."),
    max_faces: Optional[int] = typer.Option(None, callback=_in_range("max_faces"),
                                            help="Keep only the N largest faces per picture or frame."),
    detect_side: int = typer.Option(640, "--detect-side", callback=_in_range("detect_side"),
                                    help="Longest side of the copy the detector runs on."),
    every: int = typer.Option(1, "--every", callback=_in_range("every"), help="Analyse every Nth video frame."),
    detect_every: int = typer.Option(5, "--detect-every", callback=_in_range("detect_every"),
                                     help="Run the face detector every N analysed video frames."),
    half_life: float = typer.Option(0.5, "--half-life", callback=_in_range("half_life"),
                                    help="Smoothing half-life in seconds (0: no smoothing)."),
    max_missed: int = typer.Option(15, "--max-missed", callback=_in_range("max_missed"),
                                   help="Analysed frames a face may go unseen before its track ends."),
    same_person: Optional[float] = typer.Option(None, "--same-person", metavar="DISTANCE",
                                                callback=_in_range("same_person"),
                                                help="Videos: " + SAME_PERSON_HELP),
    segment_seconds: float = typer.Option(60.0, "--segment-seconds", min=0.0, help="Cut videos into segments "
                                          "of about this length that run in parallel (0: never cut)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", metavar="tcp://HOST:PORT", help="Run on this "
                                            "Dask scheduler (default: a local cluster on 127.0.0.1)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Local cluster: worker processes "
                                          "(default: one per core; one thread each)."),
    memory_limit: str = typer.Option("auto", "--memory-limit", help="Local cluster: memory per worker "
                                     "(e.g. 1GB; auto: the machine's memory shared out)."),
    photos_per_task: int = typer.Option(32, "--photos-per-task", min=1, help="Photos per task and per "
                                        "Parquet part (about)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no closing summary; errors only."),
) -> None:
    r"""Analyse whole archives of photos and videos on Dask (this machine or a cluster) into Parquet.

    Rows are those of `emolens predict --json` (photos) and `emolens video --csv` (videos) with the same options. Rerun the same command to resume: inputs done with the same file and options are skipped. A bad input becomes an error row and the batch goes on; the exit code is 1 when any input failed. Needs the batch extra: pip install 'emolens[batch]'. See docs/batch.md.
    """
    from emolens.batch import missing_extra

    if "" in paths or out == "":       # an unset shell variable; Path("") would be the current folder
        fail(f"{'--out' if out == '' else 'an input'} is an empty string (an unset shell variable?); give a path")
    if problem := missing_extra():
        fail(problem)
    from emolens.batch.engine import EngineError
    from emolens.batch.inputs import InputError
    from emolens.batch.run import run_batch
    from emolens.batch.settings import AnalysisOptions
    from emolens.batch.storage import OutputError

    options = AnalysisOptions(detector=detector, align=align, crop=crop, model=None if model is None else str(model),
                              max_faces=max_faces, detect_side=detect_side, every=every, detect_every=detect_every,
                              half_life=half_life, max_missed=max_missed,
                              **({} if same_person is None else {"same_person": same_person}))
    try:
        report = run_batch(paths, out, options, scheduler=scheduler, workers=workers,
                           memory_limit=memory_limit,
                           segment_seconds=segment_seconds, photos_per_task=photos_per_task, progress=not quiet,
                           console=err_console)
    except (InputError, OutputError, EngineError, ValueError) as exc:
        fail(str(exc))
    if not quiet:
        err_console.print(f"{report.inputs} input(s): {report.analysed} read by this run, {report.skipped} done by an "
                          f"earlier run, {report.failed} in error; {report.frames} frames in {report.seconds:.1f} s; "
                          f"results in {shown(report.out)}", highlight=False, soft_wrap=True)
    if report.interrupted:
        how, code = ("terminated (SIGTERM)", 143) if report.interrupted_by == "SIGTERM" else ("interrupted", 130)
        fail(f"{how}; what finished is kept: rerun the same command to do the rest", code=code)
    if report.failed:
        if not quiet:
            err_console.print(f"{report.failed} of {report.inputs} input(s) failed (see the status and message "
                              "columns of inputs.parquet)", highlight=False)
        raise typer.Exit(1)


# ---------------------------------------------------------------------------------------
# service: serve


@app.command("serve")
def serve_command(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on. 127.0.0.1 (default) and "
                             "localhost: this machine only; 0.0.0.0 or a LAN address: other machines too, "
                             "which needs an API key (or --insecure)."),
    port: int = typer.Option(8000, "--port", "-p", callback=_in_range("port"), help="TCP port."),
    api_key_file: Optional[Path] = typer.Option(None, "--api-key-file", metavar="PATH",
                                                help="Require the key in this file (one line) on every request: "
                                                "header X-API-Key (or Authorization: Bearer KEY); in a browser "
                                                "open /?api_key=KEY once. The way to pass a key (or "
                                                "EMOLENS_API_KEY): a key on the command line shows in `ps`."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="EMOLENS_API_KEY", show_envvar=True,
                                          help="The key itself. On the command line other users of this "
                                          "machine can read it (`ps`): prefer --api-key-file or the "
                                          "environment variable."),
    insecure: bool = typer.Option(False, "--insecure", help="Allow a non-loopback --host without an API key "
                                  "(anyone who can reach the port can use the server)."),
    detector: Optional[str] = typer.Option(None, "--detector", "-d", help="Default face detector (requests "
                                           "may choose another; see `emolens detectors`)."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Exported .onnx model "
                                         "(default: the shipped model)."),
    workers_threads: Optional[int] = typer.Option(None, "--workers-threads", callback=_in_range("workers_threads"),
                                                  help="Analysis threads (default: one per core, at most 2). "
                                                  "Each analysis runs single-threaded when there are as many "
                                                  "threads as cores."),
    max_upload_mb: float = typer.Option(10.0, "--max-upload-mb", callback=_in_range("max_upload_mb"),
                                        help="Largest accepted upload (larger: 413)."),
    max_buffered_mb: Optional[float] = typer.Option(None, "--max-buffered-mb", callback=_in_range("max_buffered_mb"),
                                                    help="Upload bytes held in memory at once, all requests "
                                                    "together (more: 503, retry; default: 64 or 4 uploads, "
                                                    "whichever is larger)."),
    ws_max_mb: float = typer.Option(2.0, "--ws-max-mb", callback=_in_range("ws_max_mb"), help="Largest accepted "
                                    "WebSocket message (one camera frame; larger: the connection closes with "
                                    "1009)."),
    max_pending: int = typer.Option(64, "--max-pending", callback=_in_range("max_pending"), help="Analyses "
                                    "waiting or running before new uploads get 503 (busy)."),
    max_streams: int = typer.Option(8, "--max-streams", callback=_in_range("max_streams"), help="WebSocket "
                                    "streams open at once (more: closed with 1013, try again later)."),
    ws_idle_seconds: float = typer.Option(30.0, "--ws-idle-seconds", callback=_in_range("ws_idle_seconds"),
                                          help="Close a stream that sends no frame (or reads no reply) for "
                                          "this long (code 4408), so idle connections cannot hold every slot."),
    access_log: bool = typer.Option(True, "--access-log/--no-access-log", help="Log one line per request "
                                    "(never the query string)."),
) -> None:
    """Serve the HTTP API and the browser page (photo upload, live camera).

    POST /v1/analyze (a picture -> the JSON of `emolens predict --json`), WS /v1/stream (camera frames -> tracked, smoothed faces), GET /v1/health, GET /v1/model, API docs at /docs, the page at /.

    Everything, the docs included, is served by emolens itself: no internet needed. Listens on 127.0.0.1 unless told otherwise. Needs the serve extra: pip install 'emolens[serve]'.
    """
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError:
        fail("this command needs the serve extra: pip install 'emolens[serve]'")
    from emolens.faces.detect import UnknownDetectorError
    from emolens.runtime import ModelError
    from emolens.serve.engine import MiB, Engine, ServeConfig, default_workers
    from emolens.serve.security import ApiKeyError, bind_problem, read_api_key_file

    source = ctx.get_parameter_source("api_key")   # typer's own click: compare the source by name
    key_on_command_line = getattr(source, "name", None) == "COMMANDLINE"
    try:
        if api_key_file is not None:
            if api_key is not None:
                fail("give the API key one way: --api-key-file, or --api-key / EMOLENS_API_KEY, not both")
            api_key = read_api_key_file(api_key_file)
        options = {} if detector is None else {"detector": detector}
        config = ServeConfig(api_key=api_key, model=model, workers=workers_threads or default_workers(),
                             max_upload_bytes=int(max_upload_mb * MiB), ws_max_bytes=int(ws_max_mb * MiB),
                             max_buffered_bytes=None if max_buffered_mb is None else int(max_buffered_mb * MiB),
                             max_pending=max_pending, max_streams=max_streams, ws_idle_seconds=ws_idle_seconds,
                             **options)
        problem = bind_problem(host, config.api_key, insecure)   # the key exactly as the server enforces it
    except (ApiKeyError, ValueError) as exc:
        fail(str(exc))
    if problem:
        fail(problem)
    if key_on_command_line:
        err_console.print("[bold yellow]note:[/] a key given with --api-key is visible to other users of this "
                          "machine (ps); prefer --api-key-file PATH or the EMOLENS_API_KEY environment variable",
                          highlight=False)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("emolens.serve.access").setLevel(logging.INFO if access_log else logging.WARNING)
    err_console.print("loading the models...", highlight=False)
    try:
        engine = Engine(config)
    except (ModelError, UnknownDetectorError, ValueError) as exc:
        fail(str(exc))
    from emolens.serve.app import create_app

    application = create_app(config, engine)
    host_shown = f"[{host}]" if ":" in host else host
    err_console.print(f"emolens serving on http://{escape(host_shown)}:{port}/ (API docs: /docs; {config.workers} "
                      f"analysis thread(s)){'; API key required' if config.api_key else ''}; Ctrl-C stops",
                      highlight=False)
    uvicorn.run(application, host=host, port=port, ws_max_size=config.ws_max_bytes, access_log=False,
                log_level="warning", timeout_graceful_shutdown=3)
    engine.close()


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
