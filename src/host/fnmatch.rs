//! Shell-style wildcard matching (`*`, `?`, `[...]`), as used by `modules.alias` patterns
//! (kmod matches them with fnmatch(3) without flags) and by sysctl.d glob keys (matched one
//! path component at a time, like glob(3), so `*` never crosses a `/`).

/// Whether `pattern` contains a wildcard at all (a plain name is looked up, not matched).
pub fn is_pattern(pattern: &str) -> bool {
    pattern.bytes().any(|b| matches!(b, b'*' | b'?' | b'['))
}

/// fnmatch(3) without flags: `*` matches any run of bytes (including none), `?` one byte,
/// `[abc]`, `[a-z]`, `[!a-z]` / `[^a-z]` one byte of (or not of) a set. A `[` without a
/// closing `]` matches itself. `\` quotes the next byte.
pub fn fnmatch(pattern: &str, text: &str) -> bool {
    matches(pattern.as_bytes(), text.as_bytes())
}

fn matches(p: &[u8], t: &[u8]) -> bool {
    // Iterative matcher with one backtrack point for the last `*`: linear in practice and
    // without recursion, so hostile alias files cannot blow the stack of PID 1.
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
                continue;
            }
            Some(b'?') => {
                pi += 1;
                ti += 1;
                continue;
            }
            Some(b'[') => {
                if let Some((ok, next)) = class(p, pi, t[ti]) {
                    if ok {
                        pi = next;
                        ti += 1;
                        continue;
                    }
                } else if t[ti] == b'[' {
                    pi += 1;
                    ti += 1;
                    continue;
                }
            }
            Some(b'\\') if pi + 1 < p.len() && p[pi + 1] == t[ti] => {
                pi += 2;
                ti += 1;
                continue;
            }
            Some(b'\\') if pi + 1 < p.len() => {}
            Some(&c) if c == t[ti] => {
                pi += 1;
                ti += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi.min(p.len())..].iter().all(|&c| c == b'*')
}

/// Matches byte `c` against the bracket expression starting at `p[start] == b'['`.
/// Returns whether it matched and the index after the closing `]`, or `None` when the
/// bracket is not closed (then `[` is an ordinary byte).
fn class(p: &[u8], start: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let lo = *p.get(i)?;
        if lo == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|&h| h != b']') {
            let hi = p[i + 2];
            if lo <= c && c <= hi {
                matched = true;
            }
            i += 3;
        } else {
            if lo == c {
                matched = true;
            }
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(fnmatch("virtio:d00000001v*", "virtio:d00000001v00001AF4"));
        assert!(!fnmatch("virtio:d00000001v*", "virtio:d00000002v00001AF4"));
        assert!(fnmatch(
            "pci:v00001AF4d00001000sv*sd*bc*sc*i*",
            "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"
        ));
        assert!(fnmatch("fs-overlay", "fs-overlay"));
        assert!(fnmatch("a?c", "abc"));
        assert!(!fnmatch("a?c", "ac"));
        assert!(fnmatch("*", ""));
        assert!(fnmatch("eth[0-9]", "eth3"));
        assert!(!fnmatch("eth[!0-9]", "eth3"));
        assert!(fnmatch("eth[!0-9]", "ethx"));
        assert!(fnmatch("x[]]y", "x]y"));
        assert!(fnmatch("a[b", "a[b"), "an unclosed bracket is literal");
        assert!(fnmatch(r"a\*b", "a*b"));
        assert!(!fnmatch(r"a\*b", "axb"));
        assert!(fnmatch("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!fnmatch("*a*b*c*", "xxaxxcxxbxx"));
        assert!(is_pattern("net.ipv4.conf.*.rp_filter"));
        assert!(!is_pattern("net.ipv4.ip_forward"));
    }
}
