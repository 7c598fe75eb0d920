//! The in-memory object store: objects as JSON, one resourceVersion counter, and the event feed.

use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

/// Where an object lives. `namespace` is empty for cluster-scoped objects.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Key {
    pub group: String,
    pub version: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

/// One change, as watchers see it.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: &'static str,
    pub rv: u64,
    pub key: Key,
    pub object: Value,
    /// The object before a MODIFIED, so that filtered watches see it enter or leave their selection.
    pub old: Option<Value>,
    /// The object as JSON, serialized once for all the watchers that send it.
    encoded: std::sync::OnceLock<bytes::Bytes>,
}

impl Event {
    /// The watch line `{"type":…,"object":…}` for this event under the given type.
    pub fn line(&self, kind: &str) -> bytes::Bytes {
        let object = self.encoded.get_or_init(|| {
            bytes::Bytes::from(serde_json::to_vec(&self.object).expect("JSON values serialize"))
        });
        let mut out = Vec::with_capacity(object.len() + 32);
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        out.extend_from_slice(object);
        out.extend_from_slice(b"}\n");
        bytes::Bytes::from(out)
    }
}

pub struct Inner {
    objects: BTreeMap<Key, Value>,
    rv: u64,
    history: VecDeque<Arc<Event>>,
    /// How many past events a watch can resume from; older resourceVersions get 410 Expired.
    history_limit: usize,
    tx: broadcast::Sender<Arc<Event>>,
}

/// Shared by all request handlers of one server.
pub struct Store {
    inner: Mutex<Inner>,
}

impl Store {
    /// `backlog`: events a watcher may fall behind by before it is cut off with 410.
    pub fn new(history_limit: usize, backlog: usize) -> Self {
        let (tx, _) = broadcast::channel(backlog.max(1));
        let inner = Inner {
            objects: BTreeMap::new(),
            rv: 0,
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            tx,
        };
        Self {
            inner: Mutex::new(inner),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A handler that panicked leaves consistent data behind: every write is one map operation.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A watch's starting point: replayed history plus the live feed from there on.
pub struct Subscription {
    pub replay: Vec<Arc<Event>>,
    pub live: broadcast::Receiver<Arc<Event>>,
}

impl Inner {
    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }

    pub fn all_keys(&self) -> Vec<Key> {
        self.objects.keys().cloned().collect()
    }

    /// Objects of one resource type, in key order; `namespace` None means all namespaces.
    pub fn list(
        &self,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
    ) -> Vec<(&Key, &Value)> {
        // Keys sort by group first: start at the group and stop after it.
        let from = Key {
            group: group.to_string(),
            version: String::new(),
            resource: String::new(),
            namespace: String::new(),
            name: String::new(),
        };
        self.objects
            .range(from..)
            .take_while(|(k, _)| k.group == group)
            .filter(|(k, _)| k.resource == resource && namespace.is_none_or(|n| k.namespace == n))
            .collect()
    }

    /// Stores an object under a fresh resourceVersion and tells watchers.
    pub fn put(&mut self, key: Key, mut obj: Value, kind: &'static str) -> Value {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let old = self.objects.insert(key.clone(), obj.clone());
        self.emit(kind, key, obj.clone(), old);
        obj
    }

    /// Removes an object; watchers get DELETED with the final state under a fresh resourceVersion.
    pub fn remove(&mut self, key: &Key) -> Option<Value> {
        let mut obj = self.objects.remove(key)?;
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.emit("DELETED", key.clone(), obj.clone(), None);
        Some(obj)
    }

    fn emit(&mut self, kind: &'static str, key: Key, object: Value, old: Option<Value>) {
        let ev = Arc::new(Event {
            kind,
            rv: self.rv,
            key,
            object,
            old,
            encoded: Default::default(),
        });
        if self.history.len() >= self.history_limit {
            self.history.pop_front();
        }
        self.history.push_back(ev.clone());
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(ev);
    }

    /// Every object and the resourceVersion counter, for a snapshot on disk.
    pub fn snapshot(&self) -> Value {
        let objects: Vec<Value> = self
            .objects
            .iter()
            .map(|(k, v)| json!({"key": k, "object": v}))
            .collect();
        json!({"resourceVersion": self.rv, "objects": objects})
    }

    /// Replaces the contents with a snapshot's; history starts empty, so older watches get 410.
    pub fn restore(&mut self, snapshot: &Value) -> Result<(), String> {
        let mut objects = BTreeMap::new();
        for entry in snapshot["objects"].as_array().ok_or("no objects list")? {
            let key: Key =
                serde_json::from_value(entry["key"].clone()).map_err(|e| e.to_string())?;
            objects.insert(key, entry["object"].clone());
        }
        self.rv = snapshot["resourceVersion"]
            .as_u64()
            .ok_or("no resourceVersion")?;
        self.objects = objects;
        self.history.clear();
        Ok(())
    }

    /// Every change from now on, for the controllers.
    pub fn events(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// Subscribes from `rv`: Ok with events after it, or Err when `rv` is older than the history.
    pub fn subscribe(&self, rv: u64) -> Result<Subscription, u64> {
        let oldest = self.history.front().map_or(self.rv + 1, |e| e.rv);
        // Events rv+1.. must all still be in the history.
        if rv + 1 < oldest && rv < self.rv {
            return Err(oldest);
        }
        let replay = self.history.iter().filter(|e| e.rv > rv).cloned().collect();
        Ok(Subscription {
            replay,
            live: self.tx.subscribe(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        Key {
            group: "".into(),
            version: "v1".into(),
            resource: "configmaps".into(),
            namespace: "d".into(),
            name: name.into(),
        }
    }

    #[test]
    fn resource_versions_increase_and_replay_from_a_point() {
        let store = Store::new(100, 16);
        let mut s = store.lock();
        let a = s.put(key("a"), json!({"metadata": {"name": "a"}}), "ADDED");
        s.put(key("b"), json!({"metadata": {"name": "b"}}), "ADDED");
        s.remove(&key("a"));
        assert_eq!(a["metadata"]["resourceVersion"], "1");
        assert_eq!(s.current_rv(), 3);
        let sub = s.subscribe(1).unwrap();
        let kinds: Vec<&str> = sub.replay.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, ["ADDED", "DELETED"]);
        assert_eq!(s.list("", "configmaps", Some("d")).len(), 1);
    }

    #[test]
    fn resuming_before_the_history_is_refused() {
        let store = Store::new(2, 16);
        let mut s = store.lock();
        for n in ["a", "b", "c", "d"] {
            s.put(key(n), json!({"metadata": {"name": n}}), "ADDED");
        }
        assert_eq!(s.subscribe(1).err(), Some(3));
        assert_eq!(s.subscribe(2).unwrap().replay.len(), 2);
    }
}
