"""The rules' figures for one judged candidate folder (runs/judgeV/a|b, judge_pair.sh) or the bundled v19 (runs/judge19)."""
import json, sys
from pathlib import Path
def box(folder):
    d = json.load(open(folder / "evaluation.json"))["runs"]["model"]["objects"]
    return [round(sum(o["summary"][f"dice@{n}"] for o in d) / len(d), 4) for n in (1, 3, 5)]
def figures(J):
    J = Path(J)
    p1 = json.load(open(J / "p1/adoption.json")); p2 = json.load(open(J / "p2/adoption.json"))
    corr = json.loads((J / "corr34.txt").read_text().strip().splitlines()[-1])
    s = p1["spine"]["all"]; o = p2["other"]["all"]
    out = {"spine iou@1/3/10": [round(s[k], 4) for k in ("iou@1", "iou@3", "iou@10")], "noc@85": round(s["noc@85"], 3),
           "spine per dataset iou@3": {k: round(v["iou@3"], 4) for k, v in p1["spine"]["per_dataset"].items()},
           "standin iou@3": round(p1["standin"]["all"]["iou@3"], 4),
           "other dice@1/3, auc": [round(o["dice@1"], 4), round(o["dice@3"], 4), round(o["auc"], 4)],
           "ellipsoid mean/min": [p2["ellipsoid"]["mean_dice"], p2["ellipsoid"]["min_dice"]],
           "ellipsoid rows": [r["dice"] for r in p2["ellipsoid"]["rows"]],
           "corrections means add/remove": [round(corr["positive"]["mean"], 4), round(corr["negative"]["mean"], 4)],
           "box dice@1/3/5": box(J / ("box" if (J / "box").exists() else "box_v19")),
           "lasso dice@1/3/5": box(J / ("lasso" if (J / "lasso").exists() else "lasso_v19"))}
    return out
if __name__ == "__main__":
    for j in sys.argv[1:]:
        print(j, json.dumps(figures(j), indent=0))
