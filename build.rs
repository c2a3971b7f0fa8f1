//! Build-time facts the binary needs: the clock floor (`KUBEJOIN_CLOCK_FLOOR`, seconds since the
//! Unix epoch, and `KUBEJOIN_CLOCK_FLOOR_SOURCE`), read by `src/clock/floor.rs`.
//!
//! The floor is when this binary was built, as reproducible builds define it: `SOURCE_DATE_EPOCH`
//! when set (scripts/lib.sh sets it to the last commit's time), else the committer time of `HEAD`
//! (`git log -1 --format=%ct`), else a fixed date. The same source gives the same binary, and the
//! floor is never later than the real time at which the binary can run.
//!
//! Only `SOURCE_DATE_EPOCH` triggers a re-run: a build without it keeps the commit time of the
//! first build in that target directory, an older and so still correct (only weaker) floor.

use std::process::Command;

include!("src/clock/build_floor.rs");

fn main() {
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/clock/build_floor.rs");
    let sde = std::env::var("SOURCE_DATE_EPOCH").ok();
    let commit = if sde.is_none() {
        Command::new("git")
            .args(["log", "-1", "--format=%ct"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
    } else {
        None
    };
    match choose_floor(sde.as_deref(), commit.as_deref()) {
        Ok((secs, source)) => {
            println!("cargo:rustc-env=KUBEJOIN_CLOCK_FLOOR={secs}");
            println!(
                "cargo:rustc-env=KUBEJOIN_CLOCK_FLOOR_SOURCE={}",
                source.id()
            );
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
