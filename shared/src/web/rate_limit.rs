//! Sliding-window rate limiting per API key (per client IP without a valid key), counted in the
//! store so every instance shares the window. The budget counts work, not requests: a request's
//! units are the files it stores and the jobs it creates, at least one; a route that stores
//! several files or creates several jobs charges them before it does any
//! ([`RateBudget::cover`]), so a request that would pass the budget is refused whole. Limited responses carry `X-RateLimit-*` headers; a refusal is a 429
//! `RATE_LIMITED` with `Retry-After` (none for work larger than a whole minute's budget, which
//! no wait lets through).

use super::auth::{Identified, presented_key};
use super::error::ApiError;
use crate::context::AppContext;
use crate::keys::{ADMIN_OWNER, Identity};
use crate::ports::{Store, StoreError};
use crate::rate_window::{Step, Verdict, WINDOW_SECS, judge, window_start};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use http::request::Parts;
use http::{HeaderMap, HeaderValue};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use utoipa_axum::router::UtoipaMethodRouter;

async fn identify(ctx: &AppContext, presented: Option<String>) -> Option<Identity> {
    match presented {
        Some(key) => ctx.keys.identify_credential(&key).await,
        None => None,
    }
}

fn credential(req: &Request) -> Option<String> {
    presented_key(req.headers()).map(str::to_owned)
}

/// `ip:` and the client's address.
fn address(req: &Request) -> String {
    // The closest proxy appends the address it saw; earlier entries are client-controlled.
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(|ip| ip.trim().to_owned());
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string());
    format!(
        "ip:{}",
        peer.or(forwarded).unwrap_or_else(|| "unknown".to_owned())
    )
}

fn set_headers(headers: &mut HeaderMap, limit: u64, verdict: &Verdict) {
    headers.insert("x-ratelimit-limit", HeaderValue::from(limit));
    headers.insert(
        "x-ratelimit-remaining",
        HeaderValue::from(verdict.remaining),
    );
    headers.insert(
        "x-ratelimit-reset",
        HeaderValue::from(verdict.reset.timestamp()),
    );
}

/// Counts one request of `subject` at `now` in the sliding window of a minute (see
/// [`judge`]).
async fn count_request(
    store: &dyn Store,
    subject: &str,
    limit: u64,
    now: DateTime<Utc>,
) -> Result<Verdict, StoreError> {
    count_units(store, subject, 0, 1, limit, now)
        .await
        .map(|counted| counted.verdict)
}

/// A count in the store: the verdict, and the shared counts it read (this window's, refused
/// units taken back, and last window's).
struct Counted {
    verdict: Verdict,
    current: f64,
    previous: f64,
}

/// Counts `units` of `subject`'s work at `now`, written with `settled` units allowed already
/// (counted by this instance, see [`LocalCounts`](crate::rate_window::LocalCounts)): refused units are taken back, so a client
/// that is refused, and retries, is not kept out by its own refusals.
async fn count_units(
    store: &dyn Store,
    subject: &str,
    settled: i64,
    units: i64,
    limit: u64,
    now: DateTime<Utc>,
) -> Result<Counted, StoreError> {
    let start = window_start(now);
    let current = store
        .add_to_counter(
            &counter_key(subject, start),
            settled.saturating_add(units),
            counter_expiry(start, now),
        )
        .await?
        .max(0) as f64;
    let previous = store
        .get_counter(&counter_key(subject, start - WINDOW_SECS))
        .await?
        .max(0) as f64;
    let verdict = judge(start, previous, current, units as f64, limit, now);
    let current = if verdict.allowed {
        current
    } else {
        store
            .add_to_counter(
                &counter_key(subject, start),
                -units,
                counter_expiry(start, now),
            )
            .await?;
        (current - units as f64).max(0.0)
    };
    Ok(Counted {
        verdict,
        current,
        previous,
    })
}

/// The store's counter of `subject`'s window starting at `start`.
fn counter_key(subject: &str, start: i64) -> String {
    format!("ratelimit:{subject}:{start}")
}

/// A counter lives two windows: the next one weighs it.
fn counter_expiry(start: i64, now: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(start + 2 * WINDOW_SECS, 0).unwrap_or(now)
}

