//! "Did you mean ...?": the closest known name to a misspelt one.

/// The candidate closest to `name` by edit distance (transpositions count as one edit),
/// if it is close enough to be a likely misspelling: none for one-letter names, at most 1
/// edit for names of up to 3 characters, 2 up to 8, and 3 beyond. Ties go to the first candidate.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let distance = strsim::damerau_levenshtein(name, candidate);
        let longest = name.chars().count().max(candidate.chars().count());
        let allowed = match longest {
            // One-letter names are all one edit apart; suggesting one for another is noise.
            0..=1 => 0,
            2..=3 => 1,
            4..=8 => 2,
            _ => 3,
        };
        if distance == 0 || distance > allowed {
            continue;
        }
        if best.is_none_or(|(best_distance, _)| distance < best_distance) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn finds_close_names_only() {
        let layers = ["linear", "conv2d", "relu", "maxpool", "avgpool", "flatten"];
        assert_eq!(closest("lineer", layers), Some("linear"));
        assert_eq!(closest("conv2", layers), Some("conv2d"));
        assert_eq!(closest("rleu", layers), Some("relu"));
        assert_eq!(closest("linear", layers), None);
        assert_eq!(closest("softmax", layers), None);
    }
}
