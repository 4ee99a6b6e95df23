//! The server ids of subscribed topics by their wire key, for adapters that
//! route by a text key (OKX `channel:instId`, WEEX `SYMBOL@stream`).
//!
//! Rules, and why: a push is routed by building its key in a reused scratch
//! buffer and looking it up, so routing a subscribed topic's push allocates
//! nothing and hands out the one shared [`ServerId`]. Keys are added when a
//! subscribe is encoded and removed when the subscription ends, so the map
//! never holds more than the client subscribed; a push for a key never
//! subscribed gets a fresh id (which routes nowhere) and adds nothing.
//! Fx hashing, as the registry's routes: only the client's own subscribes
//! add keys, so flooding resistance (SipHash) buys nothing for a lookup per
//! push and cost ~200 instructions each.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::ServerId;

#[derive(Debug, Default)]
pub(crate) struct RouteKeys {
    ids: FxHashMap<Box<str>, ServerId>,
    scratch: String,
}

impl RouteKeys {
    /// Remembers `key` (a topic being subscribed); returns its server id.
    pub(crate) fn remember(&mut self, key: &str) -> ServerId {
        if let Some(id) = self.ids.get(key) {
            return id.clone();
        }
        let id = ServerId::Key(Arc::from(key));
        self.ids.insert(Box::from(key), id.clone());
        id
    }

    /// The server id of the key `write` builds: the remembered one, or a
    /// fresh key (which routes nowhere) for a topic never subscribed.
    pub(crate) fn route(&mut self, write: impl FnOnce(&mut String)) -> ServerId {
        self.scratch.clear();
        write(&mut self.scratch);
        match self.ids.get(self.scratch.as_str()) {
            Some(id) => id.clone(),
            None => ServerId::Key(Arc::from(self.scratch.as_str())),
        }
    }

    /// The remembered keys and their ids.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &ServerId)> {
        self.ids.iter().map(|(key, id)| (&**key, id))
    }

    /// Whether `server_id` is a remembered (subscribed) key's id.
    pub(crate) fn contains(&self, server_id: &ServerId) -> bool {
        matches!(server_id, ServerId::Key(key) if self.ids.contains_key(&**key))
    }

    /// Forgets a subscription's key by its server id.
    pub(crate) fn forget(&mut self, server_id: &ServerId) {
        if let ServerId::Key(key) = server_id {
            self.ids.remove(&**key);
        }
    }

    /// Forgets a key.
    pub(crate) fn forget_key(&mut self, key: &str) {
        self.ids.remove(key);
    }

    /// How many keys are remembered (for bound tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }
}
