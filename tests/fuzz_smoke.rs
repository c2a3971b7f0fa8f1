//! A fuzz smoke run on stable, part of `cargo test` (so of `scripts/test`): every fuzz target
//! (`kubejoin::fuzzing::TARGETS`, the bodies of `fuzz/fuzz_targets/*.rs`) runs over
//!
//! 1. its committed seeds, `fuzz/corpus/<target>/`;
//! 2. the crash files libFuzzer left in `fuzz/artifacts/<target>/` (not committed: a local long
//!    run's findings are regressions here until they become unit tests);
//! 3. a bounded number of deterministic mutations of those inputs: a seeded xorshift drives bit
//!    flips, byte overwrites with interesting values, inserts, deletes, chunk duplication,
//!    truncation and splices of two inputs, stacked 1–4 deep.
//!
//! Without coverage guidance this is no substitute for `scripts/fuzz TARGET` (libFuzzer, nightly,
//! hours): it proves that the targets build and hold on their seeds, and catches shallow
//! regressions in every parser on every `cargo test`. The same seed gives the same inputs, so a
//! failure reproduces; the failing input is written out with the command that replays it.
//!
//! `KUBEJOIN_FUZZ_SMOKE_EXECS` sets the mutations per target (default 3,000);
//! `KUBEJOIN_FUZZ_SMOKE_SEED` changes the seed (default fixed). Executions per target are
//! printed (`cargo test --test fuzz_smoke -- --nocapture`).

// Helpers outside #[test] functions panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Instant;

const DEFAULT_EXECS: usize = 3_000;
/// Mutated inputs are kept below this size (the seeds are a few KiB).
const MAX_LEN: usize = 64 << 10;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `dir`, sorted by name (missing directory: none).
fn inputs(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, Vec<u8>)> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes =
                std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

/// xorshift64*: small, fast, and the same sequence for the same seed everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // Any state but zero (which xorshift never leaves).
        Rng(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform-enough in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// FNV-1a of the target's name: each target its own sequence.
fn seed_of(name: &str) -> u64 {
    let base = std::env::var("KUBEJOIN_FUZZ_SMOKE_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0x6b75_6265_6a6f_696e);
    name.bytes().fold(base ^ 0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Bytes parsers treat specially: separators of the formats under test, boundaries.
const INTERESTING: &[u8] = b"\0\xff\x7f\x80\"'\\ \t\n\r:=.,-#{}[]/%";

/// One input derived from the pool: a copy of one input with 1–4 stacked mutations.
fn mutate(rng: &mut Rng, pool: &[Vec<u8>]) -> Vec<u8> {
    let mut d = pool[rng.below(pool.len())].clone();
    for _ in 0..=rng.below(4) {
        match rng.below(8) {
            // Flip one bit.
            0 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] ^= 1 << rng.below(8);
            }
            // Overwrite a byte with an interesting one, or a random one.
            1 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] = if rng.below(2) == 0 {
                    INTERESTING[rng.below(INTERESTING.len())]
                } else {
                    rng.next() as u8
                };
            }
            // Insert a byte.
            2 => {
                let i = rng.below(d.len() + 1);
                let b = INTERESTING[rng.below(INTERESTING.len())];
                d.insert(i, b);
            }
            // Delete a range of up to 16 bytes.
            3 if !d.is_empty() => {
                let i = rng.below(d.len());
                let n = (1 + rng.below(16)).min(d.len() - i);
                d.drain(i..i + n);
            }
            // Duplicate a chunk in place (repeated keys, nested structures).
            4 if !d.is_empty() => {
                let i = rng.below(d.len());
                let n = (1 + rng.below(64)).min(d.len() - i);
                let chunk = d[i..i + n].to_vec();
                let at = rng.below(d.len() + 1);
                d.splice(at..at, chunk);
            }
            // Truncate.
            5 if !d.is_empty() => {
                let n = rng.below(d.len());
                d.truncate(n);
            }
            // Splice: our head, another input's tail.
            6 => {
                let other = &pool[rng.below(pool.len())];
                let cut = rng.below(d.len() + 1);
                let from = rng.below(other.len() + 1);
                d.truncate(cut);
                d.extend_from_slice(&other[from..]);
            }
            // Replace a random range with random bytes.
            _ if !d.is_empty() => {
                let i = rng.below(d.len());
                let n = (1 + rng.below(8)).min(d.len() - i);
                for b in &mut d[i..i + n] {
                    *b = rng.next() as u8;
                }
            }
            _ => d.push(rng.next() as u8),
        }
    }
    d.truncate(MAX_LEN);
    d
}

thread_local! {
    /// Set while a target runs on this thread: its panics are recorded, not printed.
    static IN_TARGET: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}

/// A panic hook that records what a target raised (a panic it catches itself, like the DHCP
/// decoder's, would otherwise print for every such input) and leaves every other panic to the
/// default hook.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_TARGET.with(Cell::get) {
                LAST_PANIC.with(|p| *p.borrow_mut() = info.to_string());
            } else {
                default(info);
            }
        }));
    });
}

