//! Per-partition state locations for runs that share a Kafka consumer group
//! (docs/DESIGN.md, "Scaling out over Kafka consumer groups").
//!
//! Each topic-partition keeps its state in its own directory under the shared
//! state directory ([`partition_dir`]), so two processes never write the same
//! files. Ownership is fenced by the group generation: a member claims a
//! partition's directory with the generation that assigned it
//! ([`PartitionLease::claim`]) and checks its lease before each checkpoint
//! ([`PartitionLease::check`]); once a newer generation has claimed the
//! directory, the older member (a zombie that missed the rebalance) is
//! refused, so it cannot overwrite the new owner's checkpoints. The runs use
//! a claim epoch as the generation ([`PartitionLease::take`]: one above the
//! generation on disk), since librdkafka does not expose the group's.
//!
//! The check and the checkpoint that follows are two steps, not one atomic
//! operation: a new owner that claims between them sees the zombie's commit.
//! That commit is a consistent pair of state and offset (a checkpoint stores
//! both), so the new owner restores it and resumes after it: nothing is lost
//! or counted twice; the window only decides which of two valid checkpoints
//! is read.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::StateError;

/// The file in a partition directory naming its owner.
const OWNER_FILE: &str = "owner";

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> StateError {
    StateError::Backend {
        message: format!("{what} `{}`: {e}", path.display()),
        retryable: true,
    }
}

/// The directory of `topic` partition `partition` under `root`: `root/<topic>-<partition>`.
///
/// Kafka topic names use only ASCII letters, digits, `.`, `_` and `-` (at most 249 of them);
/// any other name, `.` and `..`, and negative partitions are refused, so the directory never
/// escapes `root`.
pub fn partition_dir(root: &Path, topic: &str, partition: i32) -> Result<PathBuf, StateError> {
    let valid = !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !valid {
        return Err(StateError::Backend {
            message: format!("`{topic}` is not a Kafka topic name: no state directory for it"),
            retryable: false,
        });
    }
    if partition < 0 {
        return Err(StateError::Backend {
            message: format!("topic `{topic}` has no partition {partition}"),
            retryable: false,
        });
    }
    Ok(root.join(format!("{topic}-{partition}")))
}

/// The generation and member recorded in a partition directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The group generation that assigned the partition.
    pub generation: i32,
    /// The member id (for messages).
    pub member: String,
}

/// Reads the owner of `dir`; `None` when no member has claimed it yet.
pub fn read_owner(dir: &Path) -> Result<Option<Owner>, StateError> {
    let path = dir.join(OWNER_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("cannot read", &path, &e)),
    };
    let corrupt = || StateError::Corrupt(format!("`{}` is not an owner record", path.display()));
    let (generation, member) = text.trim_end().split_once(' ').ok_or_else(corrupt)?;
    let generation = generation.parse::<i32>().map_err(|_| corrupt())?;
    Ok(Some(Owner {
        generation,
        member: member.to_string(),
    }))
}

/// A member's claim on one partition directory for one group generation.
#[derive(Debug)]
pub struct PartitionLease {
    dir: PathBuf,
    owner: Owner,
}

