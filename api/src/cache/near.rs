//! The near cache: response bodies kept in this process, in front of Redis, so a hot read costs
//! a map lookup instead of a network round trip.
//!
//! It is only as good as its coherence, which it does not provide itself: the
//! [session](super::session) empties it on every invalidation Redis pushes and whenever
//! invalidations might have been lost. Two rules make that enough:
//! - Every entry carries the *epoch* it was filled in, and emptying bumps the epoch; a fill that
//!   started before an invalidation (its Redis lookup or database read may predate the write)
//!   names the old epoch and is dropped, whichever of the two finishes first.
//! - Entries are bounded in number and in bytes, least recently used out first, and keep the
//!   expiry their Redis entry had, so the TTL means the same in both tiers.

use std::{
    num::NonZeroUsize,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::body::Bytes;
use lru::LruCache;

/// Bytes counted for an entry beyond its key and body: the map's slot, the entry and the key's
/// allocation, so many tiny bodies cannot exceed the byte bound by the back door.
const ENTRY_OVERHEAD: usize = 96;

/// How full the near cache is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub entries: usize,
    pub bytes: usize,
}

#[derive(Debug)]
struct Entry {
    body: Bytes,
    epoch: u64,
    expires: Instant,
}

#[derive(Debug)]
struct Entries {
    map: LruCache<Box<str>, Entry>,
    bytes: usize,
}

/// A bounded map from resource to encoded body; see the module documentation.
#[derive(Debug)]
pub(super) struct NearCache {
    /// `None` when configured with no entries: every lookup misses and nothing is kept.
    entries: Option<Mutex<Entries>>,
    max_bytes: usize,
    epoch: AtomicU64,
}

fn weight(resource: &str, body: &Bytes) -> usize {
    resource.len() + body.len() + ENTRY_OVERHEAD
}

impl NearCache {
    /// A near cache holding at most `max_entries` entries and `max_bytes` bytes (bodies, keys and
    /// a fixed overhead per entry); `max_entries == 0` turns it off.
    pub(super) fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            entries: NonZeroUsize::new(max_entries).map(|cap| {
                Mutex::new(Entries {
                    map: LruCache::new(cap),
                    bytes: 0,
                })
            }),
            max_bytes,
            epoch: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> Option<MutexGuard<'_, Entries>> {
        // A panic while holding the lock leaves a consistent map (every mutation is one call),
        // so a poisoned lock is still usable.
        self.entries
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// The current epoch; capture it before the Redis lookup whose result may be inserted.
    pub(super) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The body kept for `resource`, if it is of the current epoch and has not expired.
    pub(super) fn get(&self, resource: &str, now: Instant) -> Option<Bytes> {
        let mut entries = self.lock()?;
        let entry = entries.map.get(resource)?;
        if entry.epoch == self.epoch() && entry.expires > now {
            return Some(entry.body.clone());
        }
        if let Some(gone) = entries.map.pop(resource) {
            entries.bytes -= weight(resource, &gone.body);
        }
        None
    }

    /// Keeps `body` for `resource` until `ttl` from now, unless the cache was emptied since
    /// `epoch` was read, or the body alone exceeds the byte bound. Returns whether it was kept.
    pub(super) fn insert(&self, resource: &str, epoch: u64, body: Bytes, ttl: Duration) -> bool {
        let size = weight(resource, &body);
        if size > self.max_bytes {
            return false;
        }
        let Some(mut entries) = self.lock() else {
            return false;
        };
        // Checked under the lock that `invalidate` takes to empty the map, so an insert either
        // lands before the emptying (and is removed by it) or sees the new epoch and stops.
        if epoch != self.epoch() {
            return false;
        }
        let entry = Entry {
            body,
            epoch,
            expires: Instant::now() + ttl,
        };
        entries.bytes += size;
        if let Some((key, old)) = entries.map.push(resource.into(), entry) {
            entries.bytes -= weight(&key, &old.body);
        }
        while entries.bytes > self.max_bytes {
            let Some((key, old)) = entries.map.pop_lru() else {
                break;
            };
            entries.bytes -= weight(&key, &old.body);
        }
        true
    }

    /// Empties the cache and moves to a new epoch, so fills begun before this call are dropped.
    pub(super) fn invalidate(&self) {
        let entries = self.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Some(mut entries) = entries {
            entries.map.clear();
            entries.bytes = 0;
        }
    }

    /// How many entries and bytes it holds now.
    pub(super) fn usage(&self) -> Usage {
        self.lock().map_or(
            Usage {
                entries: 0,
                bytes: 0,
            },
            |entries| Usage {
                entries: entries.map.len(),
                bytes: entries.bytes,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    fn body(len: usize) -> Bytes {
        Bytes::from(vec![b'x'; len])
    }

    #[test]
    fn a_fill_that_started_before_an_invalidation_is_dropped() {
        let near = NearCache::new(8, 1 << 20);
        let epoch = near.epoch();
        near.invalidate();
        assert!(!near.insert("a", epoch, body(3), TTL));
        assert_eq!(near.get("a", Instant::now()), None);
        assert!(near.insert("a", near.epoch(), body(3), TTL));
        assert_eq!(near.get("a", Instant::now()), Some(body(3)));
    }

    #[test]
    fn invalidating_empties_it() {
        let near = NearCache::new(8, 1 << 20);
        near.insert("a", near.epoch(), body(3), TTL);
        near.invalidate();
        assert_eq!(near.get("a", Instant::now()), None);
        assert_eq!(
            near.usage(),
            Usage {
                entries: 0,
                bytes: 0
            }
        );
    }

    #[test]
    fn entries_expire_with_their_ttl() {
        let near = NearCache::new(8, 1 << 20);
        near.insert("a", near.epoch(), body(3), Duration::from_millis(50));
        let now = Instant::now();
        assert!(near.get("a", now).is_some());
        assert_eq!(near.get("a", now + Duration::from_millis(51)), None);
        assert_eq!(near.usage().entries, 0, "an expired entry is let go");
    }

    #[test]
    fn both_bounds_hold_and_the_least_recently_used_goes_first() {
        let near = NearCache::new(3, 1 << 20);
        for key in ["a", "b", "c"] {
            near.insert(key, near.epoch(), body(10), TTL);
        }
        near.get("a", Instant::now());
        near.insert("d", near.epoch(), body(10), TTL);
        assert_eq!(near.usage().entries, 3);
        assert!(
            near.get("b", Instant::now()).is_none(),
            "b was least recent"
        );
        assert!(near.get("a", Instant::now()).is_some());

        let max_bytes = 3 * weight("k00", &body(100));
        let near = NearCache::new(100, max_bytes);
        for n in 0..50 {
            near.insert(&format!("k{n:02}"), near.epoch(), body(100), TTL);
            assert!(near.usage().bytes <= max_bytes);
        }
        assert_eq!(near.usage().entries, 3);
        assert!(!near.insert("huge", near.epoch(), body(max_bytes), TTL));
    }

    #[test]
    fn replacing_an_entry_counts_its_bytes_once() {
        let near = NearCache::new(8, 1 << 20);
        near.insert("a", near.epoch(), body(10), TTL);
        near.insert("a", near.epoch(), body(20), TTL);
        assert_eq!(near.usage().bytes, weight("a", &body(20)));
    }

    #[test]
    fn with_no_entries_it_keeps_nothing() {
        let near = NearCache::new(0, 1 << 20);
        assert!(!near.insert("a", near.epoch(), body(3), TTL));
        assert_eq!(near.get("a", Instant::now()), None);
    }
}
