//! Caps on concurrent `WatchEvents` streams: the process-wide total (`--max-event-streams`)
//! and each tenant key's own (`[[tenants]] max_streams`), so one tenant cannot take every
//! slot of the process.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Concurrent streams of one tenant key, by default.
pub const DEFAULT_TENANT_STREAMS: usize = 100;

type Counts = Arc<Mutex<HashMap<String, usize>>>;

/// Which cap refused a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    Total { max: usize },
    Tenant { tenant: String, max: usize },
}

/// One open stream's place under the caps; released when dropped.
pub struct StreamSlot {
    _total: OwnedSemaphorePermit,
    tenant: Option<(Counts, String)>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if let Some((counts, tenant)) = self.tenant.take() {
            release(&counts, &tenant);
        }
    }
}

fn release(counts: &Counts, tenant: &str) {
    let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(n) = c.get_mut(tenant) {
        *n -= 1;
        if *n == 0 {
            c.remove(tenant);
        }
    }
}

#[derive(Clone)]
pub(super) struct Slots {
    total: Arc<Semaphore>,
    counts: Counts,
}

impl Slots {
    pub(super) fn new(max_total: usize) -> Self {
        Self {
            total: Arc::new(Semaphore::new(max_total)),
            counts: Arc::default(),
        }
    }

    pub(super) fn available(&self) -> usize {
        self.total.available_permits()
    }

    /// A slot under the total and, for `tenant` = (name, cap), under the tenant's cap.
    pub(super) fn admit(
        &self,
        max_total: usize,
        tenant: Option<(&str, usize)>,
    ) -> Result<StreamSlot, Refused> {
        if let Some((name, max)) = tenant {
            let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            let n = c.entry(name.to_owned()).or_insert(0);
            if *n >= max {
                return Err(Refused::Tenant {
                    tenant: name.to_owned(),
                    max,
                });
            }
            *n += 1;
        }
        let tenant = tenant.map(|(name, _)| (self.counts.clone(), name.to_owned()));
        match self.total.clone().try_acquire_owned() {
            Ok(p) => Ok(StreamSlot { _total: p, tenant }),
            Err(_) => {
                if let Some((counts, name)) = tenant {
                    release(&counts, &name);
                }
                Err(Refused::Total { max: max_total })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_at_its_cap_leaves_the_others_their_slots() {
        let s = Slots::new(3);
        let a1 = s.admit(3, Some(("acme", 1))).unwrap();
        assert_eq!(
            s.admit(3, Some(("acme", 1))).err(),
            Some(Refused::Tenant {
                tenant: "acme".into(),
                max: 1
            })
        );
        let _z = s.admit(3, Some(("zeta", 1))).unwrap();
        let _admin = s.admit(3, None).unwrap();
        assert_eq!(
            s.admit(3, Some(("other", 5))).err(),
            Some(Refused::Total { max: 3 })
        );
        // Refused by the total: the tenant's count was not kept.
        assert!(!s.counts.lock().unwrap().contains_key("other"));
        drop(a1);
        assert!(s.admit(3, Some(("acme", 1))).is_ok());
    }
}
