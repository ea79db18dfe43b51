"""Where a box-first answer's false positives lie on the other validation objects: inside the rectangle extruded
across its plane, or outside it; and Dice if the answer were clipped to it (bundled model, ONNX, 1 thread)."""
import json, sys
import numpy as np
sys.path.insert(0, "/work/main")  # run from anywhere on this machine; paths as the session had them
from inference.volume import Volume
from inference.session import InteractiveSession
from inference.model import load_model  # noqa
from training.evaluation.run import list_objects
from training.evaluation.prompt_user import first_box, largest_slice
from training.evaluation import metrics

split = json.load(open("/work/main/training/split.json"))["val"]
D = [f"/work/shared/data/{f}" for f in ("ct_mr_totalsegmentator_examples", "lesion_mri_pyradiomics", "spinal_cord_mri_sct")]
objs = list_objects(D, cases=split)
model = load_model("/work/main/EISegMed3D/Resources/Models/eiseg-vnet-universal", backend="onnx", threads=1)
rows = []
current = None
for obj in objs:
    if obj.key != current:
        volume, label, current = Volume.from_file(obj.image), Volume.from_file(obj.label_path).array, obj.key
    gt = label == obj.value
    if not gt.any():
        continue
    args = first_box(gt, volume.spacing)
    s = InteractiveSession(model); s.set_volume(volume)
    pred = s.add_box(**args).mask.astype(bool)
    axis, index = largest_slice(gt, volume.spacing)
    a, b = np.array(args["ijk"][0])[::-1], np.array(args["ijk"][1])[::-1]  # kji
    lo, hi = np.floor(np.minimum(a, b)).astype(int), np.ceil(np.maximum(a, b)).astype(int)
    inside = np.zeros_like(gt)
    sl = [slice(max(l, 0), h + 1) for l, h in zip(lo, hi)]
    sl[axis] = slice(None)
    inside[tuple(sl)] = True
    fp = pred & ~gt
    on_slice = np.take(pred & ~gt, index, axis=axis).sum()
    rows.append({"name": obj.name, "voxels": int(gt.sum()), "dice": metrics.dice(gt, pred),
                 "clipped": metrics.dice(gt, pred & inside), "fp": int(fp.sum()), "fp_out": int((fp & ~inside).sum()),
                 "fn": int((gt & ~pred).sum()), "gt_out": int((gt & ~inside).sum()), "fp_on_slice": int(on_slice)})
    print(json.dumps(rows[-1]), flush=True)
print("mean dice", np.mean([r["dice"] for r in rows]), "clipped", np.mean([r["clipped"] for r in rows]))
json.dump(rows, open("/tmp/boxfp/rows.json", "w"), indent=1)
