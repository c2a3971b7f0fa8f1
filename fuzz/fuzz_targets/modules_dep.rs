//! The kernel module index (`host::modules`): modules.dep, modules.alias, modules.builtin,
//! modules.softdep and modules.builtin.modinfo, then name resolution and load order (which
//! must terminate on dependency cycles).
//!
//! Input: the five files separated by NUL bytes.
#![no_main]

use kubejoin::host::modules::ModuleIndex;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(5, |b| *b == 0);
    let mut next = || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let (dep, alias, builtin, softdep) = (next(), next(), next(), next());
    let modinfo = next().into_bytes();
    let Ok(idx) = ModuleIndex::parse("6.1.0-fuzz", &dep, &alias, &builtin, &softdep, &modinfo)
    else {
        return;
    };
    // Every name the files mention, plus the ones kubejoin always asks for.
    let mut names: Vec<String> = ["overlay", "br_netfilter", "nf_conntrack"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for line in dep
        .lines()
        .chain(alias.lines())
        .chain(softdep.lines())
        .take(32)
    {
        names.extend(line.split([' ', ':', '/']).take(3).map(str::to_string));
    }
    for n in names.iter().filter(|n| !n.is_empty()).take(64) {
        let _ = idx.resolve(n);
        let _ = idx.is_builtin(n);
        let _ = idx.node_path(n);
        let _ = idx.deps(n);
        let _ = idx.load_order(n);
    }
});
