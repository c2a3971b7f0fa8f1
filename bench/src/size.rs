//! Section 1: what the binary costs an initramfs — its size as shipped (stripped, static) and
//! compressed the way initramfs images are (gzip -9, zstd -19).

use crate::{err, Error};
use serde_json::{json, Value};
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

/// Size, stripped/static checks and compressed sizes of `bin`.
pub fn measure(bin: &Path) -> Result<Value, Error> {
    let bytes = std::fs::read(bin).map_err(|e| err(format!("reading {}: {e}", bin.display())))?;
    let sections = tool_output("readelf", &["-SW"], bin)?;
    let program = tool_output("readelf", &["-lW"], bin)?;
    let dynamic = tool_output("readelf", &["-dW"], bin).unwrap_or_default();
    let stripped = !sections.contains(".symtab") && !sections.contains(".debug_");
    let is_static =
        !program.contains("Requesting program interpreter") && !dynamic.contains("(NEEDED)");
    let gzip = compressed_size("gzip", &["-9", "-n", "-c"], &bytes)?;
    let zstd = compressed_size("zstd", &["-19", "-q", "-c"], &bytes)?;
    Ok(json!({
        "path": bin.display().to_string(),
        "bytes": bytes.len(),
        "stripped": stripped,
        "static": is_static,
        "gzip_9_bytes": gzip,
        "zstd_19_bytes": zstd,
    }))
}

fn tool_output(tool: &str, args: &[&str], file: &Path) -> Result<String, Error> {
    let out = Command::new(tool)
        .args(args)
        .arg(file)
        .stderr(Stdio::null())
        .output()
        .map_err(|e| err(format!("running {tool}: {e}")))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Bytes `tool args` writes for `input` on stdin.
fn compressed_size(tool: &str, args: &[&str], input: &[u8]) -> Result<usize, Error> {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| err(format!("running {tool} (is it installed?): {e}")))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| err(format!("{tool}: no stdin")))?;
    let data = input.to_vec();
    // Feed stdin from a thread so a full stdout pipe cannot deadlock us.
    let feeder = std::thread::spawn(move || stdin.write_all(&data));
    let out = child
        .wait_with_output()
        .map_err(|e| err(format!("{tool}: {e}")))?;
    feeder
        .join()
        .map_err(|_| err(format!("{tool}: the stdin feeder panicked")))?
        .map_err(|e| err(format!("{tool}: writing its input: {e}")))?;
    if !out.status.success() {
        return Err(err(format!("{tool} failed: {}", out.status)));
    }
    Ok(out.stdout.len())
}
