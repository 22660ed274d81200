"""The machine line every comparison prints: the CPU, cores and caches from the `machine`
object llmdrop's JSON documents carry, and the f32 FMA limit measured in the same run."""


def describe(doc, fma_gflops=None, threads=None):
    m = doc.get("machine") or {}
    name = m.get("cpu_model") or "unknown CPU"
    ident = [x for x in [m.get("microarchitecture")] if x]
    if m.get("family") is not None and m.get("model") is not None:
        ident.append(f"family {m['family']} model {m['model']}")
    if ident:
        name += f" ({'; '.join(ident)})"
    parts = [name, f"{m.get('logical_cpus', '?')} logical CPUs"]
    for c in m.get("caches", []):
        if c["kind"] == "Instruction":
            continue
        label = f"L{c['level']}{'d' if c['kind'] == 'Data' else ''}"
        kib = c["size_bytes"] // 1024
        parts.append(f"{label} {kib // 1024} MiB" if kib % 1024 == 0 and kib >= 1024 else f"{label} {kib} KiB")
    line = "machine: " + ", ".join(parts)
    if fma_gflops is not None:
        line += f"; f32 FMA limit {fma_gflops:.1f} GFLOP/s"
        if threads is not None:
            line += f" at {threads} thread(s), measured in this run"
    return line
