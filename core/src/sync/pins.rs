//! [`PinTable`]: shared handles (a segment's open files) that are removed
//! only once no user pins them.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::ops::Deref;

use super::loom_shim::{Arc, Condvar, Mutex, lock, wait};

/// Values by key, shared between the thread that adds and removes them and
/// threads that use them for a while.
///
/// The adapters keep each open segment's files here: the segment writer
/// inserts them (`OpenSegment`) and removes them (`RemoveSegment`), socket
/// writers pin them for a `sendfile`, and the fsync worker pins them from
/// the moment a `Sync` is handed over until its `fdatasync` returns.
///
/// **Invariants.**
/// - *No removal while pinned*: [`PinTable::remove`] takes the entry out
///   of the table (no new pins) and returns only once every [`Pin`] of it
///   is dropped, so whatever the caller does next (delete the files) never
///   happens under a user. A pin is counted under the table's lock, so a
///   removal cannot slip between a lookup and its count.
/// - A value is dropped (its files closed) only after its last pin and the
///   table let go of it.
pub struct PinTable<K, V> {
    entries: Mutex<HashMap<K, Arc<Entry<V>>>>,
    #[cfg(conveyor_loom)]
    fault: Fault,
}

struct Entry<V> {
    value: V,
    pins: Mutex<usize>,
    unpinned: Condvar,
}

/// The deliberate bugs the loom models expect to be caught.
#[cfg_attr(not(conveyor_loom), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    /// `pin` counts itself after releasing the table's lock: a removal in
    /// between sees no pin and goes ahead.
    CountAfterLookup,
    /// `remove` does not wait for the pins to go.
    RemoveWithoutWait,
}

/// A value pinned in a [`PinTable`]: while it lives, the value is not
/// removed. Dereferences to the value.
pub struct Pin<V> {
    entry: Arc<Entry<V>>,
}

/// A value taken out of a [`PinTable`] with no pin left on it.
pub struct Removed<V> {
    entry: Arc<Entry<V>>,
}

impl<K: Eq + Hash, V> PinTable<K, V> {
    /// An empty table.
    pub fn new() -> PinTable<K, V> {
        PinTable {
            entries: Mutex::new(HashMap::new()),
            #[cfg(conveyor_loom)]
            fault: Fault::None,
        }
    }

    /// Broken on purpose (loom models only): pins are counted after the
    /// lookup's lock is released.
    #[cfg(conveyor_loom)]
    pub fn broken_count_after_lookup() -> PinTable<K, V> {
        PinTable {
            fault: Fault::CountAfterLookup,
            ..PinTable::new()
        }
    }

    /// Broken on purpose (loom models only): removal does not wait for
    /// pins.
    #[cfg(conveyor_loom)]
    pub fn broken_remove_without_wait() -> PinTable<K, V> {
        PinTable {
            fault: Fault::RemoveWithoutWait,
            ..PinTable::new()
        }
    }

    fn fault(&self) -> Fault {
        #[cfg(conveyor_loom)]
        return self.fault;
        #[cfg(not(conveyor_loom))]
        Fault::None
    }

    /// Add `value` under `key`. A value already there is forgotten, not
    /// removed: it lives on until its last pin drops.
    pub fn insert(&self, key: K, value: V) {
        let entry = Arc::new(Entry {
            value,
            pins: Mutex::new(0),
            unpinned: Condvar::new(),
        });
        lock(&self.entries).insert(key, entry);
    }

    /// Pin the value under `key`, if there is one.
    pub fn pin(&self, key: &K) -> Option<Pin<V>> {
        let entries = lock(&self.entries);
        let entry = Arc::clone(entries.get(key)?);
        if self.fault() == Fault::CountAfterLookup {
            drop(entries);
        }
        *lock(&entry.pins) += 1;
        Some(Pin { entry })
    }

    /// Take the value under `key` out of the table, waiting until no pin
    /// holds it; `None` if there is none. Blocks while a user holds a pin:
    /// call it where waiting for the users is acceptable.
    pub fn remove(&self, key: &K) -> Option<Removed<V>> {
        let entry = lock(&self.entries).remove(key)?;
        if self.fault() != Fault::RemoveWithoutWait {
            let mut pins = lock(&entry.pins);
            while *pins > 0 {
                pins = wait(&entry.unpinned, pins, None);
            }
        }
        Some(Removed { entry })
    }

    /// Whether a value is under `key`.
    pub fn contains(&self, key: &K) -> bool {
        lock(&self.entries).contains_key(key)
    }

    /// The number of values in the table.
    pub fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Eq + Hash, V> Default for PinTable<K, V> {
    fn default() -> PinTable<K, V> {
        PinTable::new()
    }
}

impl<K, V> fmt::Debug for PinTable<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinTable")
            .field("len", &lock(&self.entries).len())
            .finish_non_exhaustive()
    }
}

impl<V> Deref for Pin<V> {
    type Target = V;
    fn deref(&self) -> &V {
        &self.entry.value
    }
}

impl<V> Clone for Pin<V> {
    fn clone(&self) -> Pin<V> {
        *lock(&self.entry.pins) += 1;
        Pin {
            entry: Arc::clone(&self.entry),
        }
    }
}

impl<V> Drop for Pin<V> {
    fn drop(&mut self) {
        let mut pins = lock(&self.entry.pins);
        *pins -= 1;
        if *pins == 0 {
            drop(pins);
            self.entry.unpinned.notify_all();
        }
    }
}

impl<V: fmt::Debug> fmt::Debug for Pin<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pin").field(&self.entry.value).finish()
    }
}

impl<V> Deref for Removed<V> {
    type Target = V;
    fn deref(&self) -> &V {
        &self.entry.value
    }
}

impl<V: fmt::Debug> fmt::Debug for Removed<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Removed").field(&self.entry.value).finish()
    }
}
