//! The deny-list in memory, so the gate's check on every request costs no database round trip.
//! The store keeps it current: a revocation filed through a [`Store`](super::Store) lands in
//! the copy of that store at once, and the copy reads what other processes filed (`h200 keys
//! revoke`) from the revocation feed at most [`DENY_LIST_REFRESH_MS`] after its last read.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, Ordering};

use shared::revocation::{Revocation, RevocationKind, RevokedTarget, TokenFacts};

use super::revocations::REVOCATION_FEED_OVERLAP_MS;

/// How old the copy may be before a check reads the feed again: the longest a revocation
/// filed by another process goes unseen by the gate.
pub const DENY_LIST_REFRESH_MS: i64 = 250;

/// Entries read per page of the feed.
const PAGE: i64 = 500;

/// One entry as the gate needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    /// Tokens issued before this instant (unix ms) are refused ([`shared::revocation::EVERY_TOKEN`]: all).
    cutoff_ms: u64,
    /// When the entry may be forgotten.
    expires_at_ms: u64,
}

impl Entry {
    /// The wider of two entries for the same target, as the store merges them.
    fn widen(self, other: Entry) -> Entry {
        Entry {
            cutoff_ms: self.cutoff_ms.max(other.cutoff_ms),
            expires_at_ms: self.expires_at_ms.max(other.expires_at_ms),
        }
    }
}

/// The copy: one map per kind, in [`RevocationKind::ALL`] order, looked up by the claim value.
#[derive(Debug, Default)]
pub(crate) struct DenyList {
    entries: RwLock<[HashMap<String, Entry>; 3]>,
    /// Unix ms of the last complete read of the feed; 0 before the first.
    synced_at_ms: AtomicI64,
    /// Held by the one check that reads the feed; the value is the feed cursor (the newest
    /// `revoked_at_ms` read so far).
    cursor: tokio::sync::Mutex<i64>,
}

fn slot(kind: RevocationKind) -> usize {
    RevocationKind::ALL
        .iter()
        .position(|k| *k == kind)
        .expect("ALL lists every kind; this is a bug")
}

impl DenyList {
    /// The cut-offs of the entries naming the token `facts` describes, in
    /// [`RevocationKind::ALL`] order, as of the copy.
    pub(crate) fn cutoffs(&self, facts: &TokenFacts<'_>, now_ms: i64) -> Vec<Option<u64>> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let now = u64::try_from(now_ms).unwrap_or(0);
        RevocationKind::ALL
            .iter()
            .zip(entries.iter())
            .map(|(kind, map)| {
                map.get(facts.claim(*kind))
                    .filter(|entry| entry.expires_at_ms > now)
                    .map(|entry| entry.cutoff_ms)
            })
            .collect()
    }

    /// Adds (or widens) the entry for `target`, as just filed.
    pub(crate) fn file(
        &self,
        target: &RevokedTarget,
        issued_before_ms: Option<i64>,
        expires_at_ms: i64,
    ) {
        let unsigned = |ms: i64| u64::try_from(ms).unwrap_or(0);
        let entry = Entry {
            cutoff_ms: issued_before_ms.map_or(shared::revocation::EVERY_TOKEN, unsigned),
            expires_at_ms: unsigned(expires_at_ms),
        };
        self.insert(target, entry);
    }

    fn insert(&self, target: &RevokedTarget, entry: Entry) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let map = &mut entries[slot(target.kind)];
        match map.get_mut(target.id.as_str()) {
            Some(held) => *held = held.widen(entry),
            None => {
                map.insert(target.id.clone(), entry);
            }
        }
    }

    /// Whether the copy was read from the feed within [`DENY_LIST_REFRESH_MS`] of `now_ms`.
    pub(crate) fn is_fresh(&self, now_ms: i64) -> bool {
        let synced = self.synced_at_ms.load(Ordering::Acquire);
        synced != 0 && now_ms.saturating_sub(synced) < DENY_LIST_REFRESH_MS
    }

    /// Brings the copy up to date with `read_page`, unless another check is doing it and the
    /// copy was read before (then that one's copy serves), and drops expired entries.
    /// `read_page(after, limit)` reads unexpired entries that come after the key `after` in
    /// (`revoked_at_ms`, kind, target) order, at most `limit`. Each refresh starts again
    /// [`REVOCATION_FEED_OVERLAP_MS`] before the newest entry it has seen, which covers
    /// revocations committed late within a millisecond already passed, and pages through a burst
    /// by key, so no entry of a large burst is skipped.
    pub(crate) async fn refresh<F, Fut, E>(&self, now_ms: i64, read_page: F) -> Result<(), E>
    where
        F: Fn(FeedKey, i64) -> Fut,
        Fut: Future<Output = Result<Vec<Revocation>, E>>,
    {
        let mut cursor = match self.cursor.try_lock() {
            Ok(cursor) => cursor,
            Err(_) if self.synced_at_ms.load(Ordering::Acquire) != 0 => return Ok(()),
            Err(_) => self.cursor.lock().await,
        };
        if self.is_fresh(now_ms) {
            return Ok(());
        }
        let mut after = FeedKey {
            revoked_at_ms: if *cursor == 0 {
                i64::MIN
            } else {
                cursor.saturating_sub(REVOCATION_FEED_OVERLAP_MS)
            },
            kind: "",
            target: String::new(),
        };
        loop {
            let page = read_page(after.clone(), PAGE).await?;
            for revocation in &page {
                self.insert(
                    &revocation.target,
                    Entry {
                        cutoff_ms: revocation.cutoff_ms(),
                        expires_at_ms: revocation.expires_at_ms,
                    },
                );
                let revoked = i64::try_from(revocation.revoked_at_ms).unwrap_or(i64::MAX);
                *cursor = (*cursor).max(revoked);
                after = FeedKey {
                    revoked_at_ms: revoked,
                    kind: revocation.target.kind.claim(),
                    target: revocation.target.id.clone(),
                };
            }
            if (page.len() as i64) < PAGE {
                break;
            }
        }
        let now = u64::try_from(now_ms).unwrap_or(0);
        {
            let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
            for map in entries.iter_mut() {
                map.retain(|_, entry| entry.expires_at_ms > now);
            }
        }
        self.synced_at_ms.store(now_ms.max(1), Ordering::Release);
        Ok(())
    }
}

