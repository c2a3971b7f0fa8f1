//! The budgets of issue #8 and the printed table.

use serde_json::{json, Value};
use std::fmt::Write as _;

const MIB: f64 = 1024.0 * 1024.0;

/// Budget lines: `{budget, value, limit, unit, verdict}`; the verdict is `PASS`, `OVER`, or
/// `n/a` when the section was not measured.
pub fn budgets(r: &Value) -> Value {
    let mut out = Vec::new();
    let mut line = |budget: String, value: Option<f64>, limit: f64, unit: &str, extra: bool| {
        let verdict = match value {
            Some(v) if v <= limit && extra => "PASS",
            Some(_) => "OVER",
            None => "n/a",
        };
        out.push(json!({
            "budget": budget,
            "value": value,
            "limit": limit,
            "unit": unit,
            "verdict": verdict,
        }));
    };
    line(
        "binary size, stripped static".into(),
        r["binary"]["bytes"].as_f64().map(|b| b / MIB),
        4.0,
        "MiB",
        r["binary"]["stripped"].as_bool().unwrap_or(true),
    );
    line(
        "join median on loopback, excluding approval wait".into(),
        r["join"]["wall_excluding_approval_wait_ms"]["median"].as_f64(),
        25.0,
        "ms",
        true,
    );
    let rss = [
        r["join"]["peak_rss"]["rusage_children_max_kib"].as_f64(),
        r["join"]["peak_rss"]["time_v_max_kib"].as_f64(),
    ]
    .into_iter()
    .flatten()
    .reduce(f64::max);
    line(
        "peak RSS of the join process".into(),
        rss.map(|k| k / 1024.0),
        10.0,
        "MiB",
        true,
    );
    line(
        "requests per join".into(),
        r["join"]["requests"]["per_join"]["max"].as_f64(),
        6.0,
        "requests",
        true,
    );
    if let Some(runs) = r["fleet"]["runs"].as_array() {
        // The budget is stated at 10x overload; harder overloads are reported, not budgeted.
        let at_10x = |f: &&Value| {
            f["overload"]
                .as_f64()
                .is_some_and(|o| (9.0..11.0).contains(&o))
        };
        for run in runs
            .iter()
            .filter(|f| f["policy"] == "kubejoin")
            .filter(at_10x)
        {
            let zero_failures = run["failures"].as_u64() == Some(0);
            line(
                format!(
                    "amplification at 10x overload, {} nodes, with zero failures (failures: {})",
                    run["nodes"], run["failures"]
                ),
                run["amplification"].as_f64(),
                1.2,
                "x",
                zero_failures,
            );
        }
    }
    Value::Array(out)
}

fn f(v: &Value, digits: usize) -> String {
    match v.as_f64() {
        Some(x) => format!("{x:.digits$}"),
        None => "-".into(),
    }
}

fn kib(v: &Value) -> String {
    match v.as_f64() {
        Some(b) => format!("{:.0} KiB", b / 1024.0),
        None => "-".into(),
    }
}

