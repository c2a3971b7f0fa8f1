//! "Did you mean …?": the one edit distance, and the closest candidate under a caller's rule
//! of what is close enough (a flag, a command, a kernel command line key, a config field).

/// Levenshtein distance over chars (two rows).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate nearest to `typed` (the first of equals) among those `close_enough(distance,
/// candidate)` accepts.
pub fn closest<'a>(
    typed: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    close_enough: impl Fn(usize, &str) -> bool,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(typed, c), c))
        .filter(|(d, c)| close_enough(*d, c))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_and_the_closest_candidate() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("tlsBootstrapTokn", "tlsBootstrapToken"), 1);
        assert_eq!(edit_distance("héllo", "hello"), 1);
        let near = |d: usize, _: &str| d <= 2;
        assert_eq!(closest("jion", ["plan", "join"], near), Some("join"));
        assert_eq!(closest("x", ["join", "plan"], |d, _| d <= 1), None);
    }
}
