#!/usr/bin/env python3
# Markdown table from `slm bench --json` results (and optional node-llama-cpp results): speed,
# fractions of the limits measured in the same run, the issue's targets and llama.cpp ratios.
# Usage: table.py PRESET TYPE SLM_JSON LLAMA_JSON|- [PRESET TYPE ...]
import json
import sys

# llama.cpp prompt-128 / generation-64 tok/s with 2 threads on this machine, from the issue.
ISSUE_LLAMA_CPP = {
    ("smollm2-135m", "F16"): (441, 58), ("smollm2-135m", "Q8_0"): (381, 93),
    ("smollm2-135m", "Q4_0"): (489, 134), ("smollm2-135m", "Q4_K_M"): (283, 94),
    ("qwen2.5-0.5b", "F16"): (190, 20), ("qwen2.5-0.5b", "Q8_0"): (127, 32),
    ("qwen2.5-0.5b", "Q4_0"): (178, 47), ("qwen2.5-0.5b", "Q4_K_M"): (108, 35),
    ("llama3.2-1b", "F16"): (68, 8.2), ("llama3.2-1b", "Q8_0"): (59, 13.9),
    ("llama3.2-1b", "Q4_0"): (68, 21), ("llama3.2-1b", "Q4_K_M"): (62, 21),
}
# The issue's targets: generation as a fraction of the bandwidth bound, prompt as a fraction
# of the FP32 GEMM peak ("> 1" means above it).
GEN_TARGET = {"smollm2-135m": 0.75, "qwen2.5-0.5b": 0.90, "llama3.2-1b": 0.90}
PROMPT_TARGET = {"F16": (0.85, ">="), "Q8_0": (1.0, ">"), "Q4_0": (1.0, ">")}


def fmt(x, nd=1):
    return "-" if x is None else f"{x:.{nd}f}"


def mark(value, target, op=">="):
    if value is None or target is None:
        return ""
    ok = value >= target if op == ">=" else value > target
    return " ✓" if ok else " ✗"


def main(argv):
    if len(argv) % 4 != 0 or not argv:
        sys.exit("usage: table.py PRESET TYPE SLM_JSON LLAMA_JSON|- ...")
    rows = [argv[i:i + 4] for i in range(0, len(argv), 4)]
    out = []
    first = None
    bws, bw_meds, peaks = [], [], []
    any_llama = any(r[3] != "-" for r in rows)
    head = ["model", "type", "file MB", "prompt tok/s (min–max)", "gen tok/s (min–max)",
            "BW bound tok/s", "gen / bound", "gen / bound at median BW", "prompt GFLOP/s",
            "/ GEMM peak", "/ GEMM median",
            "llama.cpp issue pp/tg", "ours / issue pp, tg"]
    if any_llama:
        head += ["llama.cpp here pp/tg", "ours / here pp, tg"]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    for preset, typ, path, lpath in rows:
        with open(path) as f:
            j = json.load(f)
        first = first or j
        m = j.get("machine", {})
        if "read_bandwidth_gbs" in m:
            bws.append(m["read_bandwidth_gbs"])
            bw_meds.append(m.get("read_bandwidth_median_gbs", m["read_bandwidth_gbs"]))
        if "gemm_peak_gflops" in m:
            peaks.append(m["gemm_peak_gflops"])
        p = j.get("prompt", {})
        g = j.get("gen", {})
        pt = p.get("tok_s", {})
        gt = g.get("tok_s", {})
        pp = pt.get("median")
        tg = gt.get("median")
        frac_bw = g.get("fraction_of_bound")
        frac_bw_med = g.get("fraction_of_median_bound")
        frac_peak = p.get("fraction_of_gemm_peak")
        frac_peak_med = p.get("fraction_of_gemm_median")
        ptarget = PROMPT_TARGET.get(typ)
        issue = ISSUE_LLAMA_CPP.get((preset, typ))
        cells = [
            preset, j.get("weight_type", typ), fmt(j["file_bytes"] / 1e6, 0),
            f"{fmt(pp)} ({fmt(pt.get('min'))}–{fmt(pt.get('max'))})" if pp else "-",
            f"{fmt(tg)} ({fmt(gt.get('min'))}–{fmt(gt.get('max'))})" if tg else "-",
            fmt(g.get("bandwidth_bound_tok_s")),
            fmt(frac_bw, 2) + mark(frac_bw, GEN_TARGET.get(preset)),
            fmt(frac_bw_med, 2) + mark(frac_bw_med, GEN_TARGET.get(preset)),
            fmt(p.get("gflops")),
            fmt(frac_peak, 2) + (mark(frac_peak, ptarget[0], ptarget[1]) if ptarget else ""),
            fmt(frac_peak_med, 2) + (mark(frac_peak_med, ptarget[0], ptarget[1]) if ptarget else ""),
            f"{issue[0]} / {issue[1]}" if issue else "-",
            f"{fmt(pp / issue[0], 2)}, {fmt(tg / issue[1], 2)}" if issue and pp and tg else "-",
        ]
        if any_llama:
            if lpath != "-":
                with open(lpath) as f:
                    lj = json.load(f)
                lpp = lj["prompt"]["tok_s"]["median"]
                ltg = lj["gen"]["tok_s"]["median"]
                cells += [f"{fmt(lpp)} / {fmt(ltg)}",
                          f"{fmt(pp / lpp, 2) if pp and lpp else '-'}, "
                          f"{fmt(tg / ltg, 2) if tg and ltg else '-'}"]
            else:
                cells += ["-", "-"]
        out.append("| " + " | ".join(cells) + " |")

    print(f"slm bench: {first['threads']} threads, prompt {first['n_prompt']} tokens, "
          f"generation {first['n_gen']} tokens, median of {first['repetitions']} runs after a warm-up.")
    if bws:
        print(f"Read bandwidth sampled between each model's timed runs: best pass {min(bws):.1f}–"
              f"{max(bws):.1f} GB/s, median pass {min(bw_meds):.1f}–{max(bw_meds):.1f} GB/s; "
              f"FP32 GEMM peak (slm sgemm 1024³, best run): "
              + (f"{min(peaks):.1f}–{max(peaks):.1f} GFLOP/s." if peaks else "not measured."))
    print("Bound = read bandwidth (best pass; 'at median BW': the median pass, set against the "
          "runs' median) / weight bytes per token. Targets: gen ≥ 0.90 of the bound "
          "(0.5B, 1B), ≥ 0.75 (135M); prompt ≥ 0.85 of the GEMM peak for F16, > 1 for Q8_0/Q4_0.")
    print()
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1:])
