//! A small deterministic YAML emitter that writes a JSON value the way kubeadm's
//! `kubeadmutil.MarshalToYaml` does: the object is JSON-encoded, then sigs.k8s.io/yaml's
//! `JSONToYAML` re-emits it with go-yaml v2, which sorts mapping keys, puts a sequence that is a
//! mapping value at the mapping's own indentation (`- ` flush with the key), writes `{}`/`[]`
//! for empty collections and `null` for null, and quotes a string only when it would not read
//! back as the same string.
//!
//! Scalar rules follow go-yaml v2 (`encode.go` `stringv`, `resolve.go`, `emitterc.go`
//! `yaml_emitter_analyze_scalar`/`select_scalar_style`): a string that would resolve to another
//! type (null, bool incl. `yes`/`on`, int incl. `0x`/octal/`_`, float, base-60 float,
//! timestamp) is double-quoted; one that cannot be plain (leading or trailing space, an
//! indicator at the start, `: ` or ` #` inside) is single-quoted; one with control characters is
//! double-quoted with escapes. Not reproduced: go-yaml's folding of plain strings with spaces at
//! 80 columns and multi-line literal blocks (no manifest kubejoin renders has either; a string
//! containing a newline is emitted double-quoted, which reads back identically).
//!
//! kubejoin is moving off serde_yaml; this emitter serves the fixed shapes of phase 1.

use serde_json::Value;

/// Emits `v` (normally an object) as a YAML document.
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => emit_map(&mut out, m, 0),
        Value::Array(a) if !a.is_empty() => emit_seq(&mut out, a, 0),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn is_collection(v: &Value) -> bool {
    matches!(v, Value::Object(m) if !m.is_empty()) || matches!(v, Value::Array(a) if !a.is_empty())
}