/// The human table.
pub fn table(r: &Value) -> String {
    let mut s = String::new();
    let h = &r["host"];
    let _ = writeln!(
        s,
        "\nkubejoin benchmark — {} CPUs ({}), kernel {}, loopback; load average {} at start, {} at end",
        h["cpus"],
        h["cpu_model"].as_str().unwrap_or("?"),
        h["kernel"].as_str().unwrap_or("?"),
        h["loadavg_start"].as_str().unwrap_or("?"),
        r["loadavg_end"].as_str().unwrap_or("?")
    );
    if h["loadavg_start"]
        .as_str()
        .and_then(|l| l.split(' ').next())
        .and_then(|l| l.parse::<f64>().ok())
        .is_some_and(|l| l > 1.0)
    {
        let _ = writeln!(
            s,
            "   note: the machine was busy when the benchmark started: latencies include that contention"
        );
    }
    let b = &r["binary"];
    if b.is_object() && b.get("error").is_none() {
        let _ = writeln!(s, "\n1. Binary ({})", b["path"].as_str().unwrap_or("?"));
        let _ = writeln!(
            s,
            "   stripped static binary       {:>10} ({} B, stripped: {}, static: {})",
            format!("{:.2} MiB", b["bytes"].as_f64().unwrap_or(0.0) / MIB),
            b["bytes"],
            b["stripped"],
            b["static"]
        );
        let _ = writeln!(
            s,
            "   gzip -9                      {:>10}",
            kib(&b["gzip_9_bytes"])
        );
        let _ = writeln!(
            s,
            "   zstd -19                     {:>10}",
            kib(&b["zstd_19_bytes"])
        );
    }
    let j = &r["join"];
    if j.is_object() && j.get("error").is_none() {
        let _ = writeln!(
            s,
            "\n2. Join latency ({} runs after {} warm-up; exec -> exit, handoff=none, fresh temporary root; auto-approval, no delay)",
            j["runs"], j["warmup_runs"]
        );
        let w = &j["wall_ms"];
        let _ = writeln!(
            s,
            "   whole process                median {} ms, p95 {} ms (min {}, max {})",
            f(&w["median"], 1),
            f(&w["p95"], 1),
            f(&w["min"], 1),
            f(&w["max"], 1)
        );
        let x = &j["wall_excluding_approval_wait_ms"];
        let _ = writeln!(
            s,
            "   excluding approval wait      median {} ms, p95 {} ms",
            f(&x["median"], 1),
            f(&x["p95"], 1)
        );
        let _ = writeln!(s, "   phases (median / p95 ms):");
        for p in j["phases"].as_array().into_iter().flatten() {
            let _ = writeln!(
                s,
                "     {:<6} {:<6} {}",
                f(&p["ms"]["median"], 1),
                f(&p["ms"]["p95"], 1),
                p["what"].as_str().unwrap_or("")
            );
        }
        let d = &j["on_disk"];
        if d["runs"].as_u64().unwrap_or(0) > 0 {
            let _ = writeln!(
                s,
                "   roots on {} above; on the disk ({}, {} runs): median {} ms, excluding approval wait {} ms (key + CSR {} ms, install {} ms)",
                j["roots"].as_str().unwrap_or("?"),
                d["roots"].as_str().unwrap_or("?"),
                d["runs"],
                f(&d["wall_ms"]["median"], 1),
                f(&d["wall_excluding_approval_wait_ms"]["median"], 1),
                f(&d["key_csr_ms"]["median"], 1),
                f(&d["install_ms"]["median"], 1)
            );
        }
        let t = &j["one_certificate_trust_store"];
        let _ = writeln!(
            s,
            "   with a one-certificate system trust store ({} runs): exec -> first request median {} ms, whole process median {} ms",
            t["runs"],
            f(&t["first_request_ms"]["median"], 1),
            f(&t["wall_ms"]["median"], 1)
        );
        let st = &j["process_start_ms"]["ms"];
        let _ = writeln!(
            s,
            "   process start-up             `kubejoin version` exec -> exit: median {} ms; exec -> first request: median {} ms",
            f(&st["median"], 2),
            f(&j["phases"][0]["ms"]["median"], 1)
        );
        let rss = &j["peak_rss"];
        let _ = writeln!(
            s,
            "\n3. Peak RSS                    getrusage(children) max {} KiB; /usr/bin/time -v max {} KiB",
            rss["rusage_children_max_kib"], rss["time_v_max_kib"]
        );
        let q = &j["requests"];
        let _ = writeln!(
            s,
            "\n4. Requests per join           {} (max {}); HTTP body bytes per join: median {}",
            f(&q["per_join"]["median"], 0),
            f(&q["per_join"]["max"], 0),
            f(&q["body_bytes_per_join"]["median"], 0)
        );
        for e in q["example_join"].as_array().into_iter().flatten() {
            let _ = writeln!(
                s,
                "     {:<100} {:>5} B up {:>6} B down",
                e["request"].as_str().unwrap_or(""),
                e["request_bytes"],
                e["response_bytes"]
            );
        }
    }
    let w = &r["wire"];
    if w.is_object() && w.get("error").is_none() {
        let _ = writeln!(
            s,
            "   on the wire (TCP payload through a relay, {} runs): median {} B/join ({} up, {} down) over {} TCP connections",
            w["runs"],
            f(&w["tcp_bytes_per_join"]["median"], 0),
            f(&w["tcp_bytes_up_per_join"]["median"], 0),
            f(&w["tcp_bytes_down_per_join"]["median"], 0),
            f(&w["tcp_connections_per_join"]["median"], 0)
        );
    }
    let fl = &r["fleet"];
    if let Some(runs) = fl["runs"].as_array() {
        let _ = writeln!(
            s,
            "\n5. Fleet scale (in-process nodes, all started at once; cap = in-flight limit answering 429 + Retry-After)"
        );
        if let Some(us) = fl["crypto"]["us_per_key_and_csr"].as_f64() {
            let _ = writeln!(
                s,
                "   crypto alone: {us:.0} µs per P-256 key + signed CSR ({} in a loop)",
                fl["crypto"]["keys_and_csrs"]
            );
        }
        let _ = writeln!(
            s,
            "   {:>6} {:>7} {:>5} {:>6} {:<21} {:>7} {:>7} {:>7} {:>8} {:>6} {:>6} {:>8} {:>9}",
            "nodes",
            "at once",
            "cap",
            "load",
            "policy",
            "wall s",
            "p50 s",
            "p99 s",
            "requests",
            "429s",
            "ampl.",
            "failures",
            "cpu/join"
        );
        let secs = |v: &Value| f(&json!(v.as_f64().map(|m| m / 1e3)), 2);
        for run in runs {
            if let Some(e) = run.get("error") {
                let _ = writeln!(
                    s,
                    "   {:>6} {:<21} error: {e}",
                    run["nodes"],
                    run["policy"].as_str().unwrap_or("")
                );
                continue;
            }
            let n = |v: &Value| v.to_string();
            let _ = writeln!(
                s,
                "   {:>6} {:>7} {:>5} {:>5}x {:<21} {:>7} {:>7} {:>7} {:>8} {:>6} {:>6} {:>8} {:>6} ms",
                n(&run["nodes"]),
                n(&run["concurrent_nodes"]),
                n(&run["cap"]),
                f(&run["overload"], 0),
                run["policy"].as_str().unwrap_or(""),
                secs(&run["wall_ms"]),
                secs(&run["join_ms"]["median"]),
                secs(&run["join_ms"]["p99"]),
                n(&run["requests"]),
                n(&run["responses_429"]),
                f(&run["amplification"], 2),
                n(&run["failures"]),
                f(&run["cpu_ms_per_join"], 1)
            );
        }
        let _ = writeln!(
            s,
            "   (cap: the control plane's max requests in flight, 429 + Retry-After: 1 beyond it; load: nodes joining at once / cap;\n    ampl.: requests / requests answered without 429 or 5xx; p50/p99: per-node join time; cpu/join: this process, clients and server)"
        );
    }
    let v = &r["vm"];
    if v.is_object() {
        let _ = writeln!(s, "\n6. VM boot (guest timeline)");
        if v["status"] == "measured" {
            let _ = writeln!(
                s,
                "   from {} ({} old; qemu accel: {})",
                v["console"].as_str().unwrap_or("?"),
                match v["console_age_s"].as_u64() {
                    Some(a) if a >= 3600 => format!("{} h", a / 3600),
                    Some(a) => format!("{} min", a / 60),
                    None => "?".into(),
                },
                v["accel"].as_str().unwrap_or("?")
            );
            let _ = writeln!(
                s,
                "   kernel -> /init {} ms; /init -> network up {} ms, -> discovery done {} ms, -> certificate issued {} ms, -> handoff {} ms",
                f(&v["kernel_to_init_ms"], 0),
                f(&v["init_to_network_up_ms"], 0),
                f(&v["init_to_discovery_done_ms"], 0),
                f(&v["init_to_certificate_issued_ms"], 0),
                f(&v["init_to_handoff_ms"], 0)
            );
        } else {
            let _ = writeln!(s, "   not run ({})", v["why"].as_str().unwrap_or(""));
        }
    }
    let _ = writeln!(s, "\nBudgets");
    for l in r["budgets"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "   {:<4} {:<75} {:>9} {:<8} (limit {} {})",
            l["verdict"].as_str().unwrap_or(""),
            l["budget"].as_str().unwrap_or(""),
            f(&l["value"], 2),
            l["unit"].as_str().unwrap_or(""),
            l["limit"],
            l["unit"].as_str().unwrap_or("")
        );
    }
    let _ = writeln!(s, "\nbenchmark took {} s", f(&r["bench_wall_s"], 0));
    s
}