/// Runs `body` on `data`; the panic's message if it did not survive.
fn exec(body: fn(&[u8]), data: &[u8]) -> Option<String> {
    IN_TARGET.with(|f| f.set(true));
    let r = catch_unwind(AssertUnwindSafe(|| body(data)));
    IN_TARGET.with(|f| f.set(false));
    r.err()
        .map(|_| LAST_PANIC.with(|p| std::mem::take(&mut *p.borrow_mut())))
}

/// Keeps a failing input where it can be replayed, and fails the test with the way to do it.
fn failed(target: &str, what: &str, data: &[u8], message: &str) -> ! {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("fuzz-smoke")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    let hash = data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    });
    let path = dir.join(format!("crash-{hash:016x}"));
    std::fs::write(&path, data).unwrap();
    panic!(
        "fuzz target {target} failed on {what}: {message}\n  input: {} ({} bytes)\n  \
         replay: cargo +nightly fuzz run --fuzz-dir fuzz {target} {}\n  \
         keep it as a regression: copy it to fuzz/artifacts/{target}/ (this test replays those) \
         and add a unit test to the module that owns the parser",
        path.display(),
        data.len(),
        path.display()
    );
}

/// The smoke run of one target; prints its executions.
fn smoke(target: &str) {
    install_hook();
    let Some(&(_, body)) = kubejoin::fuzzing::TARGETS
        .iter()
        .find(|(n, _)| *n == target)
    else {
        panic!("no fuzz target {target} in kubejoin::fuzzing::TARGETS");
    };
    let execs = std::env::var("KUBEJOIN_FUZZ_SMOKE_EXECS")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(DEFAULT_EXECS);
    let started = Instant::now();
    let seeds = inputs(&fuzz_dir().join("corpus").join(target));
    assert!(
        !seeds.is_empty(),
        "fuzz/corpus/{target}/ has no seeds: every target needs at least one"
    );
    let artifacts = inputs(&fuzz_dir().join("artifacts").join(target));
    let mut runs = 0usize;
    for (path, data) in seeds.iter().chain(&artifacts) {
        if let Some(m) = exec(body, data) {
            failed(target, &path.display().to_string(), data, &m);
        }
        runs += 1;
    }
    let mut pool: Vec<Vec<u8>> = seeds
        .iter()
        .chain(&artifacts)
        .map(|(_, d)| d.clone())
        .collect();
    pool.push(Vec::new());
    let mut rng = Rng::new(seed_of(target));
    for i in 0..execs {
        let data = mutate(&mut rng, &pool);
        if let Some(m) = exec(body, &data) {
            failed(target, &format!("mutation {i}"), &data, &m);
        }
        runs += 1;
        // A mutant now and then joins the pool, so mutations stack across generations.
        if i % 16 == 0 && pool.len() < 256 {
            pool.push(data);
        }
    }
    println!(
        "fuzz smoke: {target:<13} {runs:>6} executions ({} seeds, {} artifacts, {execs} mutations) in {:.2}s",
        seeds.len(),
        artifacts.len(),
        started.elapsed().as_secs_f64()
    );
}

macro_rules! targets {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                smoke(stringify!($name));
            }
        )*

        /// Every target of the library has its test here (and a fuzz_targets/ file).
        #[test]
        fn every_target_is_smoked() {
            let here: Vec<&str> = vec![$(stringify!($name)),*];
            let lib: Vec<&str> = kubejoin::fuzzing::TARGETS.iter().map(|(n, _)| *n).collect();
            assert_eq!(here, lib);
            for t in lib {
                let file = fuzz_dir().join("fuzz_targets").join(format!("{t}.rs"));
                let text = std::fs::read_to_string(&file)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
                assert!(
                    text.contains(&format!("kubejoin::fuzzing::{t}(data)")),
                    "{} does not call kubejoin::fuzzing::{t}",
                    file.display()
                );
            }
        }
    };
}

targets!(
    cluster_info,
    cmdline,
    dhcp,
    joinconfig,
    jws,
    kubeconfig,
    modules_dep,
    sntp,
    sysctl_d,
    userdata,
    x509,
);

/// The mutator is deterministic and its inputs stay bounded.
#[test]
fn mutations_are_deterministic_and_bounded() {
    let pool = vec![b"key=value \"quoted\"".to_vec(), Vec::new()];
    let run = |seed| {
        let mut rng = Rng::new(seed);
        (0..500)
            .map(|_| mutate(&mut rng, &pool))
            .collect::<Vec<_>>()
    };
    let a = run(42);
    assert!(a == run(42), "the same seed gives the same inputs");
    assert!(a != run(43), "another seed gives other inputs");
    assert!(a.iter().all(|d| d.len() <= MAX_LEN));
    // It does change things.
    assert!(a.iter().filter(|d| **d != pool[0] && !d.is_empty()).count() > 400);
}
