//! Answers remembered for a moment, so a page view does not ask the API again for data that
//! changes slowly (the service and environment lists) or that the page refreshes on a timer
//! anyway (health). Only successful answers are remembered.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

/// One remembered value and when it was fetched.
#[derive(Debug)]
pub struct Memo<T> {
    ttl: Duration,
    slot: Mutex<Option<(Instant, T)>>,
}

impl<T: Clone> Memo<T> {
    /// Remembers values for `ttl`.
    pub const fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            slot: Mutex::new(None),
        }
    }

    /// The value, if it was fetched less than `ttl` ago.
    pub fn fresh(&self) -> Option<T> {
        let slot = self
            .slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.as_ref()
            .filter(|(fetched, _)| fetched.elapsed() < self.ttl)
            .map(|(_, value)| value.clone())
    }

    /// Keeps `value` as of now.
    pub fn remember(&self, value: &T) {
        *self
            .slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((Instant::now(), value.clone()));
    }

    /// Drops the value, so the next read asks again.
    pub fn forget(&self) {
        *self
            .slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_fresh_until_its_time_is_up_or_it_is_forgotten() {
        let memo = Memo::new(Duration::from_secs(60));
        assert_eq!(memo.fresh(), None::<u8>);
        memo.remember(&7);
        assert_eq!(memo.fresh(), Some(7));
        memo.forget();
        assert_eq!(memo.fresh(), None);

        let expired = Memo::new(Duration::ZERO);
        expired.remember(&7);
        assert_eq!(expired.fresh(), None);
    }
}
