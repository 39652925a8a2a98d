//! Bounded retries for registry requests.
//!
//! A request is tried again when the failure is one a registry or a network recovers
//! from: an HTTP 5xx, a 429 (after the `Retry-After` the registry asks for), a refused or
//! reset connection, a timeout, or an answer cut off part way. Never after a 4xx other
//! than 429: a missing image or a wrong password does not get better by asking again
//! (but for a manifest refused for a blob the registry is still putting in place, see
//! `RegistryClient::push_manifest`).
//!
//! [`RETRIES`] retries at most, waiting 0.5, 1, 2 and 4 s (plus up to 25 % jitter, so
//! parallel pulls do not retry in lockstep); a `Retry-After` (on a 429 or a 5xx) replaces
//! the wait, up to [`MAX_RETRY_AFTER`]; a registry asking for longer is given up on at
//! once. So one request waits at most 9.4 s in all between its attempts, or 2 minutes
//! when the registry keeps asking to wait, on top of the attempts themselves (each
//! bounded by the provider's `registry_timeout` while nothing arrives). Every retry is
//! logged at INFO with its reason.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Result;

/// Retries after the first attempt.
pub const RETRIES: u32 = 4;
/// The first wait; each next one doubles.
pub const FIRST_WAIT: Duration = Duration::from_millis(500);
/// The longest `Retry-After` honoured; a registry asking for more is given up on.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// What one attempt came to.
pub enum Attempt<T> {
    Done(T),
    /// Worth another try; `after` is the registry's `Retry-After`, when it sent one.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    Failed(anyhow::Error),
}

/// Why the retries ended without success.
pub struct GaveUp {
    pub reason: String,
    pub attempts: u32,
    pub elapsed: Duration,
}

impl std::fmt::Display for GaveUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (gave up after {} attempts in {:.1} s)", self.reason, self.attempts, self.elapsed.as_secs_f64())
    }
}

/// The wait before retry number `retry` (1-based) without a `Retry-After`.
fn backoff(first_wait: Duration, retry: u32) -> Duration {
    let base = first_wait * 2u32.pow(retry.saturating_sub(1));
    // Jitter from the clock: enough to spread parallel pulls, no random-number crate.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    base + base.mul_f64(f64::from(nanos % 1000) / 4000.0)
}

/// Runs `attempt` until it is done, fails, or the retries are used up. `what` names the
/// request in logs.
pub async fn with_retries<T, F, Fut>(what: &str, attempt: F) -> Result<T, RetryError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Attempt<T>>,
{
    retry_with_first_wait(what, FIRST_WAIT, attempt).await
}

async fn retry_with_first_wait<T, F, Fut>(what: &str, first_wait: Duration, mut attempt: F) -> Result<T, RetryError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Attempt<T>>,
{
    let started = Instant::now();
    let mut tries = 0;
    loop {
        tries += 1;
        let (reason, after) = match attempt().await {
            Attempt::Done(value) => return Ok(value),
            Attempt::Failed(error) => return Err(RetryError::Failed(error)),
            Attempt::Retry { reason, after } => (reason, after),
        };
        let gave_up = || GaveUp { reason: reason.clone(), attempts: tries, elapsed: started.elapsed() };
        if tries > RETRIES {
            return Err(RetryError::GaveUp(gave_up()));
        }
        let wait = match after {
            Some(after) if after > MAX_RETRY_AFTER => {
                let mut gave_up = gave_up();
                gave_up.reason = format!(
                    "{reason}; the registry asks to wait {} s, more than the {} s resin waits",
                    after.as_secs(),
                    MAX_RETRY_AFTER.as_secs()
                );
                return Err(RetryError::GaveUp(gave_up));
            }
            Some(after) => after,
            None => backoff(first_wait, tries),
        };
        crate::log::info(
            "retrying a registry request",
            &[
                ("request", what.to_string()),
                ("reason", reason.clone()),
                ("retry", format!("{tries} of {RETRIES}")),
                ("wait_ms", wait.as_millis().to_string()),
            ],
        );
        tokio::time::sleep(wait).await;
    }
}

/// How retried work ended when it did not succeed.
pub enum RetryError {
    /// A failure not worth retrying.
    Failed(anyhow::Error),
    /// Transient failures until the retries ran out.
    GaveUp(GaveUp),
}

/// Parses a `Retry-After` header: delay seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        let later = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(100));
        let parsed = parse_retry_after(&later).unwrap();
        assert!(parsed > Duration::from_secs(95) && parsed <= Duration::from_secs(100), "{parsed:?}");
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn waits_double_from_half_a_second() {
        for (retry, base) in [(1, 500), (2, 1000), (3, 2000), (4, 4000)] {
            let wait = backoff(FIRST_WAIT, retry).as_millis();
            assert!((base..=base * 5 / 4).contains(&wait), "retry {retry}: {wait} ms");
        }
    }

    #[tokio::test]
    async fn retries_are_bounded_and_failures_are_final() {
        let quick = Duration::from_millis(1);
        let calls = AtomicU32::new(0);
        let result: Result<(), RetryError> = retry_with_first_wait("test", quick, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Attempt::Retry { reason: "HTTP 503".into(), after: None }
        })
        .await;
        match result {
            Err(RetryError::GaveUp(gave_up)) => {
                assert_eq!(gave_up.attempts, RETRIES + 1);
                assert!(gave_up.to_string().starts_with("HTTP 503 (gave up after 5 attempts"), "{gave_up}");
            }
            _ => panic!("expected to give up"),
        }
        assert_eq!(calls.load(Ordering::SeqCst), RETRIES + 1);

        calls.store(0, Ordering::SeqCst);
        let result: Result<(), RetryError> = retry_with_first_wait("test", quick, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Attempt::Failed(anyhow::anyhow!("HTTP 404"))
        })
        .await;
        assert!(matches!(result, Err(RetryError::Failed(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a 4xx is not retried");

        calls.store(0, Ordering::SeqCst);
        let started = Instant::now();
        let value = retry_with_first_wait("test", quick, || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Attempt::Retry { reason: "HTTP 429".into(), after: Some(Duration::from_millis(300)) },
                _ => Attempt::Done(7),
            }
        })
        .await;
        assert!(matches!(value, Ok(7)));
        assert!(started.elapsed() >= Duration::from_millis(300), "Retry-After is honoured");

        let result: Result<(), RetryError> = retry_with_first_wait("test", quick, || async {
            Attempt::Retry { reason: "HTTP 429".into(), after: Some(Duration::from_secs(3600)) }
        })
        .await;
        match result {
            Err(RetryError::GaveUp(gave_up)) => {
                assert!(gave_up.reason.contains("asks to wait 3600 s"), "{}", gave_up.reason)
            }
            _ => panic!("a Retry-After beyond the bound is given up on"),
        }
    }
}
