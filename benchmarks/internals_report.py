"""The benchmark report: ``latest.md`` and the table printed at the end of ``make bench``."""

from __future__ import annotations

from typing import Any

TARGET_RATIO_N20 = 1.2  # deploy at N = 20 within this ratio of the baseline
TARGET_DISCOVERY_S = 1.0
TARGET_VM_DELAY_S = 1.0
VM_READY_LINE = "Press RETURN to get started"  # mini-ios' login prompt in the serial log



def fmt(value: Any, unit: str = "s") -> str:
    if value is None:
        return "-"
    return f"{value:.2f} {unit}".strip()



def rng(item: dict[str, Any]) -> str:
    if item.get("median") is None:
        return "-"
    return f"{item['median']:.2f} s ({item['min']:.2f}-{item['max']:.2f})"



def deploys_of(results: dict[str, Any]) -> dict[str, Any]:
    return {n: r for n, r in results.get("deploy", {}).items() if n.isdigit()}



def render_markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Archetype benchmark: latest run",
        "",
        f"{results['host']['when']} on {results['host']['host']}: {results['host']['cpus']} CPUs, "
        f"{results['host']['memory_gib']} GiB, Prefect {results['host']['prefect']}, docker "
        f"{results['host']['docker']}; {results['reps']} runs each, median (min-max). "
        f"Load average at start: {results['host']['load_avg_at_start']}."
        + (f" Variant: {results['variant']}." if any(results.get("variant", {}).values()) else ""),
        "",
    ]
    deploys = deploys_of(results)
    if deploys:
        lines += [
            "| N nodes (links) | Archetype deploy | baseline deploy | ratio | Archetype destroy | baseline destroy | ratio | Prefect overhead / node |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for n, r in deploys.items():
            links = int(n) + int(n) // 2
            lines.append(
                f"| {n} ({links}) | {rng(r['archetype']['deploy'])} | {rng(r['baseline']['deploy'])} | "
                f"**{r['deploy_ratio']:.2f}x** | {rng(r['archetype']['destroy'])} | {rng(r['baseline']['destroy'])} | "
                f"{r['destroy_ratio']:.2f}x | {r['prefect_overhead_per_node_s'] * 1000:.0f} ms |"
            )
        lines += ["", "Where the Archetype deploy time goes (medians, seconds from the flow call):", "",
                  "| N | before first create | last create started | all created | all ready | stage hand-off mean / max | after last call | baseline: all created / ready |",
                  "|---|---|---|---|---|---|---|---|"]
        for n, r in deploys.items():
            d, b = r["archetype"]["detail_median"], r["baseline"]["detail_median"]
            if not d:
                continue
            lines.append(
                f"| {n} | {d['before_first_create']:.2f} | {d['last_create_started']:.2f} | {d['all_created']:.2f} | "
                f"{d['all_ready']:.2f} | {d['stage_handoff_mean'] * 1000:.0f} / {d['stage_handoff_max'] * 1000:.0f} ms | "
                f"{d['after_last_call']:.2f} | {b.get('all_created', 0):.2f} / {b.get('all_ready', 0):.2f} |"
            )
        lines += ["", "CPU seconds used during the deploy (medians; the host has "
                  f"{results['host']['cpus']} cores, so host CPU / wall time near {results['host']['cpus']} "
                  "means it was saturated):", "",
                  "| N | Archetype: flow process / Prefect server / whole host | baseline: process / server (idle) / whole host | Prefect CPU per node |",
                  "|---|---|---|---|"]
        for n, r in deploys.items():
            d, b = r["archetype"]["detail_median"], r["baseline"]["detail_median"]
            lines.append(
                f"| {n} | {d['cpu_client']:.2f} / {d['cpu_server']:.2f} / {d['cpu_host']:.1f} | "
                f"{b['cpu_client']:.2f} / {b['cpu_server']:.2f} / {b['cpu_host']:.1f} | "
                f"{r['prefect_cpu_per_node_s'] * 1000:.0f} ms |"
            )
        lines.append("")
        failures = results.get("deploy_failures") or []
        if failures:
            lines += ["Incidents during the run (retried or tolerated):", ""] + [f"- {f}" for f in failures] + [""]
    disc = results.get("discovery")
    if disc:
        lines += [
            f"Discovery, {disc['nodes_of_ours']} nodes of ours present ({disc['nodes_on_host']} on the host): "
            f"`discover_all()` first call in a process {rng(disc['discover_all_first_call'])}, warm "
            f"{rng(disc['discover_all_warm'])}; `archetype status --json` as a process "
            f"{rng(disc['status_json_process'])} (a process that only imports the CLI and both providers: "
            f"{disc['cli_imports_only']:.2f} s). "
            f"Target < {TARGET_DISCOVERY_S:.0f} s.",
            "",
        ]
    vm = results.get("vm")
    if vm:
        d = vm["ready_delay"]
        lines += [
            f"VM readiness (mini-ios, LibvirtProvider): \"{VM_READY_LINE}\" in the serial log -> `wait_ready` "
            f"returned: {d['median'] * 1000:.0f} ms median ({d['min'] * 1000:.0f}-{d['max'] * 1000:.0f} ms); "
            f"boot to that line {rng(vm['boot_to_line'])}. Target < {TARGET_VM_DELAY_S * 1000:.0f} ms.",
            "",
        ]
    for error in results.get("errors", []):
        lines += [f"FAILED: {error}", ""]
    if deploys and not results.get("variant", {}).get("heartbeat_off"):
        lines += ["Note: Archetype's flow times end just after a whole second: Prefect 3.9.1 joins its flow-run "
                  "heartbeat thread, which sleeps in 1 s steps, when a flow ends (+0.5 s on average per flow run; "
                  "the default, as the command line runs, is without it). Other test labs share this host: see "
                  "docs/performance.md for the analysis and the noise.", ""]
    checks = results.get("targets", {})
    if checks:
        lines += ["Targets: " + "; ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in checks.items()), ""]
    return "\n".join(lines)



def render_table(results: dict[str, Any]) -> str:
    rows = [("measure", "Archetype", "baseline", "ratio / target")]
    for n, r in deploys_of(results).items():
        rows.append((f"deploy N={n}", rng(r["archetype"]["deploy"]), rng(r["baseline"]["deploy"]),
                     f"{r['deploy_ratio']:.2f}x" + (f" (target {TARGET_RATIO_N20}x)" if n == "20" else "")))
        rows.append((f"destroy N={n}", rng(r["archetype"]["destroy"]), rng(r["baseline"]["destroy"]),
                     f"{r['destroy_ratio']:.2f}x"))
        rows.append((f"Prefect overhead/node N={n}", f"{r['prefect_overhead_per_node_s'] * 1000:.0f} ms wall",
                     f"{r['prefect_cpu_per_node_s'] * 1000:.0f} ms CPU", ""))
    disc = results.get("discovery")
    if disc:
        rows.append(("discover_all() 200 nodes", rng(disc["discover_all_first_call"]), "", f"target < {TARGET_DISCOVERY_S} s"))
        rows.append(("archetype status --json", rng(disc["status_json_process"]), "", "(process, incl. imports)"))
    vm = results.get("vm")
    if vm:
        d = vm["ready_delay"]
        rows.append(("VM ready delay", f"{d['median'] * 1000:.0f} ms ({d['min'] * 1000:.0f}-{d['max'] * 1000:.0f})",
                     "", f"target < {TARGET_VM_DELAY_S * 1000:.0f} ms"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    out = []
    for i, row in enumerate(rows):
        out.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)

