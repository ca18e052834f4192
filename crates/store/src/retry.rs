//! The one rule for a download whose connection breaks, in one stream or in ranged parts:
//! at most [`ATTEMPTS`] tries within a pull, each resuming from the bytes already on disk;
//! only a connection that broke off or could not be made is tried again. Anything else (an
//! HTTP status, a wrong size, a full disk) would come back the same, so it ends the download
//! at once. Running out of tries is [`UpstreamFailure::BrokeOff`], which tells the user that
//! another pull resumes.

use crate::http::upstream;
use crate::{StoreError, UpstreamFailure};

/// Dropped connections are resumed this many times within one pull.
pub(crate) const ATTEMPTS: usize = 4;

/// Why one attempt did not bring every byte it was after.
#[derive(Debug)]
pub(crate) enum Failed<E> {
    /// The connection broke, or no connection came; what arrived is kept for the next try.
    Interrupted,
    /// Trying again would not help.
    Final(E),
}

/// What goes wrong on the way (a file, the disk, a status, a size) is final; only
/// [`Failed::of_request`] and a broken body make an interruption.
impl<E: From<StoreError>> From<StoreError> for Failed<E> {
    fn from(error: StoreError) -> Self {
        Self::Final(error.into())
    }
}

impl<E: From<StoreError>> Failed<E> {
    /// Sorts the error of a request (before any body): an upstream that could not be
    /// reached may be a moment's outage, anything else is its answer.
    pub(crate) fn of_request(error: StoreError) -> Self {
        match error {
            StoreError::Upstream { failure: UpstreamFailure::Unreachable, .. } => Self::Interrupted,
            error => Self::Final(error.into()),
        }
    }
}

/// Runs `attempt` (given its number, from 1) until it succeeds or fails for good, at most
/// [`ATTEMPTS`] times. Each attempt must start from what the previous ones left on disk, so
/// that a retry resumes instead of starting over. The last interruption becomes `BrokeOff`
/// for `url`.
pub(crate) fn resuming<T, E: From<StoreError>>(
    url: &str,
    mut attempt: impl FnMut(usize) -> Result<T, Failed<E>>,
) -> Result<T, E> {
    let mut number = 1;
    loop {
        match attempt(number) {
            Ok(value) => return Ok(value),
            Err(Failed::Final(error)) => return Err(error),
            Err(Failed::Interrupted) if number == ATTEMPTS => {
                return Err(upstream(url, UpstreamFailure::BrokeOff).into())
            }
            Err(Failed::Interrupted) => number += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://registry.example/v2/library/m/blobs/sha256-1";

    #[test]
    fn interruptions_are_retried_up_to_the_limit_then_break_off() {
        let mut tries = Vec::new();
        let result: Result<(), StoreError> = resuming(URL, |n| {
            tries.push(n);
            Err(Failed::Interrupted)
        });
        assert_eq!(tries, (1..=ATTEMPTS).collect::<Vec<_>>());
        match result {
            Err(StoreError::Upstream { failure: UpstreamFailure::BrokeOff, host, .. }) => {
                assert_eq!(host, "registry.example");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_download_interrupted_fewer_times_than_the_limit_completes() {
        let mut tries = 0;
        let result = resuming::<_, StoreError>(URL, |n| {
            tries += 1;
            if n < ATTEMPTS {
                Err(Failed::Interrupted)
            } else {
                Ok("whole")
            }
        });
        assert_eq!((result.unwrap(), tries), ("whole", ATTEMPTS));
    }

    #[test]
    fn only_a_broken_or_missing_connection_is_retried() {
        let mut tries = 0;
        let result: Result<(), StoreError> = resuming(URL, |_| {
            tries += 1;
            Err(Failed::of_request(upstream(URL, UpstreamFailure::Status(503))))
        });
        assert!(matches!(result, Err(StoreError::Upstream { failure: UpstreamFailure::Status(503), .. })));
        assert_eq!(tries, 1, "an answer is not asked for again");

        let sorted = |failure| Failed::<StoreError>::of_request(upstream(URL, failure));
        assert!(matches!(sorted(UpstreamFailure::Unreachable), Failed::Interrupted));
        for failure in [UpstreamFailure::Status(404), UpstreamFailure::TooLarge { declared: 1 }] {
            assert!(matches!(sorted(failure), Failed::Final(_)));
        }
    }
}
