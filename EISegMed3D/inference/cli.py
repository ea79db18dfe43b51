"""eiseg-med3d: segment a scan from clicks, run the demo, describe a model, show a data folder's progress.

    eiseg-med3d segment scan.nii.gz --click 120,88,40 --click 131,90,41:- [--out label.nii.gz]
    eiseg-med3d segment scan.nii.gz --box roi.mrk.json --lasso-file outline.mrk.json --scribble-file stroke.json:-
    eiseg-med3d demo [--out demo_out]
    eiseg-med3d info [--model PATH]
    eiseg-med3d progress DATA_DIR [--recursive]
    eiseg-med3d evaluate DATA_DIR ... (the training package's benchmark; see `eiseg-med3d evaluate --help`)
    eiseg-med3d adapt DATA_DIR [--minutes N] [--from MODEL] [--resume] (fine-tune on the folder's finished scans)

Expected problems (unreadable scan, bad click, missing model, ...) print one line
"eiseg-med3d: error: ..." on stderr and exit with code 2.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from . import prompt_files
from .errors import ClickError, EISegError, ProgressError, SaveError

PROG = "eiseg-med3d"
EXIT_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """Usage mistakes too end in one line (plus a pointer to --help), like every other error."""

    def error(self, message):
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


class _ClickAction(argparse.Action):
    """--click and --click-ras append to one list, so mixed clicks keep the order they were given in."""

    def __call__(self, parser, namespace, value, option_string=None):
        clicks = getattr(namespace, "clicks", None) or []
        clicks.append(("ras" if option_string == "--click-ras" else "ijk", value))
        namespace.clicks = clicks


def parse_click(text: str, kind: str = "ijk") -> tuple[tuple[float, float, float], bool]:
    """'i,j,k' or 'i,j,k:+' / 'i,j,k:-' -> ((x, y, z), positive). Raises ClickError naming the text."""
    where, _, sign = text.strip().partition(":")
    if sign not in ("", "+", "-"):
        raise ClickError(f"click {text!r}: the sign after ':' must be + or -")
    try:
        values = tuple(float(v) for v in where.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        axes = "r,a,s" if kind == "ras" else "i,j,k"
        raise ClickError(f"click {text!r}: expected three numbers {axes} (optionally followed by :+ or :-)")
    return values, sign != "-"


def _join_negative_values(argv: list[str]) -> list[str]:
    """'--click-ras -12,30,4' -> '--click-ras=-12,30,4' (argparse would take '-12,...' for an option)."""
    joined = []
    for token in argv:
        if joined and joined[-1] in ("--click", "--click-ras", "--box", "--box-ras") and re.match(r"-[\d.]", token):
            joined[-1] = f"{joined[-1]}={token}"
        else:
            joined.append(token)
    return joined


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="model package folder (model.json) or legacy .pdmodel; "
                        "default: the bundled model")
    parser.add_argument("--backend", default="auto", choices=("auto", "paddle", "onnx"), help="model runtime")
    parser.add_argument("--device", default="auto", choices=("auto", "gpu", "cpu"), help="where the model runs")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads of the runtime (default: all cores)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Run '%(prog)s COMMAND --help' for the options of a command.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    segment = commands.add_parser("segment", help="clicks on a scan -> label file on the scan's exact grid",
                                  description="Segment one object of a scan from clicks and write it into the scan's "
                                  "label map. An existing label file keeps all its other label values: the object "
                                  "replaces only the voxels of its own --label-value, and where it overlaps another "
                                  "label that voxel keeps the other label unless --overwrite-other-labels is given. "
                                  "The whole previous file is kept as <stem>_label.bak.nii.gz.",
                                  epilog="A RAS value starting with '-' needs '=': --click-ras=-12.5,30,4:-")
    segment.add_argument("image", type=Path, help="scan: NIfTI, NRRD, MHA/MHD file or a DICOM series folder")
    segment.add_argument("--click", action=_ClickAction, dest="clicks", metavar="I,J,K[:+|-]", default=None,
                         help="click at voxel index i,j,k (0-based); ':-' makes it negative (repeatable)")
    segment.add_argument("--click-ras", action=_ClickAction, dest="clicks", metavar="R,A,S[:+|-]",
                         help="click at RAS millimetres as shown by 3D Slicer (repeatable)")
    prompt_files.add_arguments(segment)
    segment.add_argument("--out", type=Path, default=None,
                         help="label file (default: <scan stem>_label.nii.gz next to the scan; previous kept as .bak)")
    segment.add_argument("--label-value", type=int, default=1,
                         help="value of the object in the label map (1..65535); in an existing label file only this "
                              "value's voxels are replaced, every other label value stays")
    segment.add_argument("--overwrite-other-labels", action="store_true",
                         help="where the object overlaps voxels of other label values, give them to the object "
                              "(default: they keep their label)")
    _model_options(segment)

    demo = commands.add_parser("demo", help="the model on the bundled sample: clicks, label, progress, PNG, Dice",
                               description="Segment vertebra L3 of the bundled spine CT with three scripted clicks.")
    demo.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default: ./demo_out)")
    _model_options(demo)

    info = commands.add_parser("info", help="model manifest summary, chosen backend and device",
                               description="Load a model and describe it.")
    _model_options(info)

    progress = commands.add_parser("progress", help="table of a data folder's scans and their progress",
                                   description="Show the scans of a data folder with status, clicks and time.")
    progress.add_argument("data_dir", type=Path, metavar="DATA_DIR")
    progress.add_argument("--recursive", action="store_true", help="include scans in sub-folders at any depth")
    repair = progress.add_mutually_exclusive_group()
    repair.add_argument("--restore-backup", action="store_true",
                        help="after a corrupt progress file: start again from its backup (one change behind)")
    repair.add_argument("--start-fresh", action="store_true",
                        help="after a corrupt progress file: start an empty one (the old file stays aside)")
    progress.add_argument("--force", action="store_true",
                          help="with --restore-backup / --start-fresh: also replace a progress file that is fine "
                               "(it is kept aside); without it they refuse, so nothing is undone by accident")

    commands.add_parser("evaluate", add_help=False, help="benchmark with the simulated user (training package); "
                        "see 'evaluate --help'")
    commands.add_parser("adapt", add_help=False, help="fine-tune the model on the folder's finished scans "
                        "(training package); see 'adapt --help'")
    return parser


# --- commands ---------------------------------------------------------------------------------------------------

def _load_model(args):
    from .model import load_model

    return load_model(args.model, backend=args.backend, device=args.device, threads=args.threads)


def _describe_click(number: int, ijk, positive: bool, result) -> str:
    where = ", ".join(f"{v:.1f}" for v in ijk)
    return (f"click {number} ({'+' if positive else '-'}) at voxel (i, j, k) ({where}): "
            f"{result.latency_s * 1000:.0f} ms (model {result.model_s * 1000:.0f} ms, {result.runs} run"
            f"{'s' if result.runs != 1 else ''}), object {int(result.mask.sum())} voxels")


def _check_clicks_inside(volume, clicks: list, texts: list) -> None:
    """Every click lies inside the scan (checked before the model loads); the error quotes the click as given."""
    for (kind, point, _), (_, text) in zip(clicks, texts):
        ijk = volume.ras_to_ijk_point(point) if kind == "ras" else point
        if not volume.contains_ijk(ijk):
            raise ClickError(f"click {text!r} = voxel (i, j, k) ({', '.join(f'{v:.6g}' for v in ijk)}) is outside "
                             f"the scan {volume.path} of size (i, j, k) {volume.shape[::-1]}")


def _checked_output(args, volume) -> Path:
    """The label file to write: its folder writable and an existing file readable on the scan's grid."""
    from .atomic import check_writable
    from .datafolder import label_path, load_label

    out = args.out if args.out is not None else label_path(args.image)
    check_writable(out)
    if out.exists():
        load_label(volume, out)  # refused now (wrong grid, bad values) rather than after the model ran
    return out


