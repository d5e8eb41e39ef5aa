//! A provider's published keys (a JWKS document), with the one caching policy both users follow
//! (the sign-in provider's keys in `jwt.rs`, FAL's webhook keys in the webhook function): keys
//! are fresh for a day after their fetch, and fetched again at most once a minute, the fetch
//! claimed before it is made, so a burst of bad tokens or signatures, or an unreachable
//! provider, costs one fetch a minute, never one per request. What a user does with keys that
//! are no longer fresh is its own: sign-in refuses the token, the webhook uses them only while a
//! fetch may not be tried (and answers 503, for FAL to deliver again, when a fetch fails).

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Cached keys are used this long before they are fetched again.
pub const KEYS_TTL: Duration = Duration::from_secs(24 * 3600);
/// Fewest time between two fetches.
pub const REFRESH_AT_MOST_EVERY: Duration = Duration::from_secs(60);

/// Why no keys came back from a fetch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// A fetch was tried less than [`REFRESH_AT_MOST_EVERY`] ago.
    #[error("the keys were tried less than a minute ago")]
    TooSoon,
    #[error("the keys could not be fetched: {0}")]
    Failed(String),
}

struct State<K> {
    keys: Option<(Arc<K>, Instant)>,
    /// When a fetch was last tried (claimed before fetching).
    tried_at: Option<Instant>,
}

/// The keys at one URL, read into `K` by a parser.
pub struct JwksCache<K> {
    http: reqwest::Client,
    url: String,
    parse: fn(&str) -> Result<K, String>,
    state: Mutex<State<K>>,
}

impl<K> JwksCache<K> {
    /// A cache of the keys at `url`, fetched with `http` (whose timeout bounds a fetch) and
    /// read by `parse`.
    pub fn new(
        http: reqwest::Client,
        url: impl Into<String>,
        parse: fn(&str) -> Result<K, String>,
    ) -> Self {
        Self {
            http,
            url: url.into(),
            parse,
            state: Mutex::new(State {
                keys: None,
                tried_at: None,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The keys held, and whether they are within [`KEYS_TTL`] of their fetch.
    pub fn cached(&self) -> Option<(Arc<K>, bool)> {
        let state = self.state();
        let (keys, fetched_at) = state.keys.as_ref()?;
        Some((keys.clone(), fetched_at.elapsed() < KEYS_TTL))
    }

    /// Holds `keys` as if fetched now (a test, or keys known at start).
    pub fn hold(&self, keys: K) {
        self.state().keys = Some((Arc::new(keys), Instant::now()));
    }

    /// Takes the one fetch a minute allows; `false` when one was tried within the minute.
    fn claim_fetch(&self) -> bool {
        let mut state = self.state();
        if state
            .tried_at
            .is_some_and(|at| at.elapsed() < REFRESH_AT_MOST_EVERY)
        {
            return false;
        }
        state.tried_at = Some(Instant::now());
        true
    }

    /// Fetches the keys again unless a fetch was tried within the minute; a failed fetch keeps
    /// the keys held.
    pub async fn refresh(&self) -> Result<Arc<K>, FetchError> {
        if !self.claim_fetch() {
            return Err(FetchError::TooSoon);
        }
        let failed = |e: reqwest::Error| FetchError::Failed(e.to_string());
        let body = self
            .http
            .get(&self.url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(failed)?
            .text()
            .await
            .map_err(failed)?;
        let keys = Arc::new((self.parse)(&body).map_err(FetchError::Failed)?);
        self.state().keys = Some((keys.clone(), Instant::now()));
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(body: &str) -> Result<Vec<String>, String> {
        let words: Vec<String> = body.split_whitespace().map(str::to_owned).collect();
        if words.is_empty() {
            Err("no key".to_owned())
        } else {
            Ok(words)
        }
    }

    /// A server answering each GET with the next of `bodies` (the last one again once spent),
    /// counting the fetches.
    async fn provider(bodies: &[&'static str]) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let fetches = Arc::new(AtomicUsize::new(0));
        let counted = fetches.clone();
        let bodies = bodies.to_vec();
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let n = counted.fetch_add(1, Ordering::SeqCst);
                let body = bodies[n.min(bodies.len() - 1)];
                async move { body }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, fetches)
    }

    #[tokio::test(start_paused = true)]
    async fn keys_are_fetched_at_most_once_a_minute_and_used_for_a_day() {
        let (url, fetches) = provider(&["k1", "", "k2"]).await;
        let cache = JwksCache::new(reqwest::Client::new(), url, words);
        assert!(cache.cached().is_none());
        assert_eq!(*cache.refresh().await.unwrap(), ["k1"]);
        // Within the minute, however many ask: no fetch.
        for _ in 0..5 {
            assert_eq!(cache.refresh().await, Err(FetchError::TooSoon));
        }
        assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1);
        // A minute on, a fetch that reads no key keeps the keys held.
        tokio::time::advance(REFRESH_AT_MOST_EVERY).await;
        assert!(matches!(cache.refresh().await, Err(FetchError::Failed(_))));
        let (held, fresh) = cache.cached().unwrap();
        assert_eq!((held.as_slice(), fresh), (&["k1".to_owned()][..], true));
        // A day after the last fetch, the keys held are stale; the next fetch renews them.
        tokio::time::advance(KEYS_TTL).await;
        assert!(!cache.cached().unwrap().1);
        assert_eq!(*cache.refresh().await.unwrap(), ["k2"]);
        assert!(cache.cached().unwrap().1);
    }

    #[tokio::test]
    async fn an_unreachable_provider_is_a_failed_fetch_and_claims_the_minute() {
        let cache = JwksCache::new(
            reqwest::Client::new(),
            "http://127.0.0.1:9/jwks.json",
            words,
        );
        assert!(matches!(cache.refresh().await, Err(FetchError::Failed(_))));
        assert_eq!(cache.refresh().await, Err(FetchError::TooSoon));
        cache.hold(vec!["k".to_owned()]);
        assert!(cache.cached().unwrap().1);
    }
}
