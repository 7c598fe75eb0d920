//! The embedded backend: one SQLite file, `CLOUDER_HOME/state.db`, mode 0600.

use crate::*;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::Mutex;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS clusters (
    name TEXT PRIMARY KEY, provider TEXT NOT NULL, region TEXT, context TEXT,
    spec TEXT NOT NULL, status TEXT NOT NULL, setup_complete INTEGER NOT NULL,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS resources (
    cluster TEXT NOT NULL, id TEXT NOT NULL, kind TEXT NOT NULL, cloud_id TEXT NOT NULL,
    attrs TEXT NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (cluster, id));
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, cluster TEXT NOT NULL, operation TEXT NOT NULL,
    resource TEXT NOT NULL, action TEXT NOT NULL, outcome TEXT NOT NULL, message TEXT NOT NULL,
    at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS journal_cluster ON journal (cluster, seq);
CREATE TABLE IF NOT EXISTS locks (cluster TEXT PRIMARY KEY, holder TEXT NOT NULL, at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS contexts (name TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (
    id TEXT PRIMARY KEY, cluster TEXT NOT NULL, created_at INTEGER NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS checkpoints_cluster ON checkpoints (cluster, created_at);
CREATE TABLE IF NOT EXISTS byoc (
    cluster TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (cluster, name));
CREATE TABLE IF NOT EXISTS host_keys (
    cluster TEXT NOT NULL, address TEXT NOT NULL, fingerprint TEXT NOT NULL, PRIMARY KEY (cluster, address));
CREATE TABLE IF NOT EXISTS lineage (
    only INTEGER PRIMARY KEY CHECK (only = 1), lineage TEXT NOT NULL, serial INTEGER NOT NULL,
    head TEXT NOT NULL, synced TEXT NOT NULL);
INSERT OR IGNORE INTO lineage VALUES (1, lower(hex(randomblob(16))), 0, '', '');
";

/// The tables whose every change counts in the lineage's serial and draws a new head (the run locks do not: they
/// come and go without changing what the state says).
const COUNTED: [&str; 7] = [
    "clusters",
    "resources",
    "journal",
    "contexts",
    "checkpoints",
    "byoc",
    "host_keys",
];

/// Triggers that mark every insert, update and delete in the counted tables.
fn serial_triggers() -> String {
    let mut sql = String::new();
    for table in COUNTED {
        for event in ["INSERT", "UPDATE", "DELETE"] {
            sql += &format!(
                "CREATE TRIGGER IF NOT EXISTS serial_{table}_{event} AFTER {event} ON {table} \
                 BEGIN UPDATE lineage SET serial = serial + 1, \
                 head = lower(hex(randomblob(8))); END;\n"
            );
        }
    }
    sql
}

pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, restricting it to its owner.
    pub fn open(path: &Path) -> Result<Self> {
        let open_err = |source| StateError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        restrict(path);
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(&serial_triggers())?;
        for suffix in ["-wal", "-shm"] {
            restrict(&path.with_extension(format!("db{suffix}")));
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    /// A consistent copy of the database at `path` as one file's bytes (whatever is still in
    /// its write-ahead log included), for shipping to a remote backend.
    pub fn snapshot(path: &Path) -> Result<Vec<u8>> {
        let conn = Connection::open(path).map_err(|source| StateError::Open {
            path: path.display().to_string(),
            source,
        })?;
        let copy = path.with_extension("snapshot");
        let _ = std::fs::remove_file(&copy);
        conn.execute("VACUUM INTO ?1", [copy.display().to_string()])?;
        restrict(&copy);
        let bytes = std::fs::read(&copy);
        let _ = std::fs::remove_file(&copy);
        Ok(bytes?)
    }

    /// A private in-memory store, for tests.
    pub fn in_memory() -> Result<Self> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(&serial_triggers())?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    /// Which state this is and how many changes it has seen.
    pub fn lineage(&self) -> Result<Lineage> {
        self.with(|db| {
            db.query_row(
                "SELECT lineage, serial, head, synced FROM lineage",
                [],
                |r| {
                    Ok(Lineage {
                        lineage: r.get(0)?,
                        serial: r.get(1)?,
                        head: r.get(2)?,
                        synced: r.get(3)?,
                    })
                },
            )
        })
    }

    /// Records that the state as it is now was just pulled or pushed.
    pub fn mark_synced(&self) -> Result<()> {
        self.with(|db| db.execute("UPDATE lineage SET synced = head", []))?;
        Ok(())
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        Ok(f(&conn)?)
    }

    /// The JSON `body` column of the one row `sql` selects, decoded.
    fn body<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Option<T>> {
        let body: Option<String> =
            self.with(|db| db.query_row(sql, params, |r| r.get(0)).optional())?;
        Ok(body.map(|b| serde_json::from_str(&b)).transpose()?)
    }

    /// The JSON `body` column of every row `sql` selects, decoded, in order.
    fn bodies<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<T>> {
        let bodies: Vec<String> = self.with(|db| {
            let mut stmt = db.prepare(sql)?;
            stmt.query_map(params, |r| r.get(0))?.collect()
        })?;
        bodies
            .iter()
            .map(|b| Ok(serde_json::from_str(b)?))
            .collect()
    }
}

#[cfg(unix)]
fn restrict(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if path.exists() {
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
}

#[cfg(not(unix))]
fn restrict(_: &Path) {}

fn cluster_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(ClusterRecord, String)> {
    Ok((
        ClusterRecord {
            name: row.get(0)?,
            provider: row.get(1)?,
            region: row.get(2)?,
            context: row.get(3)?,
            spec: serde_json::Value::Null,
            status: row.get(5)?,
            setup_complete: row.get(6)?,
            created_at: row.get(7)?,
            updated_at: row.get(8)?,
        },
        row.get(4)?,
    ))
}

fn with_spec((mut record, spec): (ClusterRecord, String)) -> Result<ClusterRecord> {
    record.spec = serde_json::from_str(&spec)?;
    Ok(record)
}

const CLUSTER_COLUMNS: &str =
    "name, provider, region, context, spec, status, setup_complete, created_at, updated_at";

impl StateStore for SqliteStore {
    fn put_cluster(&self, c: &ClusterRecord) -> Result<()> {
        let spec = serde_json::to_string(&c.spec)?;
        self.with(|db| {
            db.execute(
                &format!(
                    "INSERT INTO clusters ({CLUSTER_COLUMNS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)
                     ON CONFLICT(name) DO UPDATE SET provider=?2, region=?3, context=?4, spec=?5,
                     status=?6, setup_complete=?7, updated_at=?9"
                ),
                params![
                    c.name,
                    c.provider,
                    c.region,
                    c.context,
                    spec,
                    c.status,
                    c.setup_complete,
                    c.created_at,
                    c.updated_at
                ],
            )
            .map(drop)
        })
    }

    fn cluster(&self, name: &str) -> Result<Option<ClusterRecord>> {
        let row = self.with(|db| {
            db.query_row(
                &format!("SELECT {CLUSTER_COLUMNS} FROM clusters WHERE name = ?1"),
                [name],
                cluster_from_row,
            )
            .optional()
        })?;
        row.map(with_spec).transpose()
    }

    fn clusters(&self) -> Result<Vec<ClusterRecord>> {
        let rows = self.with(|db| {
            let mut stmt = db.prepare(&format!(
                "SELECT {CLUSTER_COLUMNS} FROM clusters ORDER BY name"
            ))?;
            stmt.query_map([], cluster_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter().map(with_spec).collect()
    }

    fn delete_cluster(&self, name: &str) -> Result<()> {
        self.with(|db| {
            for table in ["resources", "journal", "locks", "host_keys"] {
                db.execute(&format!("DELETE FROM {table} WHERE cluster = ?1"), [name])?;
            }
            db.execute("DELETE FROM clusters WHERE name = ?1", [name])
                .map(drop)
        })
    }

    fn put_resource(&self, cluster: &str, r: &ResourceRecord) -> Result<()> {
        let attrs = serde_json::to_string(&r.attrs)?;
        self.with(|db| {
            db.execute(
                "INSERT INTO resources (cluster, id, kind, cloud_id, attrs, updated_at)
                 VALUES (?1,?2,?3,?4,?5,?6)
                 ON CONFLICT(cluster, id) DO UPDATE SET kind=?3, cloud_id=?4, attrs=?5, updated_at=?6",
                params![cluster, r.id, r.kind, r.cloud_id, attrs, r.updated_at],
            )
            .map(drop)
        })
    }

    fn resources(&self, cluster: &str) -> Result<Vec<ResourceRecord>> {
        let rows = self.with(|db| {
            let mut stmt = db.prepare(
                "SELECT id, kind, cloud_id, attrs, updated_at FROM resources WHERE cluster = ?1 ORDER BY id",
            )?;
            stmt.query_map([cluster], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, i64>(4)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter()
            .map(|(id, kind, cloud_id, attrs, updated_at)| {
                Ok(ResourceRecord {
                    id,
                    kind,
                    cloud_id,
                    attrs: serde_json::from_str(&attrs)?,
                    updated_at,
                })
            })
            .collect()
    }

    fn delete_resource(&self, cluster: &str, id: &str) -> Result<()> {
        self.with(|db| {
            db.execute(
                "DELETE FROM resources WHERE cluster = ?1 AND id = ?2",
                [cluster, id],
            )
            .map(drop)
        })
    }

    fn append_journal(&self, cluster: &str, e: &JournalEntry) -> Result<()> {
        self.with(|db| {
            db.execute(
                "INSERT INTO journal (cluster, operation, resource, action, outcome, message, at)
                 VALUES (?1,?2,?3,?4,?5,?6,?7)",
                params![
                    cluster,
                    e.operation,
                    e.resource,
                    e.action,
                    e.outcome,
                    e.message,
                    e.at
                ],
            )
            .map(drop)
        })
    }

    fn journal(&self, cluster: &str, limit: usize) -> Result<Vec<JournalEntry>> {
        let mut rows = self.with(|db| {
            let mut stmt = db.prepare(
                "SELECT operation, resource, action, outcome, message, at FROM journal
                 WHERE cluster = ?1 ORDER BY seq DESC LIMIT ?2",
            )?;
            stmt.query_map(params![cluster, limit as i64], |row| {
                Ok(JournalEntry {
                    operation: row.get(0)?,
                    resource: row.get(1)?,
                    action: row.get(2)?,
                    outcome: row.get(3)?,
                    message: row.get(4)?,
                    at: row.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.reverse();
        Ok(rows)
    }

    fn lock(&self, cluster: &str, holder: &str) -> Result<()> {
        let current: Option<String> = self.with(|db| {
            db.execute(
                "INSERT OR IGNORE INTO locks (cluster, holder, at) VALUES (?1, ?2, ?3)",
                params![cluster, holder, now()],
            )?;
            db.query_row(
                "SELECT holder FROM locks WHERE cluster = ?1",
                [cluster],
                |r| r.get(0),
            )
            .optional()
        })?;
        match current {
            Some(h) if h != holder => Err(StateError::Locked {
                cluster: cluster.to_string(),
                holder: h,
            }),
            _ => Ok(()),
        }
    }

    fn unlock(&self, cluster: &str, holder: &str) -> Result<()> {
        self.with(|db| {
            db.execute(
                "DELETE FROM locks WHERE cluster = ?1 AND holder = ?2",
                [cluster, holder],
            )
            .map(drop)
        })
    }

    fn force_unlock(&self, cluster: &str) -> Result<()> {
        self.with(|db| {
            db.execute("DELETE FROM locks WHERE cluster = ?1", [cluster])
                .map(drop)
        })
    }

    fn host_key(&self, cluster: &str, address: &str) -> Result<Option<String>> {
        self.with(|db| {
            db.query_row(
                "SELECT fingerprint FROM host_keys WHERE cluster = ?1 AND address = ?2",
                [cluster, address],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// Pins only once: a pinned key is never silently replaced.
    fn pin_host_key(&self, cluster: &str, address: &str, fingerprint: &str) -> Result<()> {
        self.with(|db| {
            db.execute(
                "INSERT OR IGNORE INTO host_keys (cluster, address, fingerprint) VALUES (?1, ?2, ?3)",
                [cluster, address, fingerprint],
            )
            .map(drop)
        })
    }

    fn put_context(&self, c: &Context) -> Result<()> {
        let body = serde_json::to_string(c)?;
        self.with(|db| {
            db.execute(
                "INSERT INTO contexts (name, body) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET body = ?2",
                [&c.name, &body],
            )
            .map(drop)
        })
    }

    fn context(&self, name: &str) -> Result<Option<Context>> {
        self.body("SELECT body FROM contexts WHERE name = ?1", [name])
    }

    fn contexts(&self) -> Result<Vec<Context>> {
        self.bodies("SELECT body FROM contexts ORDER BY name", [])
    }

    fn delete_context(&self, name: &str) -> Result<bool> {
        self.with(|db| {
            db.execute("DELETE FROM contexts WHERE name = ?1", [name])
                .map(|n| n > 0)
        })
    }

    fn put_checkpoint(&self, c: &CheckpointRecord) -> Result<()> {
        let body = serde_json::to_string(c)?;
        self.with(|db| {
            db.execute(
                "INSERT INTO checkpoints (id, cluster, created_at, body) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(id) DO UPDATE SET cluster = ?2, created_at = ?3, body = ?4",
                params![c.id, c.cluster, c.created_at, body],
            )
            .map(drop)
        })
    }

    fn checkpoint(&self, id: &str) -> Result<Option<CheckpointRecord>> {
        self.body("SELECT body FROM checkpoints WHERE id = ?1", [id])
    }

    fn checkpoints(&self, cluster: &str) -> Result<Vec<CheckpointRecord>> {
        self.bodies(
            "SELECT body FROM checkpoints WHERE cluster = ?1 ORDER BY created_at DESC, id DESC",
            [cluster],
        )
    }

    fn delete_checkpoint(&self, id: &str) -> Result<bool> {
        self.with(|db| {
            db.execute("DELETE FROM checkpoints WHERE id = ?1", [id])
                .map(|n| n > 0)
        })
    }

    fn put_byoc(&self, r: &ByocRecord) -> Result<()> {
        let body = serde_json::to_string(r)?;
        self.with(|db| {
            db.execute(
                "INSERT INTO byoc (cluster, name, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT(cluster, name) DO UPDATE SET body = ?3",
                params![r.cluster, r.name, body],
            )
            .map(drop)
        })
    }

    fn byoc(&self, cluster: &str, name: &str) -> Result<Option<ByocRecord>> {
        self.body(
            "SELECT body FROM byoc WHERE cluster = ?1 AND name = ?2",
            [cluster, name],
        )
    }

    fn byocs(&self, cluster: &str) -> Result<Vec<ByocRecord>> {
        self.bodies(
            "SELECT body FROM byoc WHERE cluster = ?1 ORDER BY name",
            [cluster],
        )
    }

    fn delete_byoc(&self, cluster: &str, name: &str) -> Result<bool> {
        self.with(|db| {
            db.execute(
                "DELETE FROM byoc WHERE cluster = ?1 AND name = ?2",
                [cluster, name],
            )
            .map(|n| n > 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> ClusterRecord {
        ClusterRecord {
            name: name.into(),
            provider: "aws".into(),
            region: Some("us-east-1".into()),
            context: None,
            spec: serde_json::json!({"metadata": {"name": name}}),
            status: "ready".into(),
            setup_complete: false,
            created_at: 1,
            updated_at: 2,
        }
    }

    #[test]
    fn checkpoints_round_trip_newest_first_per_cluster() {
        let store = SqliteStore::in_memory().unwrap();
        let checkpoint = |id: &str, cluster: &str, at: i64| CheckpointRecord {
            id: id.into(),
            cluster: cluster.into(),
            namespace: "default".into(),
            pod: "web".into(),
            container: "app".into(),
            node: Some("node-1".into()),
            backend: "localhost:5000/checkpoints".into(),
            reference: format!("localhost:5000/checkpoints@sha256:{id}"),
            manifest_digest: format!("sha256:{id}"),
            image: "localhost:5000/app@sha256:00".into(),
            size: 42,
            labels: [("reason".to_string(), "drain".to_string())].into(),
            created_at: at,
            pod_spec: None,
        };
        store.put_checkpoint(&checkpoint("old", "a", 1)).unwrap();
        store.put_checkpoint(&checkpoint("new", "a", 2)).unwrap();
        store.put_checkpoint(&checkpoint("other", "b", 3)).unwrap();
        let ids: Vec<_> = store
            .checkpoints("a")
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, ["new", "old"]);
        assert_eq!(
            store.checkpoint("old").unwrap(),
            Some(checkpoint("old", "a", 1))
        );
        assert!(store.delete_checkpoint("old").unwrap());
        assert!(!store.delete_checkpoint("old").unwrap());
        assert_eq!(store.checkpoint("old").unwrap(), None);
    }

    #[test]
    fn byoc_endpoints_round_trip_per_cluster() {
        let store = SqliteStore::in_memory().unwrap();
        let record = |cluster: &str, name: &str| ByocRecord {
            cluster: cluster.into(),
            name: name.into(),
            endpoint: "https://10.0.0.9:8443".into(),
            insecure: false,
            image: "reg.example/app:1".into(),
            image_digest: format!("sha256:{}", "a".repeat(64)),
            token_sha256: "b".repeat(64),
            capability: serde_json::json!({"cpu": 4}),
            enrolled_at: 1,
            updated_at: 1,
        };
        store.put_byoc(&record("c1", "gpu-b")).unwrap();
        store.put_byoc(&record("c1", "gpu-a")).unwrap();
        store.put_byoc(&record("c2", "gpu-a")).unwrap();
        let mut changed = record("c1", "gpu-a");
        changed.insecure = true;
        store.put_byoc(&changed).unwrap();
        let names: Vec<_> = store
            .byocs("c1")
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["gpu-a", "gpu-b"]);
        assert_eq!(store.byoc("c1", "gpu-a").unwrap(), Some(changed));
        assert!(store.delete_byoc("c1", "gpu-a").unwrap());
        assert!(!store.delete_byoc("c1", "gpu-a").unwrap());
        assert_eq!(store.byoc("c1", "gpu-a").unwrap(), None);
        assert!(store.byoc("c2", "gpu-a").unwrap().is_some());
    }

    #[test]
    fn clusters_round_trip_and_delete_takes_their_resources() {
        let store = SqliteStore::in_memory().unwrap();
        store.put_cluster(&record("b")).unwrap();
        store.put_cluster(&record("a")).unwrap();
        let res = ResourceRecord {
            id: "aws/vpc/main".into(),
            kind: "vpc".into(),
            cloud_id: "vpc-1".into(),
            attrs: serde_json::json!({"cidr": "10.0.0.0/16"}),
            updated_at: 3,
        };
        store.put_resource("a", &res).unwrap();
        assert_eq!(
            store
                .clusters()
                .unwrap()
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(store.cluster("a").unwrap(), Some(record("a")));
        assert_eq!(store.resources("a").unwrap(), vec![res]);
        store.delete_cluster("a").unwrap();
        assert_eq!(store.cluster("a").unwrap(), None);
        assert!(store.resources("a").unwrap().is_empty());
    }

    #[test]
    fn the_serial_counts_changes_of_a_lineage_kept_by_copies_but_not_locks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = SqliteStore::open(&path).unwrap();
        let born = store.lineage().unwrap();
        assert_eq!(born.serial, 0);
        assert_eq!(born.head, born.synced);
        store.lock("a", "pid-1").unwrap();
        store.unlock("a", "pid-1").unwrap();
        assert_eq!(store.lineage().unwrap().serial, 0, "locks are not changes");
        store.put_cluster(&record("a")).unwrap();
        store.put_cluster(&record("a")).unwrap();
        store.delete_cluster("a").unwrap();
        let moved = store.lineage().unwrap();
        assert!(moved.serial >= 3, "{moved:?}");
        assert_eq!(moved.lineage, born.lineage);
        assert_ne!(moved.head, born.head);
        store.mark_synced().unwrap();
        assert_eq!(store.lineage().unwrap().synced, moved.head);
        drop(store);
        // A copy keeps the lineage and the serial; another state has its own lineage.
        let copy = dir.path().join("copy.db");
        std::fs::write(&copy, SqliteStore::snapshot(&path).unwrap()).unwrap();
        let copied = SqliteStore::open(&copy).unwrap().lineage().unwrap();
        assert_eq!(copied.lineage, born.lineage);
        assert_eq!((copied.serial, copied.head), (moved.serial, moved.head));
        let other = SqliteStore::in_memory().unwrap().lineage().unwrap();
        assert_ne!(other.lineage, born.lineage);
    }

    #[test]
    fn a_lock_is_refused_to_a_second_holder_until_released() {
        let store = SqliteStore::in_memory().unwrap();
        store.lock("c", "pid-1").unwrap();
        store.lock("c", "pid-1").unwrap();
        let err = store.lock("c", "pid-2").unwrap_err();
        assert!(err.to_string().contains("locked by pid-1"), "{err}");
        store.unlock("c", "pid-1").unwrap();
        store.lock("c", "pid-2").unwrap();
    }

    #[test]
    fn journal_keeps_the_newest_entries_in_order() {
        let store = SqliteStore::in_memory().unwrap();
        for i in 0..5 {
            let e = JournalEntry {
                operation: "op".into(),
                resource: format!("r{i}"),
                action: "create".into(),
                outcome: "done".into(),
                message: String::new(),
                at: i,
            };
            store.append_journal("c", &e).unwrap();
        }
        let tail: Vec<_> = store
            .journal("c", 2)
            .unwrap()
            .into_iter()
            .map(|e| e.resource)
            .collect();
        assert_eq!(tail, ["r3", "r4"]);
    }

    #[cfg(unix)]
    #[test]
    fn the_database_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        SqliteStore::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