def _describe_merge(merged, value: int) -> str | None:
    if merged.kept_voxels:
        return (f"kept {merged.kept_voxels} voxels of the object that belong to other labels (value {value} not "
                "written there; --overwrite-other-labels gives them to this object)")
    if merged.overwritten_voxels:
        return f"overwrote {merged.overwritten_voxels} voxels of other labels with value {value}"
    return None


def cmd_segment(args) -> int:
    from .datafolder import save_object
    from .session import InteractiveSession
    from .volume import Volume

    if not args.clicks:
        raise ClickError("give at least one --click i,j,k or --click-ras r,a,s (or --box, --lasso-file, --scribble-file)")
    given = [(kind, text) for kind, text in args.clicks if kind not in prompt_files.KINDS]
    clicks = [(kind, *parse_click(text, kind)) for kind, text in given]
    prompts = {index: prompt_files.prompt_calls(kind, text) for index, (kind, text) in enumerate(args.clicks)
               if kind in prompt_files.KINDS}
    if not 1 <= args.label_value <= 65535:
        raise ClickError(f"--label-value {args.label_value}: must be 1..65535")
    volume = Volume.from_file(args.image)
    _check_clicks_inside(volume, clicks, given)
    for call in (c for calls in prompts.values() for c in calls):
        prompt_files.check_inside(volume, call)
    out = _checked_output(args, volume)
    model = _load_model(args)
    print(f"model: {model.describe()}")
    session = InteractiveSession(model)
    session.set_volume(volume)
    pending_clicks = iter(clicks)
    for index in range(len(args.clicks)):  # clicks and other prompts in the order given
        for call in prompts.get(index, ()):
            result = getattr(session, call.method)(**call.kwargs)
            print(prompt_files.describe(call, session, result))
        if index not in prompts:
            kind, point, positive = next(pending_clicks)
            result = session.add_click(**{kind: point}, positive=positive)
            print(_describe_click(len(session.clicks), session.clicks[-1].ijk, positive, result))
    written, merged = save_object(volume, session.mask, args.label_value, out, args.overwrite_other_labels)
    print(f"wrote {written} (this object: label value {args.label_value})")
    note = _describe_merge(merged, args.label_value)
    if note:
        print(note)
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(args.out, _load_model(args))
    return 0


