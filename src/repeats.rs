//! A warning whose condition can hold once per record (a record left out, a value replaced) is
//! logged once with a count, not once per record: the first occurrence at once, then at most
//! one line a minute per condition, carrying how many occurrences it stands for.
//!
//! Invariants:
//! - [`Repeats::hit`] answers `Some(n)` for the first occurrence of a condition (`n` = 1) and
//!   for the first one a minute or more after the last line (`n` = the occurrences since that
//!   line, this one included); `None` otherwise. No occurrence goes uncounted.
//! - Conditions are told apart by a key the caller builds from names (table, policy), never
//!   from row values.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a logged condition stays quiet.
const QUIET: Duration = Duration::from_secs(60);

#[derive(Default)]
pub(crate) struct Repeats {
    /// condition → (when it was last logged, occurrences since then)
    seen: HashMap<String, (Instant, u64)>,
}

impl Repeats {
    /// One occurrence of `condition` now: whether to log it, and for how many occurrences.
    pub(crate) fn hit(&mut self, condition: &str) -> Option<u64> {
        self.hit_at(condition, Instant::now())
    }

    fn hit_at(&mut self, condition: &str, now: Instant) -> Option<u64> {
        match self.seen.get_mut(condition) {
            None => {
                self.seen.insert(condition.to_string(), (now, 0));
                Some(1)
            }
            Some((at, n)) => {
                *n += 1;
                if now.duration_since(*at) < QUIET {
                    return None;
                }
                let count = *n;
                *at = now;
                *n = 0;
                Some(count)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_then_a_count_a_minute() {
        let mut r = Repeats::default();
        let t0 = Instant::now();
        assert_eq!(r.hit_at("t/skip", t0), Some(1));
        for i in 1..1000 {
            assert_eq!(r.hit_at("t/skip", t0 + Duration::from_millis(i)), None);
        }
        // another condition is its own
        assert_eq!(r.hit_at("u/skip", t0), Some(1));
        // a minute on: one line standing for the 999 quiet ones and this one
        assert_eq!(r.hit_at("t/skip", t0 + QUIET), Some(1000));
        assert_eq!(r.hit_at("t/skip", t0 + QUIET), None);
    }
}
