//! The status tokens this instance issued, kept while they have nearly all their life left: a
//! task's links are signed again once a minute, not on every poll of a browser following it
//! (once a second). A token handed out again has at most [`reuse_for`] less life than a fresh
//! one would.

use crate::domain::JobId;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The tasks this instance keeps a token for; past it, the oldest half is dropped.
const CAPACITY: usize = 10_000;

/// How long a token is handed out again: a tenth of its life, at most a minute.
pub fn reuse_for(ttl: Duration) -> Duration {
    (ttl / 10).min(Duration::from_secs(60))
}

/// A token as issued: its text and its expiry (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub token: String,
    pub expires: i64,
}

struct Kept {
    owner: String,
    /// When it was issued (Unix seconds).
    issued_at: i64,
    issued: Issued,
}

#[derive(Default)]
pub struct IssuedTokens {
    kept: Mutex<HashMap<JobId, Kept>>,
}

impl IssuedTokens {
    /// The token of `task` for `owner` issued at most [`reuse_for`]`(ttl)` before `now` (Unix
    /// seconds), else a new one from `issue`.
    pub fn get_or_issue(
        &self,
        task: JobId,
        owner: &str,
        ttl: Duration,
        now: i64,
        issue: impl FnOnce() -> Issued,
    ) -> Issued {
        let reuse = i64::try_from(reuse_for(ttl).as_secs()).unwrap_or(i64::MAX);
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = kept.get(&task)
            && k.owner == owner
            && (0..reuse).contains(&now.saturating_sub(k.issued_at))
        {
            return k.issued.clone();
        }
        let issued = issue();
        if kept.len() >= CAPACITY {
            let mut ages: Vec<i64> = kept.values().map(|k| k.issued_at).collect();
            let (_, median, _) = ages.select_nth_unstable(CAPACITY / 2);
            let median = *median;
            kept.retain(|_, k| k.issued_at > median);
        }
        kept.insert(
            task,
            Kept {
                owner: owner.to_owned(),
                issued_at: now,
                issued: issued.clone(),
            },
        );
        issued
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn issue(n: &mut u32, now: i64) -> Issued {
        *n += 1;
        Issued {
            token: format!("token-{n}"),
            expires: now + 3600,
        }
    }

    #[test]
    fn a_token_is_handed_out_again_for_a_minute_then_issued_anew() {
        let tokens = IssuedTokens::default();
        let task = JobId::new();
        let mut n = 0;
        let first = tokens.get_or_issue(task, "alice", HOUR, 1000, || issue(&mut n, 1000));
        let again = tokens.get_or_issue(task, "alice", HOUR, 1059, || issue(&mut n, 1059));
        assert_eq!(again, first);
        let fresh = tokens.get_or_issue(task, "alice", HOUR, 1060, || issue(&mut n, 1060));
        assert_eq!(fresh.token, "token-2");
        assert_eq!(n, 2);
    }

    #[test]
    fn another_owner_or_a_clock_gone_back_gets_a_new_token() {
        let tokens = IssuedTokens::default();
        let task = JobId::new();
        let mut n = 0;
        tokens.get_or_issue(task, "alice", HOUR, 1000, || issue(&mut n, 1000));
        tokens.get_or_issue(task, "bob", HOUR, 1001, || issue(&mut n, 1001));
        tokens.get_or_issue(task, "bob", HOUR, 990, || issue(&mut n, 990));
        assert_eq!(n, 3);
    }

    #[test]
    fn a_short_life_is_reused_a_tenth_of_it_and_what_is_kept_is_bounded() {
        assert_eq!(reuse_for(Duration::from_secs(30)), Duration::from_secs(3));
        // Reuse counts whole seconds: a life under 10 s is never reused.
        assert_eq!(reuse_for(Duration::from_secs(9)).as_secs(), 0);
        let tokens = IssuedTokens::default();
        let mut n = 0;
        for i in 0..CAPACITY as i64 + 1 {
            tokens.get_or_issue(JobId::new(), "alice", HOUR, i, || issue(&mut n, i));
        }
        let kept = tokens.kept.lock().unwrap().len();
        assert!(kept <= CAPACITY / 2 + 1, "{kept}");
    }
}
