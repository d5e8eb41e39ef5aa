//! A request body that must keep arriving: after a grace period it must average at least a
//! minimum rate, and it must be whole within a total deadline. A body that falls behind ends in
//! [`BodyTooSlow`], which the extractors answer as 408 `REQUEST_TIMEOUT`; so a client that sends
//! a byte now and then cannot hold a connection (the pause between chunks alone is bounded by the
//! server's idle timeout).

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

/// `body`, read within `limits` from now.
pub fn within(body: Body, limits: ReadLimits) -> Body {
    let started = Instant::now();
    let mut body = DeadlineBody {
        inner: body,
        limits,
        started,
        received: 0,
        timer: Box::pin(tokio::time::sleep_until(started)),
    };
    body.rearm();
    Body::new(body)
}

struct DeadlineBody {
    inner: Body,
    limits: ReadLimits,
    started: Instant,
    received: u64,
    timer: Pin<Box<Sleep>>,
}

impl DeadlineBody {
    /// The moment the body is behind: when the bytes received so far no longer cover the
    /// minimum rate since the grace period, or the total deadline, whichever comes first.
    fn due(&self) -> Instant {
        let rate = self.limits.min_bytes_per_second.max(1);
        let covered = Duration::from_secs_f64(self.received as f64 / rate as f64);
        let behind = self.limits.grace.saturating_add(covered);
        self.started + behind.min(self.limits.total)
    }

    fn rearm(&mut self) {
        let due = self.due();
        self.timer.as_mut().reset(due);
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
                if let Some(data) = frame.data_ref() {
                    self.received = self.received.saturating_add(data.len() as u64);
                    self.rearm();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTooSlow)))),
                Poll::Pending => Poll::Pending,
            },
            other => other,
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
}
