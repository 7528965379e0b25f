"""The report of ``benchmarks/run.py``: ``latest.md`` and the table printed at its end."""

from __future__ import annotations

from typing import Any

TARGET_DEPLOY_RATIO = 1.3  # archetype deploy (process) / baseline, N = 20
TARGET_DESTROY_RATIO = 1.5
TARGET_FIRST_CALL_EXTRA_S = 3.0  # first call on a quiet host: at most the baseline + 3 s
TARGET_REST_EXTRA_S = 3.0
TARGET_STATUS_S = 0.5


def _cell(entry: dict[str, Any] | None) -> str:
    if not entry or not entry.get("seconds"):
        return "-"
    s = entry["seconds"]
    return f"{s['median']:.2f} s ({s['min']:.2f}-{s['max']:.2f})"


def _load(entry: dict[str, Any] | None) -> str:
    if not entry or not entry.get("load"):
        return "-"
    return f"{min(entry['load']):.1f}-{max(entry['load']):.1f}"


def _get(results: dict[str, Any], kind: str, n: Any) -> dict[str, Any] | None:
    return results.get("by_kind", {}).get(kind, {}).get(str(n))


def _median(results: dict[str, Any], kind: str, n: Any) -> float | None:
    entry = _get(results, kind, n)
    return entry["seconds"]["median"] if entry and entry.get("seconds") else None


def targets(results: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """target -> (figure, met)."""
    out: dict[str, tuple[str, bool]] = {}
    ratio = results.get("ratios", {}).get("20", {})
    if "deploy" in ratio:
        out[f"deploy N=20 <= {TARGET_DEPLOY_RATIO}x baseline"] = (f"{ratio['deploy']:.2f}x", ratio["deploy"] <= TARGET_DEPLOY_RATIO)
    if "destroy" in ratio:
        out[f"destroy N=20 <= {TARGET_DESTROY_RATIO}x baseline"] = (f"{ratio['destroy']:.2f}x", ratio["destroy"] <= TARGET_DESTROY_RATIO)
    first, base = _median(results, "archetype deploy, first", 20), _median(results, "baseline deploy", 20)
    if first is not None and base is not None:
        out[f"first call N=20 <= baseline + {TARGET_FIRST_CALL_EXTRA_S:.0f} s"] = (
            f"baseline + {first - base:.2f} s", first - base <= TARGET_FIRST_CALL_EXTRA_S)
    rest = _median(results, "REST deploy", 20)
    if rest is not None and base is not None:
        out[f"REST deploy N=20 <= baseline + {TARGET_REST_EXTRA_S:.0f} s"] = (
            f"baseline + {rest - base:.2f} s", rest - base <= TARGET_REST_EXTRA_S)
    status = _median(results, "status", None)
    if status is not None:
        out[f"status < {TARGET_STATUS_S} s"] = (f"{status:.2f} s", status < TARGET_STATUS_S)
    return out


def render_markdown(results: dict[str, Any]) -> str:
    host = results["host"]
    lines = [
        "# Archetype benchmark: latest run (`make bench`, benchmarks/run.py)",
        "",
        f"{host['when']} on {host['host']}: {host['cpus']} CPUs, {host['memory_gib']} GiB, Prefect {host['prefect']}, "
        f"docker {host['docker']}, {host['ovs']}. {results['reps']} runs each, median (min-max), every command a "
        f"process timed from spawn to exit. Load average (1 min) at the start {host['load_avg_at_start']}, at the end "
        f"{host.get('load_avg_at_end', '?')}; the load before each figure's runs is in its `load` column.",
        "",
        "| N (links) | baseline deploy | `archetype deploy` | ratio | load | baseline destroy | `archetype destroy` | ratio | load |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n in sorted(results["sizes"]):
        ratio = results.get("ratios", {}).get(str(n), {})
        lines.append(
            f"| {n} ({n + n // 2}) | {_cell(_get(results, 'baseline deploy', n))} | {_cell(_get(results, 'archetype deploy', n))} | "
            f"**{ratio.get('deploy', '-')}x** | {_load(_get(results, 'archetype deploy', n))} | "
            f"{_cell(_get(results, 'baseline destroy', n))} | {_cell(_get(results, 'archetype destroy', n))} | "
            f"**{ratio.get('destroy', '-')}x** | {_load(_get(results, 'archetype destroy', n))} |"
        )
    rest_rows = [n for n in sorted(results["sizes"]) if _get(results, "REST deploy", n)]
    if rest_rows:
        poll = results.get("worker_query_seconds")
        lines += ["", "REST-created runs on a process worker (asking for runs every "
                  f"{poll if poll is not None else '10 (Prefect default)'} s), from the POST to the run seen Completed:", "",
                  "| N | REST deploy | - baseline | REST destroy | - baseline | load |", "|---|---|---|---|---|---|"]
        for n in rest_rows:
            ratio = results["ratios"].get(str(n), {})
            lines.append(f"| {n} | {_cell(_get(results, 'REST deploy', n))} | +{ratio.get('REST deploy - baseline', '-')} s | "
                         f"{_cell(_get(results, 'REST destroy', n))} | +{ratio.get('REST destroy - baseline', '-')} s | "
                         f"{_load(_get(results, 'REST deploy', n))} |")
    first = results.get("by_kind", {}).get("archetype deploy, first", {})
    for n, entry in first.items():
        lines += ["", f"First call on a quiet host (no Prefect server running; the deploy starts it), N = {n}: "
                  f"{_cell(entry)}, load {_load(entry)}; later calls {_cell(_get(results, 'archetype deploy', n))}."]
    status = _get(results, "status", None)
    if status:
        lines += ["", f"`archetype status --json`: {_cell(status)}, load {_load(status)}."]

    lines += ["", "## Where the time goes (medians, seconds from the process's spawn)", ""]
    for kind in ("archetype deploy", "archetype deploy, first", "baseline deploy", "archetype destroy",
                 "baseline destroy", "REST deploy", "REST destroy"):
        for n, entry in results.get("by_kind", {}).get(kind, {}).items():
            if entry.get("split"):
                cpu = f"; CPU of the process {entry['cpu']['median']:.2f} s" if entry.get("cpu") else ""
                split = ", ".join(f"{k} {v:.2f}" for k, v in entry["split"].items())
                lines.append(f"- {kind}, N = {n}: {split}{cpu}")
    met = targets(results)
    if met:
        lines += ["", "## Targets", ""] + [f"- {name}: {figure}: {'met' if ok else 'MISSED'}" for name, (figure, ok) in met.items()]
    errors = [r for r in results.get("runs", []) if "error" in r]
    if errors:
        lines += ["", "## Failed runs", ""] + [f"- {r['kind']} N={r['n']} rep {r['rep']} (load {r['load']}): {r['error'][:300]}" for r in errors]
    return "\n".join(lines) + "\n"
