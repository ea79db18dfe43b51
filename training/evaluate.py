"""Benchmark the interactive model and the classic baselines with the protocol's simulated user.

    python -m training.evaluate DATA_DIR [DATA_DIR ...] --model PATH --max-clicks 20 \\
        --baselines growcut,random_walker --split training/split.json --subset val --out DIR

Each DATA_DIR holds a dataset.json (cases[].image / label / label_names). Writes DIR/evaluation.json,
DIR/evaluation.md and DIR/dice_vs_clicks.png. `eiseg-med3d evaluate` calls main() with the same arguments.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from training.evaluation.prompt_user import FIRST_PROMPTS
from training.evaluation.robot import EDGE_DEPTH_MM, FIRST_CLICKS


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The evaluation arguments (also used as the `eiseg-med3d evaluate` sub-command's parser)."""
    parser = parser or argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dirs", nargs="+", type=Path, metavar="DATA_DIR", help="data folder with a dataset.json")
    parser.add_argument("--model", default=None, help="model folder (model.json) or .pdmodel; default: the bundled model")
    parser.add_argument("--backend", default="auto", help="auto, paddle or onnx")
    parser.add_argument("--device", default="auto", help="auto, cpu or gpu")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads of the model runtime")
    parser.add_argument("--no-model", action="store_true", help="evaluate the baselines only")
    parser.add_argument("--max-clicks", type=int, default=20)
    parser.add_argument("--baselines", default=None, help="comma list of growcut, random_walker; '' for none "
                        "(default: growcut with clicks first, none with another first prompt)")
    parser.add_argument("--variants", default="mm", help="click distance variants: mm (primary), voxel, or mm,voxel")
    parser.add_argument("--first-click", default="deepest", choices=FIRST_CLICKS,
                        help=f"deepest: the protocol's first click; edge: just inside the object's edge "
                        f"({EDGE_DEPTH_MM:g} mm), to test what the original's users reported")
    parser.add_argument("--first-prompt", default="click", choices=FIRST_PROMPTS,
                        help="click: the protocol; box / lasso: first a box or lasso on the object's largest slice "
                        "across the scan's thick-slice axis; scribble: first a stroke along the skeleton of its widest "
                        "axis-plane cross-section; then the protocol's clicks (model only)")
    parser.add_argument("--split", type=Path, default=None, help='split.json {"train": [...], "val": [...]}; default: all cases')
    parser.add_argument("--subset", default="val", help="which list of the split to evaluate")
    parser.add_argument("--structures", default=None, help="comma list: only label names containing one of these")
    parser.add_argument("--min-voxels", type=int, default=1, help="skip objects smaller than this")
    parser.add_argument("--out", type=Path, default=Path("evaluation"), help="output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _split_cases(split: Path | None, subset: str):
    if split is None:
        return None
    if not split.is_file():
        raise SystemExit(f"{split}: split file not found")
    lists = json.loads(split.read_text(encoding="utf-8"))
    if subset not in lists or not isinstance(lists[subset], list):
        raise SystemExit(f"{split}: has no list {subset!r} (lists: {', '.join(k for k, v in lists.items() if isinstance(v, list))})")
    return lists[subset]


def _baselines(args) -> list[str]:
    if args.baselines is None:
        return ["growcut"] if args.first_prompt == "click" else []
    return _comma(args.baselines)


def _comma(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def run(args: argparse.Namespace, command: str | None = None) -> dict:
    """Evaluate as `args` says and write the reports; returns the written paths."""
    from training.evaluation import report
    from training.evaluation.run import evaluate

    for folder in args.data_dirs:
        if not (folder / "dataset.json").is_file():
            raise SystemExit(f"{folder}: not a data folder (no dataset.json)")
    model = None
    if not args.no_model:
        from inference.model import load_model

        model = load_model(args.model, backend=args.backend, device=args.device, threads=args.threads)
    cases = _split_cases(args.split, args.subset)
    results = evaluate(args.data_dirs, model, max_clicks=args.max_clicks, structures=_comma(args.structures) or None,
                       cases=cases, baselines=_baselines(args), variants=_comma(args.variants),
                       min_voxels=args.min_voxels, progress=not args.quiet, first_click=args.first_click,
                       first_prompt=args.first_prompt)
    if not results["settings"]["objects"]:
        raise SystemExit("no objects to evaluate: check DATA_DIR names against the split's 'folder/case' keys and --structures")
    split = f"{args.split} [{args.subset}]" if args.split else None
    return report.write(results, args.out, command=command, split=split)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    paths = run(args, command="python -m training.evaluate " + shlex.join(argv))
    print(paths["markdown"].read_text(encoding="utf-8").split("## Per dataset")[0])
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