/// Counts one keyless request of `subject`: decided by this instance's [`LocalCounts`](crate::rate_window::LocalCounts) between
/// its writes, else counted in the store with what this instance counted since its last write.
async fn count_keyless(
    ctx: &AppContext,
    subject: &str,
    limit: u64,
    now: DateTime<Utc>,
) -> Result<Verdict, StoreError> {
    let (pending, earlier) = match ctx.keyless_counts.count(subject, limit, now) {
        Step::Decided(verdict) => return Ok(verdict),
        Step::Write { pending, earlier } => (pending, earlier),
    };
    let store = ctx.store.as_ref();
    if let Some((start, units)) = earlier {
        store
            .add_to_counter(
                &counter_key(subject, start),
                units,
                counter_expiry(start, now),
            )
            .await?;
    }
    let counted = count_units(store, subject, pending, 1, limit, now).await?;
    ctx.keyless_counts
        .read(subject, counted.current, counted.previous, now);
    Ok(counted.verdict)
}

/// Takes back `units` counted at `now` (work refused after it was counted is not done).
async fn uncount_units(
    store: &dyn Store,
    subject: &str,
    units: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let start = window_start(now);
    store
        .add_to_counter(
            &counter_key(subject, start),
            -units,
            counter_expiry(start, now),
        )
        .await
        .map(drop)
}

/// What the rate limit left a request to spend: a route whose request does more than one unit
/// of work (stores several files, creates several jobs) covers the rest before doing any.
/// Outside a limited route it is unlimited.
#[derive(Clone, Default)]
pub struct RateBudget(Option<Arc<BudgetState>>);

struct BudgetState {
    ctx: AppContext,
    subject: String,
    limit: u64,
    /// The latest verdict, for the response's `X-RateLimit-*` headers.
    verdict: Mutex<Verdict>,
}

impl BudgetState {
    /// Refuses work that no wait can let through: more units than the limit allows a minute.
    fn within_limit(&self, units: u64) -> Result<(), ApiError> {
        if units > self.limit {
            Err(ApiError::WorkOverLimit {
                units,
                limit: self.limit,
            })
        } else {
            Ok(())
        }
    }
}

impl RateBudget {
    /// Covers a request whose work is `units` in all (each file stored and each job created is
    /// one; the request itself was counted as the first). Over the budget, nothing is charged
    /// and the request is refused whole (429 `RATE_LIMITED`, with `Retry-After` when waiting can
    /// let it through): the caller must not have stored anything yet.
    pub async fn cover(&self, units: u64) -> Result<(), ApiError> {
        let Some(state) = &self.0 else {
            return Ok(());
        };
        state.within_limit(units)?;
        let extra = i64::try_from(units.saturating_sub(1)).unwrap_or(i64::MAX);
        if extra == 0 {
            return Ok(());
        }
        let store = state.ctx.store.as_ref();
        let now = Utc::now();
        let verdict = match count_units(store, &state.subject, 0, extra, state.limit, now).await {
            Ok(counted) => counted.verdict,
            Err(err) => {
                // As for requests: the limit fails open while the store hiccups.
                tracing::warn!(error = %err, "rate limit counter unavailable");
                return Ok(());
            }
        };
        *state.verdict.lock().unwrap_or_else(|e| e.into_inner()) = verdict;
        if verdict.allowed {
            Ok(())
        } else {
            // Refused work was taken back by the count.
            Err(ApiError::RateLimited {
                retry_after_secs: verdict.retry_after_secs,
            })
        }
    }
}

impl RateBudget {
    /// Whether work of `units` in all could still be covered, by the last count (nothing is
    /// charged): a request that cannot fit is refused before it does the work of finding out
    /// (decoding its photos).
    pub fn check(&self, units: u64) -> Result<(), ApiError> {
        let Some(state) = &self.0 else {
            return Ok(());
        };
        state.within_limit(units)?;
        let verdict = *state.verdict.lock().unwrap_or_else(|e| e.into_inner());
        if units.saturating_sub(1) <= verdict.remaining {
            Ok(())
        } else {
            Err(ApiError::RateLimited {
                retry_after_secs: verdict.retry_after_secs.max(1),
            })
        }
    }

