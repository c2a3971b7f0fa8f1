//! Hostile YAML through the real binary: every shape that made the previous decoder (serde_yaml
//! over unsafe-libyaml) burn CPU — deep flow nesting (quadratic: a 222-byte gzip of 60,000 `[`
//! took 36 s in `kubejoin plan`), deep block nesting, alias floods ("billion laughs"),
//! document storms — is refused with exit 2 and an error that names the limit, on each route a
//! config reaches the parser: `kubejoin plan --config`, `kubejoin join --config`, and cloud
//! user-data (gzip-wrapped) in a `--metadata-dir` replay.
//!
//! No timing is asserted here (`run_bounded` only keeps a hung binary from hanging the suite);
//! the worst-case parse times are measured by `scripts/bench` and written in README.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);
/// The user-data and config size cap.
const CAP: usize = 1024 * 1024;

fn kubejoin(args: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubejoin"));
    cmd.args(args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = support::run_bounded(cmd, LIMIT);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The hostile shapes, each as large as the cap allows (`billion laughs` is small: it expands),
/// with the limit its refusal must name.
fn shapes() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let nesting = "limit of 64 levels of nesting";
    let nodes = "limit of 100000 nodes";
    let mut laughs = String::from("a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n");
    let mut prev = 'a';
    for n in 'b'..='j' {
        let refs = vec![format!("*{prev}"); 9].join(",");
        laughs.push_str(&format!("{n}: &{n} [{refs}]\n"));
        prev = n;
    }
    let mut flood = format!("a: &a [{}x]\nb: [", "x,".repeat(1000));
    while flood.len() + 8 < CAP {
        flood.push_str("*a,");
    }
    flood.push_str("*a]\n");
    let mut block_map = String::new();
    for i in 0.. {
        let line = format!("{}k:\n", " ".repeat(i));
        if block_map.len() + line.len() > CAP {
            break;
        }
        block_map.push_str(&line);
    }
    let mut balanced = vec![b'['; CAP / 2];
    balanced.extend(vec![b']'; CAP / 2]);
    vec![
        ("flow sequences", vec![b'['; CAP], nesting),
        ("flow mappings", vec![b'{'; CAP], nesting),
        ("balanced flow sequences", balanced, nesting),
        (
            "block sequences on one line",
            {
                let mut b = b"- ".repeat(CAP / 2 - 1);
                b.extend_from_slice(b"x\n");
                b
            },
            nesting,
        ),
        ("block mappings", block_map.into_bytes(), nesting),
        ("billion laughs", laughs.into_bytes(), nodes),
        ("alias flood", flood.into_bytes(), nodes),
        (
            "document storm",
            b"---\n".repeat(CAP / 4),
            "limit of 1000 documents",
        ),
        (
            "flat sequence",
            {
                let mut b = b"[".to_vec();
                b.extend(b"1,".repeat(CAP / 2 - 2));
                b.push(b'1');
                b.push(b']');
                b
            },
            nodes,
        ),
    ]
}

#[test]
fn plan_with_a_hostile_config_file_is_refused_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes, limit) in shapes() {
        assert!(bytes.len() <= CAP, "{name}: {}", bytes.len());
        let file = dir.path().join("config.yaml");
        std::fs::write(&file, &bytes).unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::write(root.join("proc/cmdline"), "console=ttyS0\n").unwrap();
        let (code, stderr) = kubejoin(&[
            "plan",
            "--root",
            root.to_str().unwrap(),
            "--config",
            file.to_str().unwrap(),
        ]);
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(stderr.contains(limit), "{name}: {stderr}");
        assert!(
            stderr.contains("at line "),
            "{name}: the position: {stderr}"
        );
    }
}

#[test]
fn join_with_a_hostile_config_file_is_refused_before_any_network() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes, limit) in shapes() {
        let file = dir.path().join("join.yaml");
        std::fs::write(&file, &bytes).unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        // The endpoint is a closed loopback port: nothing may be attempted anyway.
        let (code, stderr) = kubejoin(&[
            "join",
            "--config",
            file.to_str().unwrap(),
            "--root",
            root.to_str().unwrap(),
            "--skip-phases",
            "host",
        ]);
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(stderr.contains(limit), "{name}: {stderr}");
        // The same reader as the boot sources' (`plan --config` above), so the same message:
        // the file, then the position.
        assert!(
            stderr.contains(&format!("file:{}", file.display())) && stderr.contains("at line "),
            "{name}: the file and position: {stderr}"
        );
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// The case of the issue: a few hundred bytes of gzip user-data that expand to 60,000 `[`.
#[test]
fn gzip_user_data_of_deep_nesting_is_refused_in_a_replay() {
    let dir = tempfile::tempdir().unwrap();
    let boot = dir.path();
    std::fs::write(
        boot.join("cmdline"),
        "console=ttyS0 kubejoin.platform=aws\n",
    )
    .unwrap();
    let meta = boot.join("metadata/aws/latest");
    std::fs::create_dir_all(meta.join("api")).unwrap();
    std::fs::write(meta.join("api/token"), "AQAEAGf1Jm3mGZx0tm4QJ0cUwTn3vI4S\n").unwrap();
    let data = gzip(&[b'['; 60_000]);
    assert!(data.len() < 300, "{} bytes", data.len());
    std::fs::write(meta.join("user-data"), &data).unwrap();
    let root = boot.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let arg = |p: &Path| p.to_str().unwrap().to_string();
    let (code, stderr) = kubejoin(&[
        "plan",
        "--root",
        &arg(&root),
        "--cmdline-file",
        &arg(&boot.join("cmdline")),
        "--metadata-dir",
        &arg(&boot.join("metadata")),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("metadata:aws"), "{stderr}");
    assert!(
        stderr.contains("exceeds kubejoin's limit of 64 levels of nesting at line 1 column 65"),
        "{stderr}"
    );

    // The same bytes a level deeper than real configs go, but within the limit, still parse
    // as YAML (and are then refused for what they are, not for their shape).
    let ok_depth = format!("kubejoin: {}x{}\n", "[".repeat(60), "]".repeat(60));
    std::fs::write(meta.join("user-data"), gzip(ok_depth.as_bytes())).unwrap();
    let (code, stderr) = kubejoin(&[
        "plan",
        "--root",
        &arg(&root),
        "--cmdline-file",
        &arg(&boot.join("cmdline")),
        "--metadata-dir",
        &arg(&boot.join("metadata")),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(!stderr.contains("levels of nesting"), "{stderr}");
    assert!(stderr.contains("must hold a mapping"), "{stderr}");
}