fn sorted(m: &serde_json::Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = m.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

/// A mapping whose first line continues the current one when `first_inline` (after `- `).
fn emit_map_body(
    out: &mut String,
    m: &serde_json::Map<String, Value>,
    indent: usize,
    first_inline: bool,
) {
    for (i, (k, v)) in sorted(m).into_iter().enumerate() {
        if i > 0 || !first_inline {
            pad(out, indent);
        }
        out.push_str(&string_scalar(k));
        out.push(':');
        match v {
            Value::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                emit_map(out, inner, indent + 2);
            }
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                emit_seq(out, items, indent);
            }
            other => {
                out.push(' ');
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

fn emit_map(out: &mut String, m: &serde_json::Map<String, Value>, indent: usize) {
    emit_map_body(out, m, indent, false);
}

fn emit_seq(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        pad(out, indent);
        out.push_str("- ");
        match item {
            Value::Object(m) if !m.is_empty() => emit_map_body(out, m, indent + 2, true),
            Value::Array(inner) if !inner.is_empty() => {
                // go-yaml puts a nested sequence's first item on the same line.
                let mut nested = String::new();
                emit_seq(&mut nested, inner, indent + 2);
                out.push_str(nested.trim_start());
            }
            other => {
                debug_assert!(!is_collection(other));
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string_scalar(s),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
    }
}

/// One string as go-yaml v2 writes it.
pub fn string_scalar(s: &str) -> String {
    if s.chars()
        .any(|c| (c.is_control() && c != '\n') || c == '\u{feff}')
        || s.contains('\n')
    {
        return double_quoted(s);
    }
    if resolves_to_non_string(s) {
        return double_quoted(s);
    }
    if plain_allowed(s) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "''"))
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() || c == '\u{feff}' => {
                let n = c as u32;
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02X}"));
                } else {
                    out.push_str(&format!("\\u{n:04X}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// libyaml's analysis for block context: may this string be written plain?
fn plain_allowed(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() {
        return false;
    }
    if b[0] == b' ' || b[b.len() - 1] == b' ' {
        return false;
    }
    if s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    let ws_after = |i: usize| i + 1 >= b.len() || b[i + 1] == b' ' || b[i + 1] == b'\t';
    for (i, &c) in b.iter().enumerate() {
        if i == 0 {
            match c {
                b'#' | b',' | b'[' | b']' | b'{' | b'}' | b'&' | b'*' | b'!' | b'|' | b'>'
                | b'\'' | b'"' | b'%' | b'@' | b'`' => return false,
                b'?' | b':' | b'-' if ws_after(i) => return false,
                _ => {}
            }
        } else {
            match c {
                b':' if ws_after(i) => return false,
                b'#' if b[i - 1] == b' ' || b[i - 1] == b'\t' => return false,
                _ => {}
            }
        }
    }
    true
}

/// go-yaml v2's `resolve` for an untagged plain scalar: would it read back as something other
/// than this string?
fn resolves_to_non_string(s: &str) -> bool {
    const SPECIAL: &[&str] = &[
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
        "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
        ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
        ".NaN", ".NAN", "<<",
    ];
    if SPECIAL.contains(&s) {
        return true;
    }
    let first = s.as_bytes()[0];
    if !(first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'.')) {
        return false;
    }
    is_int(s) || is_float(s) || is_base60_float(s) || is_timestamp(s)
}

fn is_int(s: &str) -> bool {
    let plain: String = s.chars().filter(|c| *c != '_').collect();
    let body = plain
        .strip_prefix('-')
        .or_else(|| plain.strip_prefix('+'))
        .unwrap_or(&plain);
    if body.is_empty() {
        return false;
    }
    let all =
        |digits: &str, radix: u32| !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix));
    if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        return all(h, 16);
    }
    if let Some(o) = body.strip_prefix("0o").or_else(|| body.strip_prefix("0O")) {
        return all(o, 8);
    }
    if let Some(bits) = body.strip_prefix("0b").or_else(|| body.strip_prefix("0B")) {
        return all(bits, 2);
    }
    if body.len() > 1 && body.starts_with('0') {
        return all(&body[1..], 8);
    }
    all(body, 10)
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$` (underscores removed first).
fn is_float(s: &str) -> bool {
    let plain: String = s.chars().filter(|c| *c != '_').collect();
    let b = plain.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`
fn is_base60_float(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (main, frac) = match s.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (s, None),
    };
    if let Some(f) = frac {
        if !f.chars().all(|c| c.is_ascii_digit() || c == '_') {
            return false;
        }
    }
    let mut parts = main.split(':');
    let Some(head) = parts.next() else {
        return false;
    };
    if !head.starts_with(|c: char| c.is_ascii_digit())
        || !head.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        return false;
    }
    let mut n = 0;
    for p in parts {
        n += 1;
        let ok = match p.as_bytes() {
            [d] => d.is_ascii_digit(),
            [a, d] => (b'0'..=b'5').contains(a) && d.is_ascii_digit(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    n > 0
}

/// go-yaml's `parseTimestamp` accepts `YYYY-M?M-D?D` optionally followed by a time.
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 8 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    let rest = &s[5..];
    let mut it = rest.splitn(2, '-');
    let (Some(m), Some(tail)) = (it.next(), it.next()) else {
        return false;
    };
    if m.is_empty() || m.len() > 2 || !m.bytes().all(|c| c.is_ascii_digit()) {
        return false;
    }
    let d: String = tail.chars().take_while(|c| c.is_ascii_digit()).collect();
    if d.is_empty() || d.len() > 2 {
        return false;
    }
    let after = &tail[d.len()..];
    after.is_empty() || after.starts_with(['T', 't', ' ', '\t'])
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_yaml_layout() {
        let v = json!({
            "kind": "Pod", "apiVersion": "v1",
            "metadata": {"creationTimestamp": null, "labels": {"tier": "control-plane"}},
            "spec": {"containers": [{"name": "a", "command": ["x", "--y=1"], "b": {}}],
                      "empty": []},
            "status": {},
        });
        assert_eq!(
            to_yaml(&v),
            "apiVersion: v1\nkind: Pod\nmetadata:\n  creationTimestamp: null\n  labels:\n    \
             tier: control-plane\nspec:\n  containers:\n  - b: {}\n    command:\n    - x\n    \
             - --y=1\n    name: a\n  empty: []\nstatus: {}\n"
        );
    }

    #[test]
    fn quoting_follows_go_yaml() {
        for (s, want) in [
            ("", "\"\""),
            ("0", "\"0\""),
            ("true", "\"true\""),
            ("yes", "\"yes\""),
            ("on", "\"on\""),
            ("null", "\"null\""),
            ("1.5", "\"1.5\""),
            ("1e3", "\"1e3\""),
            ("0x1F", "\"0x1F\""),
            ("1_000", "\"1_000\""),
            ("1:20", "\"1:20\""),
            ("2001-12-14", "\"2001-12-14\""),
            ("250m", "250m"),
            ("100Mi", "100Mi"),
            ("10.0.2.15", "10.0.2.15"),
            ("10.0.2.15:6443", "10.0.2.15:6443"),
            (
                "--controllers=*,bootstrapsigner,tokencleaner",
                "--controllers=*,bootstrapsigner,tokencleaner",
            ),
            ("*", "'*'"),
            ("- x", "'- x'"),
            ("a: b", "'a: b'"),
            ("a #b", "'a #b'"),
            ("a#b", "a#b"),
            (" x", "' x'"),
            ("it's", "it's"),
            ("'q", "'''q'"),
            ("a\nb", "\"a\\nb\""),
            ("https://x:1", "https://x:1"),
            ("::1", "::1"),
        ] {
            assert_eq!(string_scalar(s), want, "{s:?}");
        }
    }
}
