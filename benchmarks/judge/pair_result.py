"""A pair's result table and its rule's decisions (universal_v21_rule.md's gates) from runs/judgeV/{a,b} and v19's
runs/judge19. Usage: python benchmarks/judge/pair_result.py V [MATCHED]: part 1 asks whether b beats a, or, with
MATCHED (a judged run folder such as runs/judge21/a, the same recipe and seed without the lever), whether the better
of a and b beats it (universal_v22_rule.md)."""
import json, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from summary import figures
V = sys.argv[1]
M_DIR = sys.argv[2] if len(sys.argv) > 2 else None
B, a, b = figures("runs/judge19"), figures(f"runs/judge{V}/a"), figures(f"runs/judge{V}/b")
M = figures(M_DIR) if M_DIR else None
avg = {r: ", ".join(f"{x['step']:,}" for x in json.load(open(f"runs/judge{V}/{r}/avg.txt"))["averaged"]) for r in "ab"}
secs = {r: round(json.loads(open(f"runs/cpu-universal-v{V}{r}/log.jsonl").read().strip().splitlines()[-1])["t"]) for r in "ab"}
def f(x, n=3): return f"{x:.{n}f}"
rows = [("spine IoU@1 / @3 / @10", lambda F: " / ".join(f(v) for v in F["spine iou@1/3/10"])),
        ("spine NoC@85", lambda F: f(F["noc@85"], 2)),
        ("IoU@3: discs / T2 bodies / water-fat bodies", lambda F: " / ".join(f(v) for v in F["spine per dataset iou@3"].values())),
        ("stand-in IoU@3", lambda F: f(F["standin iou@3"], 4)),
        ("other Dice@1 / @3, AUC", lambda F: f"{f(F['other dice@1/3, auc'][0])} / {f(F['other dice@1/3, auc'][1], 4)}, {f(F['other dice@1/3, auc'][2])}"),
        ("ellipsoid mean, lowest", lambda F: f"{f(F['ellipsoid mean/min'][0])}, {f(F['ellipsoid mean/min'][1])}"),
        ("corrective clicks, 34 objects, mean add / remove", lambda F: " / ".join(f(v, 4) for v in F["corrections means add/remove"])),
        ("box-first Dice@1 / @3 / @5", lambda F: " / ".join(f(v, 4) for v in F["box dice@1/3/5"])),
        ("lasso-first Dice@1 / @3 / @5", lambda F: " / ".join(f(v, 4) for v in F["lasso dice@1/3/5"]))]
matched = [(M_DIR, M)] if M else []
print("| | bundled (v19's average) | " + "".join(f"{n} | " for n, _ in matched) + f"v{V}a | v{V}b |\n|---|---|---|---|" + "---|" * len(matched))
for name, get in rows:
    print(f"| {name} | {get(B)} | " + "".join(f"{get(F)} | " for _, F in matched) + f"{get(a)} | {get(b)} |")
print(f"\nv{V}a: steps {avg['a']}, {secs['a']} s; v{V}b: steps {avg['b']}, {secs['b']} s\n")
s = lambda F: F["spine iou@1/3/10"][1]
C = b if (s(b), -b["noc@85"]) > (s(a), -a["noc@85"]) else a
name = f"v{V}b" if C is b else f"v{V}a"
L, R, said = (M, C, f"{name} vs {M_DIR}") if M else (a, b, "b vs a")  # part 1: without the lever, with it
d = {"spine IoU@3 +0.005": s(R) - s(L) >= 0.005, "NoC no higher": R["noc@85"] <= L["noc@85"],
     "stand-in >= -0.003": R["standin iou@3"] - L["standin iou@3"] >= -0.003,
     "other Dice@3 >= -0.01": R["other dice@1/3, auc"][1] - L["other dice@1/3, auc"][1] >= -0.01,
     "corrections >= -0.01": all(y - x >= -0.01 for x, y in zip(L["corrections means add/remove"], R["corrections means add/remove"]))}
print(f"part 1 ({said}):", d, "delta spine", round(s(R) - s(L), 4))
g = {"spine IoU@3 > B": s(C) > s(B), "NoC <= B+0.25": C["noc@85"] <= B["noc@85"] + 0.25,
     "stand-in >= B-0.003": C["standin iou@3"] >= B["standin iou@3"] - 0.003,
     "other Dice@3 >= B-0.01": C["other dice@1/3, auc"][1] >= B["other dice@1/3, auc"][1] - 0.01,
     "AUC >= B-0.03": C["other dice@1/3, auc"][2] >= B["other dice@1/3, auc"][2] - 0.03,
     "ellipsoid mean >= B-0.03": C["ellipsoid mean/min"][0] >= B["ellipsoid mean/min"][0] - 0.03,
     "every ellipsoid >= 0.5": min(C["ellipsoid rows"]) >= 0.5,
     "corrections >= B-0.01": all(y >= x - 0.01 for x, y in zip(B["corrections means add/remove"], C["corrections means add/remove"])),
     "box Dice@1,@3 >= B-0.005": all(C["box dice@1/3/5"][i] >= B["box dice@1/3/5"][i] - 0.005 for i in (0, 1)),
     "lasso Dice@1 >= B-0.005": C["lasso dice@1/3/5"][0] >= B["lasso dice@1/3/5"][0] - 0.005}
print("part 2:", name, g, "ADOPT" if all(g.values()) else "not adopted")