impl PartitionLease {
    /// Claims `dir` (created if needed) for `generation`: refused with
    /// [`StateError::Fenced`] when a newer generation already owns it, else
    /// the owner record is replaced atomically and made durable.
    pub fn claim(dir: &Path, generation: i32, member: &str) -> Result<PartitionLease, StateError> {
        fs::create_dir_all(dir).map_err(|e| io_error("cannot create", dir, &e))?;
        let owner = Owner {
            generation,
            member: member.to_string(),
        };
        let lease = PartitionLease {
            dir: dir.to_path_buf(),
            owner,
        };
        lease.fenced_by(|on_disk| on_disk.generation > generation)?;
        let path = dir.join(OWNER_FILE);
        let tmp = dir.join(format!("{OWNER_FILE}.{generation}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            writeln!(f, "{generation} {member}")?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(dir)?.sync_all()
        };
        write().map_err(|e| io_error("cannot write", &path, &e))?;
        Ok(lease)
    }

    /// Claims `dir` with the generation after the one recorded there (1 for
    /// a directory nobody claimed): the claim epoch the runs use as the
    /// group generation (docs/DESIGN.md, "Scaling out over Kafka consumer
    /// groups"). Every claim supersedes the ones before it, so the previous
    /// owner's next [`PartitionLease::check`] fails.
    pub fn take(dir: &Path, member: &str) -> Result<PartitionLease, StateError> {
        let last = read_owner(dir)?.map_or(0, |o| o.generation);
        let next = last.checked_add(1).ok_or_else(|| {
            StateError::Corrupt(format!(
                "`{}` records generation {last}, the last there can be",
                dir.join(OWNER_FILE).display()
            ))
        })?;
        PartitionLease::claim(dir, next, member)
    }

    /// Whether this lease still holds: [`StateError::Fenced`] once a newer
    /// generation has claimed the directory, or another member claimed it
    /// with the same generation (two [`PartitionLease::take`]s that raced).
    /// Call before every checkpoint.
    pub fn check(&self) -> Result<(), StateError> {
        let ours = &self.owner;
        self.fenced_by(|on_disk| {
            on_disk.generation > ours.generation
                || (on_disk.generation == ours.generation && on_disk.member != ours.member)
        })
    }

    /// [`StateError::Fenced`] when the owner on disk is one `newer` says supersedes us.
    fn fenced_by(&self, newer: impl Fn(&Owner) -> bool) -> Result<(), StateError> {
        match read_owner(&self.dir)? {
            Some(on_disk) if newer(&on_disk) => Err(StateError::Fenced {
                dir: self.dir.display().to_string(),
                ours: self.owner.generation,
                theirs: on_disk.generation,
                member: on_disk.member,
            }),
            _ => Ok(()),
        }
    }

    /// The directory this lease holds.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The generation this lease was claimed with.
    pub fn generation(&self) -> i32 {
        self.owner.generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_dirs_stay_under_the_root() {
        let root = Path::new("/shared/state");
        assert_eq!(
            partition_dir(root, "orders.eu_1-x", 3).expect("valid"),
            root.join("orders.eu_1-x-3")
        );
        for bad in ["", ".", "..", "a/b", "../x", "a b", "é"] {
            assert!(partition_dir(root, bad, 0).is_err(), "{bad:?}");
        }
        assert!(partition_dir(root, &"t".repeat(250), 0).is_err());
        let err = partition_dir(root, "orders", -1).expect_err("negative");
        assert!(err.to_string().contains("no partition -1"), "{err}");
    }

    #[test]
    fn a_newer_generation_fences_the_older_owner() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = partition_dir(root.path(), "orders", 2).expect("dir");
        assert_eq!(read_owner(&dir).expect("read"), None);
        let old = PartitionLease::claim(&dir, 4, "member-a").expect("first claim");
        old.check().expect("still the owner");
        assert_eq!(old.generation(), 4);
        let new = PartitionLease::claim(&dir, 5, "member-b").expect("newer generation");
        new.check().expect("the new owner holds it");
        let err = old.check().expect_err("the zombie is fenced");
        assert_eq!(
            err,
            StateError::Fenced {
                dir: dir.display().to_string(),
                ours: 4,
                theirs: 5,
                member: "member-b".to_string(),
            }
        );
        assert!(err.to_string().contains("generation 5"), "{err}");
        // A claim with an older generation is refused too, and leaves the owner as it was.
        assert!(matches!(
            PartitionLease::claim(&dir, 3, "member-c"),
            Err(StateError::Fenced { theirs: 5, .. })
        ));
        assert_eq!(
            read_owner(&dir).expect("read"),
            Some(Owner {
                generation: 5,
                member: "member-b".to_string()
            })
        );
        // The same generation may claim again (a member restarting its own assignment).
        PartitionLease::claim(&dir, 5, "member-b").expect("same generation");
        assert_eq!(new.dir(), dir.as_path());
        // The same generation by another member fences the first one.
        let _other = PartitionLease::claim(&dir, 5, "member-c").expect("same generation");
        assert!(matches!(
            new.check(),
            Err(StateError::Fenced { theirs: 5, .. })
        ));
    }

    #[test]
    fn each_take_supersedes_the_claims_before_it() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = partition_dir(root.path(), "orders", 1).expect("dir");
        let first = PartitionLease::take(&dir, "a").expect("first");
        assert_eq!(first.generation(), 1);
        let second = PartitionLease::take(&dir, "b").expect("second");
        assert_eq!(second.generation(), 2);
        assert!(matches!(
            first.check(),
            Err(StateError::Fenced {
                ours: 1,
                theirs: 2,
                ..
            })
        ));
        second.check().expect("the newest holds it");
        // The member taking its own partition again supersedes its older lease too.
        let third = PartitionLease::take(&dir, "b").expect("again");
        assert_eq!(third.generation(), 3);
        assert!(second.check().is_err());
    }

    #[test]
    fn a_damaged_owner_record_is_an_error_naming_it() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = partition_dir(root.path(), "orders", 0).expect("dir");
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join(OWNER_FILE), "junk").expect("write");
        let err = PartitionLease::claim(&dir, 1, "m").expect_err("corrupt");
        assert!(
            matches!(err, StateError::Corrupt(ref m) if m.contains("owner")),
            "{err}"
        );
    }
}
