//! Host-wide state bounds: `varpulis run --max-keys N` and the server's `[defaults] max_keys`
//! give every `.partition_by` that feeds keyed state and declares no bound of its own a
//! `max_keys: N, evict: lru` bound, so an operator can cap a program they did not write
//! (docs/RUNTIME.md, "State size"). A bound written in the program always wins.

use varpulis_program::{Evict, OpSpec, Program, StateBound};

/// Bounds the keys of every unbounded `.partition_by` followed by a window or an aggregate
/// with `max_keys` (LRU) and returns how many it bounded. Partitions of a sequence are left
/// alone: the sequence owns them and `.limit_runs` bounds its runs.
pub fn default_max_keys(program: &mut Program, max_keys: u64) -> usize {
    let mut bounded = 0;
    for plan in &mut program.streams {
        for (i, op) in plan.ops.iter().enumerate() {
            if !matches!(op, OpSpec::PartitionBy(_)) {
                continue;
            }
            let Ok(at) = u32::try_from(i) else { continue };
            if plan.bounds.iter().any(|b| b.op == at) {
                continue;
            }
            // What the key feeds: the stateful operator after it, up to the next key.
            let feeds_state = plan
                .ops
                .get(i + 1..)
                .unwrap_or_default()
                .iter()
                .take_while(|o| !matches!(o, OpSpec::PartitionBy(_)))
                .find(|o| {
                    matches!(
                        o,
                        OpSpec::Window(_) | OpSpec::Aggregate(_) | OpSpec::Sequence(_)
                    )
                });
            if matches!(feeds_state, Some(OpSpec::Window(_) | OpSpec::Aggregate(_))) {
                plan.bounds.push(StateBound {
                    op: at,
                    max_keys: Some(max_keys.max(1)),
                    evict: Evict::Lru,
                    ..StateBound::default()
                });
                bounded += 1;
            }
        }
    }
    bounded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(text: &str) -> Program {
        crate::test_program(text)
    }

    #[test]
    fn unbounded_keys_before_state_get_the_default_and_declared_bounds_win() {
        let mut p = program(
            "event E:\n    k: str\n    v: int\n\n\
             stream A = E\n    .partition_by(k)\n    .window(10)\n    .aggregate(n: count())\n    .emit(n: n)\n\n\
             stream B = E\n    .partition_by(k, max_keys: 7, evict: fifo)\n    .window(1m)\n    .aggregate(n: count())\n    .emit(n: n)\n\n\
             stream C = E\n    .partition_by(k)\n    .emit(k: k)\n\n\
             stream D = E as a -> E where k == a.k as b\n    .partition_by(k)\n    .within(1m)\n    .emit(k: a.k)\n",
        );
        assert_eq!(default_max_keys(&mut p, 1000), 1);
        let bounds = |name: &str| {
            p.streams
                .iter()
                .find(|s| &*s.name == name)
                .map(|s| s.bounds.clone())
                .expect("stream")
        };
        let a = bounds("A");
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].max_keys, a[0].evict), (Some(1000), Evict::Lru));
        let b = bounds("B");
        assert_eq!(
            (b[0].max_keys, b[0].evict),
            (Some(7), Evict::Fifo),
            "explicit wins"
        );
        assert!(bounds("C").is_empty(), "no state after the key");
        assert!(bounds("D").is_empty(), "a sequence owns its partitions");
    }
}