    /// Gives back what [`Self::cover`] charged for `units` when the work was refused after all
    /// (a validation that only the service can make): refused work is not counted.
    pub async fn refund(&self, units: u64) {
        let Some(state) = &self.0 else {
            return;
        };
        let extra = i64::try_from(units.saturating_sub(1)).unwrap_or(i64::MAX);
        if extra == 0 {
            return;
        }
        if let Err(err) =
            uncount_units(state.ctx.store.as_ref(), &state.subject, extra, Utc::now()).await
        {
            tracing::warn!(error = %err, "refused work not taken back from the rate limit");
            return;
        }
        let mut verdict = state.verdict.lock().unwrap_or_else(|e| e.into_inner());
        verdict.remaining = verdict
            .remaining
            .saturating_add(extra as u64)
            .min(state.limit);
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RateBudget {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().cloned().unwrap_or_default())
    }
}

/// The rate-limit subject of requests made with `owner`'s key.
fn owner_subject(owner: &str) -> String {
    if owner == ADMIN_OWNER {
        "key:admin".to_owned()
    } else {
        format!("key:{owner}")
    }
}

/// `route` with the rate limit in front of it (the limit counts in `ctx`'s store).
pub fn limited(
    (schemas, paths, router): UtoipaMethodRouter<AppContext>,
    ctx: &AppContext,
) -> UtoipaMethodRouter<AppContext> {
    let router = router.layer(axum::middleware::from_fn_with_state(ctx.clone(), limit));
    (schemas, paths, router)
}

/// Middleware for the routes that are rate limited.
pub async fn limit(State(ctx): State<AppContext>, mut req: Request, next: Next) -> Response {
    let identity = identify(&ctx, credential(&req)).await;
    let subject = match &identity {
        Some(Identity::User(name)) => owner_subject(name),
        Some(Identity::Admin) => owner_subject(ADMIN_OWNER),
        None => address(&req),
    };
    if let Some(identity) = identity {
        req.extensions_mut().insert(Identified(identity));
    }
    let limit = ctx.config.limits.rate_limit_per_minute;
    apply(&ctx, &subject, limit, Counting::Shared, req, next).await
}

/// Middleware for routes that also answer without a key (a task's status by token, or its
/// public view): requests without a valid key are counted, per client address, under
/// `PUBLIC_STATUS_RATE_LIMIT_PER_MINUTE`, whatever token they carry; a key that is no key counts
/// as none. A valid key passes untouched.
/// Keyless requests are counted by this instance between its writes to the store (see
/// [`LocalCounts`](crate::rate_window::LocalCounts)): a browser polling once a second costs a store write every 10 s, not every
/// poll.
pub async fn limit_keyless(
    State(ctx): State<AppContext>,
    mut req: Request,
    next: Next,
) -> Response {
    if let Some(identity) = identify(&ctx, credential(&req)).await {
        req.extensions_mut().insert(Identified(identity));
        return next.run(req).await;
    }
    let subject = format!("public-{}", address(&req));
    let limit = ctx.config.limits.public_status_rate_limit_per_minute;
    apply(&ctx, &subject, limit, Counting::Keyless, req, next).await
}

/// Where a request is counted.
#[derive(Clone, Copy, PartialEq)]
enum Counting {
    /// In the store, every request.
    Shared,
    /// By this instance first ([`count_keyless`]).
    Keyless,
}

