//! The in-memory backend.
//!
//! Snapshot format (all integers little endian): magic `VPST`, `u32` version,
//! `u32` table count, then per table a length-prefixed name, a `u32` entry
//! count and length-prefixed key/value pairs. Written by hand so the state
//! crate needs no serialisation dependency.

use crate::{Entry, StateError, StateStore};
use std::collections::BTreeMap;

const MAGIC: &[u8; 4] = b"VPST";
const VERSION: u32 = 1;

type Table = BTreeMap<Vec<u8>, Vec<u8>>;

/// Tables in ordered maps, so scans and snapshots are deterministic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryStore {
    tables: BTreeMap<String, Table>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// A store rebuilt from snapshot bytes.
    pub fn from_snapshot(bytes: &[u8]) -> Result<MemoryStore, StateError> {
        let mut s = MemoryStore::new();
        s.restore(bytes)?;
        Ok(s)
    }

    /// Number of entries over all tables.
    pub fn len(&self) -> usize {
        self.tables.values().map(BTreeMap::len).sum()
    }

    /// Whether the store holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every entry as (table, key, value), tables and keys in ascending
    /// order: how other backends copy a decoded snapshot in.
    #[cfg(feature = "rocksdb")]
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&str, &[u8], &[u8])> {
        self.tables.iter().flat_map(|(name, table)| {
            table
                .iter()
                .map(move |(k, v)| (name.as_str(), k.as_slice(), v.as_slice()))
        })
    }
}

impl StateStore for MemoryStore {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.tables.get(table).and_then(|t| t.get(key)).cloned())
    }

    fn put(&mut self, table: &str, key: &[u8], value: Vec<u8>) -> Result<(), StateError> {
        self.tables
            .entry(table.to_string())
            .or_default()
            .insert(key.to_vec(), value);
        Ok(())
    }

    fn delete(&mut self, table: &str, key: &[u8]) -> Result<(), StateError> {
        if let Some(t) = self.tables.get_mut(table) {
            t.remove(key);
            if t.is_empty() {
                self.tables.remove(table);
            }
        }
        Ok(())
    }

    fn scan(&self, table: &str) -> Result<Vec<Entry>, StateError> {
        Ok(self
            .tables
            .get(table)
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }

    fn clear(&mut self) -> Result<(), StateError> {
        self.tables.clear();
        Ok(())
    }

    fn snapshot(&self) -> Result<Vec<u8>, StateError> {
        let mut out = Vec::with_capacity(64 + self.len() * 32);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        put_len(&mut out, self.tables.len())?;
        for (name, table) in &self.tables {
            put_bytes(&mut out, name.as_bytes())?;
            put_len(&mut out, table.len())?;
            for (k, v) in table {
                put_bytes(&mut out, k)?;
                put_bytes(&mut out, v)?;
            }
        }
        Ok(out)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(4)? != MAGIC {
            return Err(StateError::Corrupt("bad magic".into()));
        }
        let version = r.u32()?;
        if version != VERSION {
            return Err(StateError::Version {
                found: version,
                expected: VERSION,
            });
        }
        let mut tables = BTreeMap::new();
        for _ in 0..r.u32()? {
            let name = String::from_utf8(r.bytes()?.to_vec())
                .map_err(|_| StateError::Corrupt("table name is not UTF-8".into()))?;
            let mut table = Table::new();
            for _ in 0..r.u32()? {
                let k = r.bytes()?.to_vec();
                let v = r.bytes()?.to_vec();
                table.insert(k, v);
            }
            tables.insert(name, table);
        }
        if r.pos != bytes.len() {
            return Err(StateError::Corrupt("trailing bytes".into()));
        }
        self.tables = tables;
        Ok(())
    }
}

fn put_len(out: &mut Vec<u8>, n: usize) -> Result<(), StateError> {
    let n = u32::try_from(n).map_err(|_| StateError::Corrupt("entry too large".into()))?;
    out.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) -> Result<(), StateError> {
    put_len(out, b.len())?;
    out.extend_from_slice(b);
    Ok(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StateError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or_else(|| StateError::Corrupt("truncated".into()))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32, StateError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn bytes(&mut self) -> Result<&'a [u8], StateError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn put_get_delete_scan() {
        let mut s = MemoryStore::new();
        s.put("t", b"b", vec![2]).expect("put");
        s.put("t", b"a", vec![1]).expect("put");
        s.put("u", b"a", vec![9]).expect("put");
        assert_eq!(s.get("t", b"a").expect("get"), Some(vec![1]));
        assert_eq!(s.get("x", b"a").expect("get"), None);
        assert_eq!(
            s.scan("t").expect("scan"),
            vec![(b"a".to_vec(), vec![1]), (b"b".to_vec(), vec![2])]
        );
        s.delete("t", b"a").expect("delete");
        assert_eq!(s.len(), 2);
        s.clear().expect("clear");
        assert!(s.is_empty());
    }

    #[test]
    fn snapshot_round_trips_and_rejects_corruption() {
        let mut s = MemoryStore::new();
        s.put("op/1", b"k", b"value".to_vec()).expect("put");
        s.put("meta", b"", vec![]).expect("put");
        let bytes = s.snapshot().expect("snapshot");
        assert_eq!(MemoryStore::from_snapshot(&bytes).expect("restore"), s);
        assert!(MemoryStore::from_snapshot(&bytes[..bytes.len() - 1]).is_err());
        assert!(MemoryStore::from_snapshot(b"nope").is_err());
        let mut v2 = bytes.clone();
        v2[4] = 9;
        assert!(matches!(
            MemoryStore::from_snapshot(&v2),
            Err(StateError::Version { found: 9, .. })
        ));
    }

    proptest! {
        #[test]
        fn restore_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = MemoryStore::from_snapshot(&bytes);
        }
    }
}
