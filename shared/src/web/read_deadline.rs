//! A request body that must keep arriving: after a grace period it must average at least a
//! minimum rate, and it must be whole within a total. Both count only the time the server
//! spends waiting for the client (while a handler is busy elsewhere, decoding a photo, the clock
//! stops). A body that falls behind ends in [`BodyTooSlow`], which the extractors answer as 408
//! `REQUEST_TIMEOUT`; so a client that sends a byte now and then cannot hold a connection (the
//! pause between chunks alone is bounded by the server's idle timeout).

pub use crate::config::ReadLimits;
use axum::body::{Body, Bytes};
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The body fell behind its [`ReadLimits`].
#[derive(Debug, thiserror::Error)]
#[error("the request body arrived too slowly")]
pub struct BodyTooSlow;

/// `body`, read within `limits`. A body that is over before it starts (a `GET`'s) has nothing to
/// wait for and is left as it is: no timer for the requests that send none.
pub fn within(body: Body, limits: ReadLimits) -> Body {
    if HttpBody::is_end_stream(&body) {
        return body;
    }
    Body::new(DeadlineBody {
        inner: body,
        limits,
        received: 0,
        waited: Duration::ZERO,
        waiting_since: None,
        timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
    })
}

struct DeadlineBody {
    inner: Body,
    limits: ReadLimits,
    received: u64,
    /// Time spent waiting for the client, up to the current wait.
    waited: Duration,
    /// Since when the current wait lasts (the body was polled and had nothing).
    waiting_since: Option<Instant>,
    timer: Pin<Box<Sleep>>,
}

/// Far enough ahead to mean never, near enough not to overflow.
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl DeadlineBody {
    /// How long the client may have kept the server waiting, given what it sent: the grace
    /// period plus the time its bytes cover at the minimum rate, within the total.
    fn allowed_wait(&self) -> Duration {
        let covered = match self.limits.min_bytes_per_second {
            0 => NEVER,
            rate => {
                Duration::try_from_secs_f64(self.received as f64 / rate as f64).unwrap_or(NEVER)
            }
        };
        self.limits
            .grace
            .saturating_add(covered)
            .min(self.limits.total)
            .min(NEVER)
    }

    fn end_wait(&mut self) {
        if let Some(since) = self.waiting_since.take() {
            self.waited = self.waited.saturating_add(since.elapsed());
        }
    }
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                self.end_wait();
                if let Some(data) = frame.data_ref() {
                    self.received = self.received.saturating_add(data.len() as u64);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => {
                self.end_wait();
                Poll::Ready(other)
            }
            Poll::Pending => {
                let since = *self.waiting_since.get_or_insert_with(Instant::now);
                let left = self.allowed_wait().saturating_sub(self.waited);
                let due = since.checked_add(left).unwrap_or(since + NEVER);
                if self.timer.deadline() != due {
                    self.timer.as_mut().reset(due);
                }
                match self.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTooSlow)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    const LIMITS: ReadLimits = ReadLimits {
        grace: Duration::from_secs(10),
        min_bytes_per_second: 100,
        total: Duration::from_secs(60),
    };

    /// A body sent as `chunks` of `size` bytes, one every `every`.
    fn trickled(chunks: usize, size: usize, every: Duration) -> Body {
        let stream = futures_util::stream::unfold(0, move |n| async move {
            if n == chunks {
                return None;
            }
            tokio::time::sleep(every).await;
            Some((
                Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; size])),
                n + 1,
            ))
        });
        Body::from_stream(stream)
    }

    async fn read(body: Body) -> (Result<usize, axum::Error>, Duration) {
        let started = Instant::now();
        let result = within(body, LIMITS)
            .collect()
            .await
            .map(|b| b.to_bytes().len());
        (result, started.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn a_byte_now_and_then_is_cut_after_the_grace_period() {
        let (result, after) = read(trickled(100, 1, Duration::from_secs(5))).await;
        let err = result.unwrap_err();
        assert!(crate::web::extract::caused_by::<BodyTooSlow>(&err), "{err}");
        // 2 bytes by 10 s cover 0.02 s of the rate: cut at 10.02 s, not at the 60 s total.
        assert!(
            after >= Duration::from_secs(10) && after < Duration::from_secs(11),
            "{after:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_at_the_rate_is_read_whole_and_none_outlasts_the_total() {
        // 200 bytes a second for 30 s: above the rate, within the total.
        let (result, _) = read(trickled(30, 200, Duration::from_secs(1))).await;
        assert_eq!(result.unwrap(), 6000);
        // Fast enough, but longer than the total deadline.
        let (result, after) = read(trickled(100, 1000, Duration::from_secs(1))).await;
        assert!(result.is_err());
        assert_eq!(after.as_secs(), 60);
        // A body already there is never cut.
        let (result, _) = read(Body::from("whole")).await;
        assert_eq!(result.unwrap(), 5);
    }

    /// Only the client's time counts: a handler that stops reading for a minute (decoding the
    /// photos it read) does not make an honest body late.
    #[tokio::test(start_paused = true)]
    async fn time_the_server_spends_elsewhere_is_not_the_clients() {
        let mut body = within(trickled(30, 200, Duration::from_secs(1)), LIMITS);
        let mut read = 0;
        while let Some(frame) = body.frame().await {
            read += frame.unwrap().into_data().unwrap().len();
            if read == 1000 {
                tokio::time::sleep(Duration::from_secs(120)).await;
            }
        }
        assert_eq!(read, 6000);
    }

    /// A minimum rate of 0 turns the rate rule off; the total still holds.
    #[tokio::test(start_paused = true)]
    async fn a_rate_of_zero_leaves_only_the_total() {
        let limits = ReadLimits {
            min_bytes_per_second: 0,
            ..LIMITS
        };
        let started = Instant::now();
        let result = within(trickled(100, 1, Duration::from_secs(5)), limits)
            .collect()
            .await;
        assert!(result.is_err());
        assert_eq!(started.elapsed().as_secs(), 60);
    }
}
