"""eiseg-med3d: segment a scan from clicks, run the demo, describe a model, show a data folder's progress.

    eiseg-med3d segment scan.nii.gz --click 120,88,40 --click 131,90,41:- [--out label.nii.gz]
    eiseg-med3d demo [--out demo_out]
    eiseg-med3d info [--model PATH]
    eiseg-med3d progress DATA_DIR [--recursive]
    eiseg-med3d evaluate DATA_DIR ... (the training package's benchmark; see `eiseg-med3d evaluate --help`)

Expected problems (unreadable scan, bad click, missing model, ...) print one line
"eiseg-med3d: error: ..." on stderr and exit with code 2.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

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
        if joined and joined[-1] in ("--click", "--click-ras") and re.match(r"-[\d.]", token):
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
                                  description="Segment one object of a scan from clicks and write its label map.",
                                  epilog="A RAS value starting with '-' needs '=': --click-ras=-12.5,30,4:-")
    segment.add_argument("image", type=Path, help="scan: NIfTI, NRRD, MHA/MHD file or a DICOM series folder")
    segment.add_argument("--click", action=_ClickAction, dest="clicks", metavar="I,J,K[:+|-]", default=None,
                         help="click at voxel index i,j,k (0-based); ':-' makes it negative (repeatable)")
    segment.add_argument("--click-ras", action=_ClickAction, dest="clicks", metavar="R,A,S[:+|-]",
                         help="click at RAS millimetres as shown by 3D Slicer (repeatable)")
    segment.add_argument("--out", type=Path, default=None,
                         help="label file (default: <scan stem>_label.nii.gz next to the scan; previous kept as .bak)")
    segment.add_argument("--label-value", type=int, default=1, help="value of the object in the label map (1..65535)")
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

    commands.add_parser("evaluate", add_help=False, help="benchmark with the simulated user (training package); "
                        "see 'evaluate --help'")
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


def cmd_segment(args) -> int:
    from .datafolder import label_path
    from .session import InteractiveSession
    from .volume import Volume

    if not args.clicks:
        raise ClickError("give at least one --click i,j,k or --click-ras r,a,s")
    clicks = [(kind, *parse_click(text, kind)) for kind, text in args.clicks]
    if not 1 <= args.label_value <= 65535:
        raise ClickError(f"--label-value {args.label_value}: must be 1..65535")
    volume = Volume.from_file(args.image)
    for (kind, point, _), (_, text) in zip(clicks, args.clicks):  # all clicks checked before the model loads
        ijk = volume.ras_to_ijk_point(point) if kind == "ras" else point
        if not volume.contains_ijk(ijk):
            raise ClickError(f"click {text!r} = voxel (i, j, k) ({', '.join(f'{v:.6g}' for v in ijk)}) is outside "
                             f"the scan {volume.path} of size (i, j, k) {volume.shape[::-1]}")
    out = args.out if args.out is not None else label_path(args.image)
    if not out.parent.is_dir():
        raise SaveError(f"{out}: cannot save, folder {out.parent} does not exist")
    model = _load_model(args)
    print(f"model: {model.describe()}")
    session = InteractiveSession(model)
    session.set_volume(volume)
    for number, (kind, point, positive) in enumerate(clicks, start=1):
        result = session.add_click(**{kind: point}, positive=positive)
        print(_describe_click(number, session.clicks[-1].ijk, positive, result))
    written = volume.write_label(out, session.mask.astype("uint16") * args.label_value)
    print(f"wrote {written}")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(args.out, _load_model(args))
    return 0


def _short_json(value) -> str:
    return json.dumps(value, sort_keys=True) if value not in (None, {}, []) else "-"


def cmd_info(args) -> int:
    model = _load_model(args)
    manifest = model.manifest
    lines = [
        ("model", f"{manifest.get('name')} - {manifest.get('description', '')}"),
        ("path", str(model.path)),
        ("backend", model.backend),
        ("device", model.device),
        ("threads", str(model.threads)),
        ("patch shape", f"{tuple(manifest['patch_shape'])} ({manifest.get('axis_order', 'kji')} order)"),
        ("spacing policy", _short_json(manifest.get("spacing_policy"))),
        ("normalization", _short_json(manifest.get("normalization"))),
        ("click radius", f"{manifest['click_radius_mm']} mm" if "click_radius_mm" in manifest
         else f"{manifest.get('click_radius_voxels')} voxels"),
        ("threshold", str(manifest.get("threshold"))),
        ("training", _short_json(manifest.get("training"))),
        ("validation", _short_json(manifest.get("validation"))),
    ]
    width = max(len(key) for key, _ in lines)
    for key, value in lines:
        print(f"{key.ljust(width)}  {value}")
    return 0


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}:{secs:02d}"


def cmd_progress(args) -> int:
    from .datafolder import list_scans
    from .progress import ProgressFile

    folder = args.data_dir.absolute()
    scans = list_scans(folder, recursive=args.recursive)
    progress = ProgressFile(folder)
    if args.restore_backup or args.start_fresh:
        progress.start_fresh(from_backup=args.restore_backup)
    try:
        rows = progress.table(scans)
    except ProgressError as exc:
        raise ProgressError(f"{exc}. From the command line: eiseg-med3d progress {args.data_dir} "
                            "--restore-backup (or --start-fresh)") from exc
    header = ("scan", "status", "clicks", "time", "label")
    cells = [header] + [(r.rel, r.status, str(r.clicks), _duration(r.seconds), "yes" if r.has_label else "no")
                        for r in rows]
    widths = [max(len(row[c]) for row in cells) for c in range(len(header))]
    for row in cells:
        print("  ".join(cell.ljust(w) if c < 2 else cell.rjust(w) for c, (cell, w) in enumerate(zip(row, widths))).rstrip())
    finished, total = progress.summary(scans)
    print(f"{finished} of {total} scans finished ({progress.path})")
    return 0


def cmd_evaluate(argv: list[str]) -> int:
    try:
        from training.evaluate import main as evaluate_main
    except ImportError as exc:
        raise EISegError("evaluate needs the 'training' package of the EISeg-Med3D repository "
                         f"(install the repository with 'pip install .[train]' or run from its root): {exc}") from exc
    return int(evaluate_main(argv) or 0)


COMMANDS = {"segment": cmd_segment, "demo": cmd_demo, "info": cmd_info, "progress": cmd_progress}


def _fail(message: str, code: int = EXIT_ERROR) -> int:
    print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "evaluate":  # its arguments belong to training.evaluate's own parser
            return cmd_evaluate(argv[1:])
        args = build_parser().parse_args(_join_negative_values(argv))
        return COMMANDS[args.command](args)
    except (EISegError, SaveError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


if __name__ == "__main__":
    sys.exit(main())