/// Where a read of the feed goes on from: after this (`revoked_at_ms`, kind, target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FeedKey {
    pub(crate) revoked_at_ms: i64,
    /// The kind's claim (`jti`, `kid`, `sub`), as the store writes it; `""` sorts first.
    pub(crate) kind: &'static str,
    pub(crate) target: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(kind: RevocationKind, id: &str) -> RevokedTarget {
        RevokedTarget {
            kind,
            id: id.to_owned(),
        }
    }

    fn facts<'a>(jti: &'a str, kid: &'a str, sub: &'a str) -> TokenFacts<'a> {
        TokenFacts {
            token_id: jti,
            key_id: kid,
            subject: sub,
            issued_at_secs: 10,
        }
    }

    #[test]
    fn filed_entries_answer_at_once_and_only_ever_widen() {
        let list = DenyList::default();
        list.file(&target(RevocationKind::Subject, "u1"), Some(20_000), 5_000);
        list.file(&target(RevocationKind::Subject, "u1"), Some(15_000), 9_000);
        list.file(&target(RevocationKind::Token, "j1"), None, 5_000);
        assert_eq!(
            list.cutoffs(&facts("j1", "k1", "u1"), 1_000),
            vec![None, Some(20_000), Some(u64::MAX)]
        );
        // The jti entry expired at 5 000; the widened subject entry holds until 9 000.
        assert_eq!(
            list.cutoffs(&facts("j1", "k1", "u1"), 6_000),
            vec![None, Some(20_000), None]
        );
        assert_eq!(
            list.cutoffs(&facts("j2", "k2", "u2"), 1_000),
            vec![None, None, None]
        );
    }

    fn revocation(kind: RevocationKind, id: &str, revoked_at_ms: u64) -> Revocation {
        Revocation {
            target: target(kind, id),
            issued_before_ms: None,
            expires_at_ms: 100_000,
            revoked_at_ms,
        }
    }

    #[tokio::test]
    async fn a_refresh_reads_the_feed_from_its_cursor_and_is_then_fresh() {
        let list = DenyList::default();
        assert!(!list.is_fresh(1_000));
        let asked = std::sync::Mutex::new(Vec::new());
        let feed = |after: FeedKey, _limit: i64| {
            let page = if after.revoked_at_ms == i64::MIN {
                vec![revocation(RevocationKind::SigningKey, "k1", 7_000)]
            } else {
                Vec::new()
            };
            asked.lock().unwrap().push(after.revoked_at_ms);
            async move { Ok::<_, ()>(page) }
        };
        list.refresh(1_000, feed).await.unwrap();
        assert!(list.is_fresh(1_000 + DENY_LIST_REFRESH_MS - 1));
        assert!(!list.is_fresh(1_000 + DENY_LIST_REFRESH_MS));
        assert_eq!(
            list.cutoffs(&facts("j", "k1", "u"), 1_000),
            vec![Some(u64::MAX), None, None]
        );
        // Fresh: no read. Stale: read again from the overlap before the newest entry seen.
        list.refresh(1_100, feed).await.unwrap();
        list.refresh(2_000, feed).await.unwrap();
        assert_eq!(
            *asked.lock().unwrap(),
            vec![i64::MIN, 7_000 - REVOCATION_FEED_OVERLAP_MS]
        );
    }

    #[tokio::test]
    async fn a_burst_larger_than_a_page_is_read_whole() {
        let list = DenyList::default();
        let burst: Vec<Revocation> = (0..PAGE * 2 + 3)
            .map(|i| revocation(RevocationKind::Token, &format!("j{i:05}"), 7_000))
            .collect();
        let feed = |after: FeedKey, limit: i64| {
            let page: Vec<Revocation> = burst
                .iter()
                .filter(|r| {
                    (
                        r.revoked_at_ms as i64,
                        r.target.kind.claim(),
                        r.target.id.as_str(),
                    ) > (after.revoked_at_ms, after.kind, after.target.as_str())
                })
                .take(limit as usize)
                .cloned()
                .collect();
            async move { Ok::<_, ()>(page) }
        };
        list.refresh(1_000, feed).await.unwrap();
        for i in [0, PAGE, PAGE * 2 + 2] {
            let jti = format!("j{i:05}");
            assert_eq!(
                list.cutoffs(&facts(&jti, "k", "u"), 1_000)[2],
                Some(u64::MAX),
                "{jti}"
            );
        }
    }

    #[tokio::test]
    async fn a_refresh_drops_expired_entries() {
        let list = DenyList::default();
        list.file(&target(RevocationKind::Token, "old"), None, 500);
        list.refresh(1_000, |_: FeedKey, _| async { Ok::<_, ()>(Vec::new()) })
            .await
            .unwrap();
        assert!(list.entries.read().unwrap().iter().all(HashMap::is_empty));
    }
}