async fn apply(
    ctx: &AppContext,
    subject: &str,
    limit: u64,
    counting: Counting,
    mut req: Request,
    next: Next,
) -> Response {
    let now = Utc::now();
    let counted = match counting {
        Counting::Shared => count_request(ctx.store.as_ref(), subject, limit, now).await,
        Counting::Keyless => count_keyless(ctx, subject, limit, now).await,
    };
    let verdict = match counted {
        Ok(verdict) => verdict,
        Err(err) => {
            // Failing open keeps uploads working while the store hiccups; the store error
            // surfaces on the route itself if it persists.
            tracing::warn!(error = %err, "rate limit counter unavailable");
            return next.run(req).await;
        }
    };
    if !verdict.allowed {
        let mut response = ApiError::RateLimited {
            retry_after_secs: verdict.retry_after_secs,
        }
        .into_response();
        set_headers(response.headers_mut(), limit, &verdict);
        return response;
    }
    let state = Arc::new(BudgetState {
        ctx: ctx.clone(),
        subject: subject.to_owned(),
        limit,
        verdict: Mutex::new(verdict),
    });
    req.extensions_mut()
        .insert(RateBudget(Some(Arc::clone(&state))));
    let mut response = next.run(req).await;
    if response.status() == http::StatusCode::TOO_MANY_REQUESTS {
        // Refused after all (its work would pass the budget): the request is not counted
        // either, so that a client that waits `Retry-After` gets through.
        let uncounted = if counting == Counting::Keyless && ctx.keyless_counts.uncount(subject) {
            Ok(())
        } else {
            uncount_units(ctx.store.as_ref(), subject, 1, Utc::now()).await
        };
        match uncounted {
            Ok(()) => {
                let mut verdict = state.verdict.lock().unwrap_or_else(|e| e.into_inner());
                verdict.remaining = verdict.remaining.saturating_add(1).min(limit);
            }
            Err(err) => tracing::warn!(error = %err, "a refused request stayed counted"),
        }
    }
    let verdict = *state.verdict.lock().unwrap_or_else(|e| e.into_inner());
    set_headers(response.headers_mut(), limit, &verdict);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::embedded::EmbeddedDb;

    /// `seconds` after the start of the next minute (counters expire by the real clock).
    fn at(seconds: i64) -> DateTime<Utc> {
        let now = Utc::now().timestamp();
        let next_minute = now - now.rem_euclid(60) + 60;
        DateTime::from_timestamp(next_minute + seconds, 0).unwrap()
    }

    #[tokio::test]
    async fn bursts_on_both_sides_of_a_minute_cannot_pass_twice_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedDb::open(&dir.path().join("db"), 5).unwrap();
        let mut allowed = 0;
        // Ten requests in the last second of a minute, ten in the first of the next.
        for second in [59, 60] {
            for _ in 0..10 {
                if count_request(&store, "ip:1", 10, at(second))
                    .await
                    .unwrap()
                    .allowed
                {
                    allowed += 1;
                }
            }
        }
        assert_eq!(allowed, 10, "a fixed window would let 20 through");
        // A minute later the slate is clean again.
        let later = count_request(&store, "ip:1", 10, at(181)).await.unwrap();
        assert!(later.allowed);
        assert_eq!(later.remaining, 9);
        // Refusals say when the same request would pass, and are not counted themselves:
        // 10 at 0 s of a minute (limit 10) weigh 10 x 0.75 = 7.5 at 15 s of the next, so 2 more
        // pass at once and a third waits until 10 x (1 - e) + 3 <= 10, at 18 s, 3 s later.
        for _ in 0..10 {
            count_request(&store, "ip:2", 10, at(120)).await.unwrap();
        }
        for _ in 0..2 {
            assert!(
                count_request(&store, "ip:2", 10, at(195))
                    .await
                    .unwrap()
                    .allowed
            );
        }
        let refused = count_request(&store, "ip:2", 10, at(195)).await.unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_secs, 3);
        assert_eq!(
            refused.reset,
            at(300),
            "this minute's 2 weigh until the next minute ends"
        );
        let retried = count_request(&store, "ip:2", 10, at(198)).await.unwrap();
        assert!(retried.allowed, "the retry after Retry-After passes");
    }

    /// The estimate weighs the previous minute by the share of it still within the last 60 s:
    /// halfway into a minute, 4 requests of the last one count as 2.
    #[tokio::test]
    async fn the_previous_minute_weighs_by_what_remains_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedDb::open(&dir.path().join("db"), 5).unwrap();
        for _ in 0..4 {
            assert!(
                count_request(&store, "ip:3", 4, at(10))
                    .await
                    .unwrap()
                    .allowed
            );
        }
        let verdicts: Vec<(bool, u64)> = requests_at(&store, at(90), 3).await;
        assert_eq!(verdicts, [(true, 1), (true, 0), (false, 0)]);
        // The refused third was not counted: 4 x 0.25 + 2 + 1 = 4 passes at 105 s, and a next
        // one waits for last minute's weight to fade, 15 s.
        let late = count_request(&store, "ip:3", 4, at(105)).await.unwrap();
        assert_eq!((late.allowed, late.remaining), (true, 0));
        let later = count_request(&store, "ip:3", 4, at(105)).await.unwrap();
        assert_eq!(
            (later.allowed, later.remaining, later.retry_after_secs),
            (false, 0, 15)
        );
    }

    /// Last minute's counter outlives its own minute: the store expires counters by the real
    /// clock, so this runs at the real time, with last minute's requests counted in the past.
    #[tokio::test]
    async fn last_minutes_counter_is_still_read_in_this_minute() {
        // Away from a minute's last seconds, so "this minute" stays one for the test.
        let mut now = Utc::now();
        if now.timestamp().rem_euclid(WINDOW_SECS) > 55 {
            tokio::time::sleep(std::time::Duration::from_secs(6)).await;
            now = Utc::now();
        }
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedDb::open(&dir.path().join("db"), 5).unwrap();
        let this_minute = now.timestamp() - now.timestamp().rem_euclid(WINDOW_SECS);
        let last_minute = DateTime::from_timestamp(this_minute - 1, 0).unwrap();
        for _ in 0..10 {
            count_request(&store, "ip:4", 10, last_minute)
                .await
                .unwrap();
        }
        // Its ten requests weigh at least 10 x (5 / 60) here, so fewer than 9 remain.
        let verdict = count_request(&store, "ip:4", 10, now).await.unwrap();
        assert!(verdict.remaining < 9, "{verdict:?}");
    }

    mod middleware {
        use super::super::*;
        use crate::app::testing::{TestContext, context_with};
        use crate::config::NamedKey;
        use axum::Router;
        use axum::body::Body;
        use std::net::IpAddr;
        use tower::ServiceExt;

        const ALICE: &str = "alice-key-0123456789";
        const BOB: &str = "bob-key-0123456789";

        /// `/` limited at 2 a minute, `/public` at 1 for requests without a key.
        fn app() -> (TestContext, Router) {
            let t = context_with(|c| {
                c.sign_in.user_keys.push(NamedKey {
                    name: "bob".into(),
                    key: BOB.into(),
                });
                c.limits.rate_limit_per_minute = 2;
                c.limits.public_status_rate_limit_per_minute = 1;
            });
            let ok = axum::routing::get(|| async { "ok" });
            let (_, _, keyed) = limited((Vec::new(), Default::default(), ok.clone()), &t);
            let work = |units: u64| {
                let work = axum::routing::get(move |budget: RateBudget| async move {
                    budget.cover(units).await.map(|()| "done")
                });
                limited((Vec::new(), Default::default(), work), &t).2
            };
            let router = Router::new()
                .route("/", keyed)
                .route("/work", work(2))
                .route("/too-much", work(3))
                .route(
                    "/public",
                    ok.layer(axum::middleware::from_fn_with_state(
                        t.ctx.clone(),
                        limit_keyless,
                    )),
                )
                .with_state(t.ctx.clone());
            (t, router)
        }

        async fn call(
            app: &Router,
            uri: &str,
            headers: &[(&str, &str)],
            peer: Option<&str>,
        ) -> Response {
            let mut req = Request::builder().uri(uri);
            for (name, value) in headers {
                req = req.header(*name, *value);
            }
            let mut req = req.body(Body::empty()).unwrap();
            if let Some(ip) = peer {
                let ip: IpAddr = ip.parse().unwrap();
                req.extensions_mut()
                    .insert(ConnectInfo(SocketAddr::new(ip, 40000)));
            }
            app.clone().oneshot(req).await.unwrap()
        }

        fn header(response: &Response, name: &str) -> Option<String> {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        }

        /// Status, `x-ratelimit-limit` and `x-ratelimit-remaining`.
        fn verdict(response: &Response) -> (u16, Option<String>, Option<String>) {
            (
                response.status().as_u16(),
                header(response, "x-ratelimit-limit"),
                header(response, "x-ratelimit-remaining"),
            )
        }

        fn of(status: u16, limit: &str, remaining: &str) -> (u16, Option<String>, Option<String>) {
            (status, Some(limit.into()), Some(remaining.into()))
        }

        #[tokio::test]
        async fn keys_are_counted_per_owner_with_headers() {
            let (_t, app) = app();
            let alice = [("x-api-key", ALICE)];
            let peer = Some("10.0.0.1");
            assert_eq!(
                verdict(&call(&app, "/", &alice, peer).await),
                of(200, "2", "1")
            );
            let second = call(&app, "/", &alice, peer).await;
            assert_eq!(verdict(&second), of(200, "2", "0"));
            let reset: i64 = header(&second, "x-ratelimit-reset")
                .unwrap()
                .parse()
                .unwrap();
            let now = Utc::now().timestamp();
            assert!(reset > now - 1 && reset <= now + 2 * WINDOW_SECS, "{reset}");
            let refused = call(&app, "/", &alice, peer).await;
            assert_eq!(verdict(&refused), of(429, "2", "0"));
            assert!(header(&refused, "retry-after").is_some());
            // The same key as a bearer token is the same owner.
            let bearer = format!("Bearer {ALICE}");
            let as_bearer = [("authorization", bearer.as_str())];
            assert_eq!(
                call(&app, "/", &as_bearer, Some("10.0.0.9")).await.status(),
                429
            );
            // Bob, from the same address, has a window of his own.
            let bob = [("x-api-key", BOB)];
            assert_eq!(
                verdict(&call(&app, "/", &bob, peer).await),
                of(200, "2", "1")
            );
            // So does the address itself: a request without a key is counted by it.
            assert_eq!(
                verdict(&call(&app, "/", &[], peer).await),
                of(200, "2", "1")
            );
        }

        /// A request refused for its work is not counted at all: the budget is as it was.
        #[tokio::test]
        async fn a_request_refused_for_its_work_costs_nothing() {
            let (_t, app) = app();
            let alice = [("x-api-key", ALICE)];
            let peer = Some("10.0.0.8");
            assert_eq!(
                verdict(&call(&app, "/", &alice, peer).await),
                of(200, "2", "1")
            );
            // Two units when one is left: refused, and told when they fit.
            for _ in 0..3 {
                let refused = call(&app, "/work", &alice, peer).await;
                assert_eq!(verdict(&refused), of(429, "2", "1"));
                assert!(header(&refused, "retry-after").is_some());
            }
            // Three units never fit in two a minute: refused without a promise.
            let never = call(&app, "/too-much", &alice, peer).await;
            assert_eq!(never.status(), 429);
            assert!(header(&never, "retry-after").is_none());
            assert_eq!(
                verdict(&call(&app, "/", &alice, peer).await),
                of(200, "2", "0")
            );
        }

        #[tokio::test]
        async fn requests_without_a_valid_key_are_counted_per_address() {
            let (_t, app) = app();
            let wrong = [("x-api-key", "not-a-key-0123456789")];
            for remaining in ["1", "0"] {
                let response = call(&app, "/", &wrong, Some("10.0.0.1")).await;
                assert_eq!(verdict(&response), of(200, "2", remaining));
            }
            // The peer decides; a forwarded header cannot pick another window.
            let forwarded = [("x-forwarded-for", "10.0.0.7")];
            assert_eq!(
                call(&app, "/", &forwarded, Some("10.0.0.1")).await.status(),
                429
            );
            assert_eq!(call(&app, "/", &[], Some("10.0.0.2")).await.status(), 200);
            // Without a peer (behind API Gateway), the closest proxy's entry counts.
            let chain = [("x-forwarded-for", "10.0.0.1, 10.0.0.3")];
            for status in [200, 200, 429] {
                assert_eq!(call(&app, "/", &chain, None).await.status(), status);
            }
            let other = [("x-forwarded-for", "10.0.0.3, 10.0.0.4")];
            assert_eq!(call(&app, "/", &other, None).await.status(), 200);
        }

        #[tokio::test]
        async fn the_public_limit_counts_only_requests_without_a_key() {
            let (_t, app) = app();
            let peer = Some("10.0.0.5");
            let bearer = format!("Bearer {ALICE}");
            for headers in [[("x-api-key", ALICE)], [("authorization", bearer.as_str())]] {
                for _ in 0..3 {
                    let response = call(&app, "/public", &headers, peer).await;
                    assert_eq!(verdict(&response), (200, None, None), "{headers:?}");
                }
            }
            // A key that is no key counts as none: junk cannot buy unlimited requests.
            let junk = [("x-api-key", "junk-that-is-no-key")];
            assert_eq!(
                verdict(&call(&app, "/public", &junk, peer).await),
                of(200, "1", "0")
            );
            let bearer_junk = [("authorization", "Bearer whatever-the-route-decides")];
            assert_eq!(
                verdict(&call(&app, "/public", &bearer_junk, peer).await),
                of(429, "1", "0")
            );
            let peer = Some("10.0.0.6");
            assert_eq!(
                verdict(&call(&app, "/public", &[], peer).await),
                of(200, "1", "0")
            );
            assert_eq!(
                verdict(&call(&app, "/public", &[], peer).await),
                of(429, "1", "0")
            );
            // Its window is not the keyed routes' one.
            assert_eq!(
                verdict(&call(&app, "/", &[], peer).await),
                of(200, "2", "1")
            );
        }
    }

    /// Work is charged whole or not at all: a request of several units that would pass the
    /// budget is refused and leaves the budget as it was; one that fits spends it all.
    #[tokio::test]
    async fn work_is_covered_whole_or_refused_whole() {
        let t = crate::app::testing::context_with(|c| c.limits.rate_limit_per_minute = 8);
        let budget = |remaining| {
            RateBudget(Some(Arc::new(BudgetState {
                ctx: t.ctx.clone(),
                subject: "key:alice".into(),
                limit: 8,
                verdict: Mutex::new(Verdict {
                    allowed: true,
                    remaining,
                    reset: Utc::now(),
                    retry_after_secs: 0,
                }),
            })))
        };
        let now = Utc::now();
        // The request itself: one unit.
        assert!(
            count_request(t.store.as_ref(), "key:alice", 8, now)
                .await
                .unwrap()
                .allowed
        );
        let first = budget(7);
        first.cover(5).await.unwrap();
        assert_eq!(
            first.0.as_ref().unwrap().verdict.lock().unwrap().remaining,
            3
        );
        // 5 used, 1 more for the next request, and its 4 more would make 10 > 8: refused.
        assert!(
            count_request(t.store.as_ref(), "key:alice", 8, now)
                .await
                .unwrap()
                .allowed
        );
        let refused = budget(2).cover(5).await.unwrap_err();
        assert_eq!(refused.code(), "RATE_LIMITED");
        // Nothing was spent by the refusal: two more units still fit, a third does not.
        let fits = budget(2);
        fits.cover(3).await.unwrap();
        assert!(budget(0).cover(2).await.is_err());
        // Work refused after all is given back.
        let refunded = budget(0);
        refunded.refund(3).await;
        assert_eq!(
            refunded
                .0
                .as_ref()
                .unwrap()
                .verdict
                .lock()
                .unwrap()
                .remaining,
            2
        );
        budget(0).cover(3).await.unwrap();
        // A request that cannot fit is told so from the last count, before it works.
        assert!(budget(2).check(3).is_ok());
        assert_eq!(budget(2).check(4).unwrap_err().code(), "RATE_LIMITED");
        // Work larger than a whole minute's budget never passes: no Retry-After promises it.
        for refused in [
            budget(0).cover(9).await.unwrap_err(),
            budget(0).check(9).unwrap_err(),
        ] {
            assert!(matches!(
                refused,
                ApiError::WorkOverLimit { units: 9, limit: 8 }
            ));
            let response = axum::response::IntoResponse::into_response(refused);
            assert_eq!(response.status(), http::StatusCode::TOO_MANY_REQUESTS);
            assert!(response.headers().get(http::header::RETRY_AFTER).is_none());
        }
        // Outside a limited route, a budget never refuses.
        RateBudget::default().cover(1000).await.unwrap();
        RateBudget::default().check(1000).unwrap();
    }

    async fn requests_at(store: &EmbeddedDb, now: DateTime<Utc>, n: usize) -> Vec<(bool, u64)> {
        let mut out = Vec::new();
        for _ in 0..n {
            let v = count_request(store, "ip:3", 4, now).await.unwrap();
            out.push((v.allowed, v.remaining));
        }
        out
    }
}