/// The README's Performance tables, in Markdown, from a report.
pub fn markdown(r: &Value) -> String {
    let mut s = String::new();
    let mib = |v: &Value| {
        v.as_f64()
            .map(|b| format!("{:.2} MiB", b / MIB))
            .unwrap_or_else(|| "-".into())
    };
    let verdict = |name: &str| -> String {
        r["budgets"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["budget"].as_str().is_some_and(|b| b.starts_with(name)))
            .map(|l| {
                let unit = match l["unit"].as_str().unwrap_or("") {
                    "requests" => String::new(),
                    u => format!(" {u}"),
                };
                format!(
                    "≤ {}{unit} | **{}**",
                    l["limit"].as_f64().unwrap_or(0.0),
                    l["verdict"].as_str().unwrap_or("")
                )
            })
            .unwrap_or_else(|| " | ".into())
    };
    let b = &r["binary"];
    let j = &r["join"];
    let _ = writeln!(s, "| Figure | Measured | Budget | |");
    let _ = writeln!(s, "|---|---|---|---|");
    let _ = writeln!(
        s,
        "| Binary, stripped static (x86_64 musl) | {} | {} |",
        mib(&b["bytes"]),
        verdict("binary size")
    );
    let _ = writeln!(
        s,
        "| … compressed: gzip -9 / zstd -19 | {} / {} | | |",
        mib(&b["gzip_9_bytes"]),
        mib(&b["zstd_19_bytes"])
    );
    let _ = writeln!(
        s,
        "| Join, whole process (exec → exit), median / p95 | {} / {} ms | | |",
        f(&j["wall_ms"]["median"], 1),
        f(&j["wall_ms"]["p95"], 1)
    );
    let _ = writeln!(
        s,
        "| Join excluding the approval wait, median (p95) | {} ms ({} ms) | {} |",
        f(&j["wall_excluding_approval_wait_ms"]["median"], 1),
        f(&j["wall_excluding_approval_wait_ms"]["p95"], 1),
        verdict("join median")
    );
    let _ = writeln!(
        s,
        "| … with the root on this machine's disk (real fsyncs) | {} ms | | |",
        f(
            &j["on_disk"]["wall_excluding_approval_wait_ms"]["median"],
            1
        )
    );
    let _ = writeln!(
        s,
        "| Start-up: exec → first request, median | {} ms ({} ms without the host trust store) | | |",
        f(&j["first_request_ms"]["median"], 1),
        f(&j["one_certificate_trust_store"]["first_request_ms"]["median"], 1)
    );
    let rss = [
        j["peak_rss"]["rusage_children_max_kib"].as_f64(),
        j["peak_rss"]["time_v_max_kib"].as_f64(),
    ]
    .into_iter()
    .flatten()
    .reduce(f64::max);
    let _ = writeln!(
        s,
        "| Peak RSS of the join process | {} | {} |",
        rss.map(|k| format!("{:.1} MiB", k / 1024.0))
            .unwrap_or_else(|| "-".into()),
        verdict("peak RSS")
    );
    let _ = writeln!(
        s,
        "| Requests per join | {} | {} |",
        f(&j["requests"]["per_join"]["max"], 0),
        verdict("requests per join")
    );
    let w = &r["wire"];
    let _ = writeln!(
        s,
        "| Bytes per join: HTTP bodies / TCP payload (TLS included) | {:.1} KB / {:.1} KB over {} connections | | |",
        j["requests"]["body_bytes_per_join"]["median"]
            .as_f64()
            .unwrap_or(0.0)
            / 1e3,
        w["tcp_bytes_per_join"]["median"].as_f64().unwrap_or(0.0) / 1e3,
        f(&w["tcp_connections_per_join"]["median"], 0)
    );
    for run in r["fleet"]["runs"].as_array().into_iter().flatten() {
        if run["policy"] != "kubejoin" || run["overload"].as_f64().is_none_or(|o| o > 11.0) {
            continue;
        }
        let _ = writeln!(
            s,
            "| Fleet of {} at 10× overload: amplification, failures | {} ×, {} | ≤ 1.2 ×, 0 | **{}** |",
            run["nodes"],
            f(&run["amplification"], 2),
            run["failures"],
            if run["amplification"].as_f64().is_some_and(|a| a <= 1.2)
                && run["failures"].as_u64() == Some(0)
            {
                "PASS"
            } else {
                "OVER"
            }
        );
    }
    let v = &r["vm"];
    if v["status"] == "measured" {
        let _ = writeln!(
            s,
            "| VM boot (qemu {}): kernel → /init; /init → network up → discovery done → certificate → handoff | {} ms; {} → {} → {} → {} ms | | |",
            match v["accel"].as_str() {
                Some("kvm") => "KVM",
                Some("tcg") => "TCG, software emulation",
                _ => "TCG unless KUBEJOIN_VM_ACCEL=kvm",
            },
            f(&v["kernel_to_init_ms"], 0),
            f(&v["init_to_network_up_ms"], 0),
            f(&v["init_to_discovery_done_ms"], 0),
            f(&v["init_to_certificate_issued_ms"], 0),
            f(&v["init_to_handoff_ms"], 0)
        );
    }

    let _ = writeln!(
        s,
        "\nWhere the join's time goes (median / p95 ms, {} runs):\n",
        j["runs"]
    );
    let _ = writeln!(s, "| Phase | median | p95 |");
    let _ = writeln!(s, "|---|---:|---:|");
    for p in j["phases"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            p["what"].as_str().unwrap_or(""),
            f(&p["ms"]["median"], 1),
            f(&p["ms"]["p95"], 1)
        );
    }

    let _ = writeln!(
        s,
        "\nFleet (all nodes started at once; 429 + `Retry-After: 1` beyond the cap):\n"
    );
    let _ = writeln!(
        s,
        "| Nodes (at once) | Cap | Load | Policy | Wall | p50 / p99 per node | Requests (429s) | Amplification | Failures |"
    );
    let _ = writeln!(s, "|---:|---:|---:|---|---:|---:|---:|---:|---:|");
    for run in r["fleet"]["runs"].as_array().into_iter().flatten() {
        if run.get("error").is_some() {
            continue;
        }
        let secs = |v: &Value| {
            v.as_f64()
                .map(|m| format!("{:.1}", m / 1e3))
                .unwrap_or_default()
        };
        let _ = writeln!(
            s,
            "| {} ({}) | {} | {}× | {} | {} s | {} / {} s | {} ({}) | {} | {} |",
            run["nodes"],
            run["concurrent_nodes"],
            run["cap"],
            f(&run["overload"], 0),
            run["policy"].as_str().unwrap_or(""),
            secs(&run["wall_ms"]),
            secs(&run["join_ms"]["median"]),
            secs(&run["join_ms"]["p99"]),
            run["requests"],
            run["responses_429"],
            f(&run["amplification"], 2),
            run["failures"]
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_pass_over_and_not_measured() {
        let r = json!({
            "binary": { "bytes": 3 * 1024 * 1024, "stripped": true },
            "join": {
                "wall_excluding_approval_wait_ms": { "median": 30.0 },
                "peak_rss": { "rusage_children_max_kib": 6000, "time_v_max_kib": 6200 },
                "requests": { "per_join": { "max": 6.0 } },
            },
            "fleet": { "runs": [
                { "policy": "kubejoin", "overload": 10.0, "nodes": 100, "failures": 0, "amplification": 1.1 },
                { "policy": "kubejoin", "overload": 10.0, "nodes": 1000, "failures": 3, "amplification": 1.0 },
                { "policy": "kubejoin", "overload": 100.0, "nodes": 1000, "failures": 0, "amplification": 2.0 },
                { "policy": "naive fixed interval", "overload": 10.0, "nodes": 100, "failures": 0, "amplification": 3.0 },
            ]},
        });
        let b = budgets(&r);
        let verdicts: Vec<&str> = b
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["verdict"].as_str().unwrap())
            .collect();
        // size, latency, RSS, requests, then the two kubejoin runs at 10x (failures make OVER).
        assert_eq!(verdicts, ["PASS", "OVER", "PASS", "PASS", "PASS", "OVER"]);
        assert_eq!(b[2]["value"].as_f64().unwrap(), 6200.0 / 1024.0);
        let none = budgets(&json!({}));
        assert!(none
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["verdict"] == "n/a"));
        let mut r = r;
        r["budgets"] = b;
        let t = table(&r);
        assert!(t.contains("OVER") && t.contains("PASS"), "{t}");
        let m = markdown(&r);
        assert!(m.contains("**OVER**") && m.contains("**PASS**"), "{m}");
    }
}