def cmd_info(args) -> int:
    from .readable import readable_lines

    model = _load_model(args)
    manifest = model.manifest
    items = [
        ("model", f"{manifest.get('name')} - {manifest.get('description', '')}"),
        ("path", str(model.path)),
        ("backend", model.backend),
        ("device", model.device),
        ("threads", str(model.threads)),
        ("patch shape", f"{tuple(manifest['patch_shape'])} ({manifest.get('axis_order', 'kji')} order)"),
        ("spacing policy", manifest.get("spacing_policy")),
        ("normalization", manifest.get("normalization")),
        ("click radius", f"{manifest['click_radius_mm']} mm" if "click_radius_mm" in manifest
         else f"{manifest.get('click_radius_voxels')} voxels"),
        ("threshold", str(manifest.get("threshold"))),
        ("training", manifest.get("training")),
        ("validation", manifest.get("validation")),
    ]
    for line in readable_lines(items):
        print(line)
    return 0


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}:{secs:02d}"


def _repair_progress(progress, args) -> None:
    from .progress import HealthyFileError

    try:
        progress.start_fresh(from_backup=args.restore_backup, force=args.force)
    except HealthyFileError as exc:
        option = "--restore-backup" if args.restore_backup else "--start-fresh"
        raise HealthyFileError(f"{progress.path}: the progress file is fine, {option} would undo work and was not "
                               f"done; add --force to do it anyway (the current file is kept aside as "
                               f"EISegMed3D.replaced-<time>.json)") from exc


def _no_scans_message(folder: Path, recursive: bool) -> str:
    from .datafolder import SCAN_SUFFIXES

    kinds = ", ".join(f"*{s}" for s in sorted(SCAN_SUFFIXES))
    where = "at any depth" if recursive else "in it or as DICOM series in its direct sub-folders (--recursive: any depth)"
    return f"no scans found in {folder}: scans are {kinds} files and DICOM series folders, {where}"


def cmd_progress(args) -> int:
    from .datafolder import list_scans
    from .progress import NewerVersionError, ProgressFile

    folder = args.data_dir.absolute()
    if args.force and not (args.restore_backup or args.start_fresh):
        raise EISegError("--force only goes with --restore-backup or --start-fresh")
    scans = list_scans(folder, recursive=args.recursive)
    progress = ProgressFile(folder)
    if args.restore_backup or args.start_fresh:
        _repair_progress(progress, args)
    try:
        rows = progress.table(scans)
    except NewerVersionError:
        raise
    except ProgressError as exc:
        raise ProgressError(f"{exc}. From the command line: eiseg-med3d progress {args.data_dir} "
                            "--restore-backup (or --start-fresh)") from exc
    if not rows:
        print(_no_scans_message(folder, args.recursive))
        return 0
    header = ("scan", "status", "clicks", "time", "label")
    cells = [header] + [(r.rel, r.status, str(r.clicks), _duration(r.seconds), "yes" if r.has_label else "no")
                        for r in rows]
    widths = [max(len(row[c]) for row in cells) for c in range(len(header))]
    for row in cells:
        print("  ".join(cell.ljust(w) if c < 2 else cell.rjust(w) for c, (cell, w) in enumerate(zip(row, widths))).rstrip())
    finished, total = progress.summary(scans)
    print(f"{finished} of {total} scans finished ({progress.path})")
    return 0


def _training_command(module: str, argv: list[str]) -> int:
    """Run a sub-command that lives in the repository's training package (not shipped inside Slicer)."""
    import importlib

    name = module.rsplit(".", 1)[-1]
    try:
        main = importlib.import_module(module).main
    except ImportError as exc:
        raise EISegError(f"{name} needs the 'training' package of the EISeg-Med3D repository "
                         f"(install the repository with 'pip install .[train]' or run from its root): {exc}") from exc
    return int(main(argv) or 0)


def cmd_evaluate(argv: list[str]) -> int:
    return _training_command("training.evaluate", argv)


def cmd_adapt(argv: list[str]) -> int:
    return _training_command("training.adapt", argv)


COMMANDS = {"segment": cmd_segment, "demo": cmd_demo, "info": cmd_info, "progress": cmd_progress}


def _fail(message: str, code: int = EXIT_ERROR) -> int:
    print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "evaluate":  # its arguments belong to training.evaluate's own parser
            return cmd_evaluate(argv[1:])
        if argv and argv[0] == "adapt":  # likewise training.adapt's
            return cmd_adapt(argv[1:])
        args = build_parser().parse_args(_join_negative_values(argv))
        return COMMANDS[args.command](args)
    except (EISegError, SaveError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


if __name__ == "__main__":
    sys.exit(main())
