//! Did-you-mean suggestions for misspelt names.
//!
//! A candidate is accepted when its optimal-string-alignment (Damerau)
//! distance to the written name is small relative to the name's length (one
//! edit up to 4 characters, two up to 8, three beyond), or when it differs only
//! in case. Ties go to the candidate with the higher Jaro-Winkler similarity,
//! then to the first one offered, so results are deterministic.

/// The best candidate close to `name`, if any.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let max = match name.chars().count() {
        0..=2 => 1,
        3..=4 => 1,
        5..=8 => 2,
        _ => 3,
    };
    let lower = name.to_lowercase();
    let mut best: Option<(usize, f64, &'a str)> = None;
    for cand in candidates {
        if cand == name || cand.is_empty() {
            continue;
        }
        let dist = if cand.to_lowercase() == lower {
            0
        } else {
            strsim::osa_distance(name, cand)
        };
        // Very short names only match on a single substitution of a
        // same-length word, to avoid suggesting `b` for `x`.
        if dist > max || (name.len() <= 2 && cand.len() != name.len()) || dist >= name.len().max(1)
        {
            continue;
        }
        let sim = strsim::jaro_winkler(name, cand);
        let better = match best {
            None => true,
            Some((d, s, _)) => dist < d || (dist == d && sim > s),
        };
        if better {
            best = Some((dist, sim, cand));
        }
    }
    best.map(|(_, _, c)| c)
}

/// `did you mean `x`?` for the best candidate, if any.
pub fn help<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    did_you_mean(name, candidates).map(|c| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, cands: &[&str]) -> Option<String> {
        did_you_mean(name, cands.iter().copied()).map(str::to_string)
    }

    #[test]
    fn finds_transpositions_and_typos() {
        assert_eq!(
            check("temprature", &["pump", "temperature"]).as_deref(),
            Some("temperature")
        );
        assert_eq!(
            check("wehre", &["where", "window"]).as_deref(),
            Some("where")
        );
        assert_eq!(
            check("Readng", &["Reading", "Alarm"]).as_deref(),
            Some("Reading")
        );
    }

    #[test]
    fn rejects_distant_names() {
        assert_eq!(check("x", &["y", "pump"]), None);
        assert_eq!(check("pressure", &["pump", "level"]), None);
    }

    #[test]
    fn case_only_differences_match() {
        assert_eq!(check("reading", &["Reading"]).as_deref(), Some("Reading"));
    }
}
