//! Per-run alias bindings: one event per plain alias, a list per Kleene alias.
//!
//! Kleene lists are persistent (a shared-prefix cons list, newest first), so
//! cloning a run's bindings — a growing trailing-Kleene match, or a fork under
//! skip-till-any-match — copies one pointer per alias, never the events.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use varpulis_program::Event;

/// One cell of a Kleene list: the newest event and the older ones.
#[derive(Debug)]
struct Cons {
    ev: Arc<Event>,
    prev: Option<Arc<Cons>>,
}

impl Drop for Cons {
    // Long lists would otherwise drop recursively and could overflow the
    // stack; unlink them iteratively while this cell is the last owner.
    fn drop(&mut self) {
        let mut next = self.prev.take();
        while let Some(cell) = next {
            match Arc::into_inner(cell) {
                Some(mut c) => next = c.prev.take(),
                None => break,
            }
        }
    }
}

/// What one alias holds.
#[derive(Clone, Debug, Default)]
enum Slot {
    #[default]
    Empty,
    One(Arc<Event>),
    List {
        head: Arc<Cons>,
        first: Arc<Event>,
        len: u32,
    },
}

/// The events bound so far by one run (or carried by a match), per alias.
///
/// This is what the interpreter needs for `LoadAlias(a, s)` (the most
/// recent event of `a`), `len(a)`, `first(a)` / `last(a)` and iteration.
#[derive(Clone, Debug, Default)]
pub struct Bindings {
    slots: Vec<Slot>,
}

impl Bindings {
    /// Empty bindings for `aliases` aliases.
    pub fn new(aliases: u16) -> Bindings {
        Bindings {
            slots: vec![Slot::Empty; usize::from(aliases)],
        }
    }

    /// Number of alias slots.
    pub fn aliases(&self) -> usize {
        self.slots.len()
    }

    /// The event bound to `alias`; for a Kleene alias the most recently added
    /// one. `None` when unbound or empty.
    #[inline]
    pub fn get(&self, alias: u16) -> Option<&Arc<Event>> {
        match self.slots.get(usize::from(alias))? {
            Slot::Empty => None,
            Slot::One(e) => Some(e),
            Slot::List { head, .. } => Some(&head.ev),
        }
    }

    /// The earliest event bound to `alias` (same as [`Bindings::get`] for a
    /// plain alias).
    pub fn first(&self, alias: u16) -> Option<&Arc<Event>> {
        match self.slots.get(usize::from(alias))? {
            Slot::Empty => None,
            Slot::One(e) => Some(e),
            Slot::List { first, .. } => Some(first),
        }
    }

    /// How many events `alias` holds (0 or 1 for a plain alias).
    pub fn count(&self, alias: u16) -> usize {
        match self.slots.get(usize::from(alias)) {
            None | Some(Slot::Empty) => 0,
            Some(Slot::One(_)) => 1,
            Some(Slot::List { len, .. }) => *len as usize,
        }
    }

    /// The events of `alias`, newest first (no allocation).
    pub fn iter_rev(&self, alias: u16) -> impl Iterator<Item = &Arc<Event>> + '_ {
        let (one, mut cell) = match self.slots.get(usize::from(alias)) {
            Some(Slot::One(e)) => (Some(e), None),
            Some(Slot::List { head, .. }) => (None, Some(&**head)),
            _ => (None, None),
        };
        one.into_iter().chain(std::iter::from_fn(move || {
            let c = cell?;
            cell = c.prev.as_deref();
            Some(&c.ev)
        }))
    }

    /// The events of `alias`, oldest first.
    pub fn to_vec(&self, alias: u16) -> Vec<Arc<Event>> {
        let mut v: Vec<Arc<Event>> = self.iter_rev(alias).cloned().collect();
        v.reverse();
        v
    }

    /// Binds `ev` to a plain alias (replacing any previous binding).
    pub(crate) fn set(&mut self, alias: u16, ev: Arc<Event>) {
        if let Some(s) = self.slots.get_mut(usize::from(alias)) {
            *s = Slot::One(ev);
        }
    }

    /// Appends `ev` to a Kleene alias.
    pub(crate) fn push(&mut self, alias: u16, ev: Arc<Event>) {
        let Some(s) = self.slots.get_mut(usize::from(alias)) else {
            return;
        };
        *s = match std::mem::take(s) {
            Slot::List { head, first, len } => Slot::List {
                head: Arc::new(Cons {
                    ev,
                    prev: Some(head),
                }),
                first,
                len: len + 1,
            },
            // A plain binding cannot coexist with a list for the same alias;
            // a fresh list starts here.
            Slot::Empty | Slot::One(_) => Slot::List {
                first: ev.clone(),
                head: Arc::new(Cons { ev, prev: None }),
                len: 1,
            },
        };
    }
}

/// Serialised form: lists oldest first (sharing between runs is not kept).
#[derive(Serialize, Deserialize)]
enum SlotState {
    Empty,
    One(Arc<Event>),
    List(Vec<Arc<Event>>),
}

impl Serialize for Bindings {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v: Vec<SlotState> = (0..self.slots.len())
            .map(|a| {
                let a = u16::try_from(a).expect("alias count fits u16 (Bindings::new)");
                match &self.slots[usize::from(a)] {
                    Slot::Empty => SlotState::Empty,
                    Slot::One(e) => SlotState::One(e.clone()),
                    Slot::List { .. } => SlotState::List(self.to_vec(a)),
                }
            })
            .collect();
        v.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Bindings {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Bindings, D::Error> {
        let v = Vec::<SlotState>::deserialize(d)?;
        let n = u16::try_from(v.len()).map_err(serde::de::Error::custom)?;
        let mut b = Bindings::new(n);
        for (a, s) in (0..n).zip(v) {
            match s {
                SlotState::Empty => {}
                SlotState::One(e) => b.set(a, e),
                SlotState::List(evs) => {
                    for e in evs {
                        b.push(a, e);
                    }
                }
            }
        }
        Ok(b)
    }
}
