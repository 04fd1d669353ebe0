//! A prediction suffix tree: a variable-order Markov model of the next
//! symbol given the last few (docs/DESIGN.md, *Forecasting*).
//!
//! Every observed symbol updates the counts of each suffix of its history
//! up to `depth` symbols (the root is the empty context). A prediction
//! walks from the root towards longer contexts while they have enough
//! observations, and keeps the longest one whose next-symbol distribution
//! differs from the one chosen so far: a longer context is used only where
//! it tells something its suffix does not (the pruning idea of prediction
//! suffix trees). Counts are smoothed by a small pseudo-count, so no symbol
//! gets probability zero.
//!
//! State is bounded: at most [`MAX_NODES`] contexts (later contexts are not
//! added once full), and the counts of a context are halved when they reach
//! [`MAX_COUNT`], which also lets the model follow a drifting stream.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most contexts kept.
pub const MAX_NODES: usize = 4096;
/// Observations of one context before its counts are halved.
pub const MAX_COUNT: u32 = 1 << 16;
/// Observations a context needs before predictions use it.
pub const MIN_COUNT: u32 = 4;
/// Pseudo-count added to every symbol of a context.
const SMOOTHING: f64 = 0.05;
/// Total-variation distance from which a longer context counts as
/// informative.
const INFORMATIVE: f64 = 0.02;

/// The next-symbol counts of one context.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Node {
    counts: Vec<u32>,
    total: u32,
}

/// The model (see the module docs).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pst {
    alphabet: u16,
    depth: u8,
    /// Contexts, most recent symbol last; the empty one is the root.
    nodes: BTreeMap<Vec<u16>, Node>,
}

/// A prediction: the next-symbol distribution, the depth of the context
/// it came from, and how many observations that context has.
#[derive(Clone, Debug, PartialEq)]
pub struct NextSymbol {
    /// Probability per symbol (sums to 1).
    pub probs: Vec<f64>,
    /// Length of the context used.
    pub depth: u8,
    /// Observations of that context.
    pub support: u32,
}

impl Pst {
    /// An empty model over symbols `0..alphabet` with contexts of at most
    /// `depth` symbols.
    pub fn new(alphabet: u16, depth: u8) -> Pst {
        Pst {
            alphabet: alphabet.max(1),
            depth,
            nodes: BTreeMap::new(),
        }
    }

    /// The number of symbols.
    pub fn alphabet(&self) -> u16 {
        self.alphabet
    }

    /// The longest context.
    pub fn depth(&self) -> u8 {
        self.depth
    }

    /// Contexts held.
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Learns that `symbol` followed `history` (most recent last; only its
    /// last `depth` symbols matter). Symbols outside the alphabet are
    /// ignored.
    pub fn observe(&mut self, history: &[u16], symbol: u16) {
        if symbol >= self.alphabet {
            return;
        }
        let d = history.len().min(usize::from(self.depth));
        let tail = &history[history.len() - d..];
        for j in 0..=d {
            let ctx = &tail[d - j..];
            if !self.nodes.contains_key(ctx) {
                if self.nodes.len() >= MAX_NODES {
                    // Longer contexts of this history are not added either.
                    break;
                }
                self.nodes.insert(
                    ctx.to_vec(),
                    Node {
                        counts: vec![0; usize::from(self.alphabet)],
                        total: 0,
                    },
                );
            }
            if let Some(n) = self.nodes.get_mut(ctx) {
                if n.total >= MAX_COUNT {
                    for c in &mut n.counts {
                        *c /= 2;
                    }
                    n.total = n.counts.iter().fold(0u32, |a, c| a.saturating_add(*c));
                }
                // Saturating: a restored snapshot may hold any counts.
                if let Some(c) = n.counts.get_mut(usize::from(symbol)) {
                    *c = c.saturating_add(1);
                    n.total = n.total.saturating_add(1);
                }
            }
        }
    }

    fn distribution(&self, n: &Node) -> Vec<f64> {
        let a = f64::from(self.alphabet);
        let total = f64::from(n.total) + SMOOTHING * a;
        n.counts
            .iter()
            .map(|c| (f64::from(*c) + SMOOTHING) / total)
            .collect()
    }

    /// The next-symbol distribution after `history` (most recent last).
    pub fn predict(&self, history: &[u16]) -> NextSymbol {
        let a = usize::from(self.alphabet);
        let uniform = || NextSymbol {
            probs: vec![1.0 / a as f64; a],
            depth: 0,
            support: 0,
        };
        let Some(root) = self.nodes.get(&[][..]) else {
            return uniform();
        };
        let mut best = NextSymbol {
            probs: self.distribution(root),
            depth: 0,
            support: root.total,
        };
        let d = history.len().min(usize::from(self.depth));
        let tail = &history[history.len() - d..];
        for j in 1..=d {
            let Some(n) = self.nodes.get(&tail[d - j..]) else {
                break;
            };
            if n.total < MIN_COUNT {
                break;
            }
            let probs = self.distribution(n);
            let tv: f64 = probs
                .iter()
                .zip(&best.probs)
                .map(|(p, q)| (p - q).abs())
                .sum::<f64>()
                / 2.0;
            if tv > INFORMATIVE {
                best = NextSymbol {
                    probs,
                    depth: u8::try_from(j).unwrap_or(u8::MAX),
                    support: n.total,
                };
            }
        }
        best
    }

    /// Approximate bytes held.
    pub fn bytes(&self) -> u64 {
        let per = 48 + 4 * u64::from(self.alphabet) + 2 * u64::from(self.depth);
        self.nodes.len() as u64 * per
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::rng::Rng;

    fn learn(pst: &mut Pst, symbols: &[u16]) {
        for i in 0..symbols.len() {
            pst.observe(&symbols[..i], symbols[i]);
        }
    }

    #[test]
    fn a_deterministic_cycle_is_predicted_with_certainty() {
        let mut pst = Pst::new(3, 3);
        let s: Vec<u16> = (0..300).map(|i| (i % 3) as u16).collect();
        learn(&mut pst, &s);
        let p = pst.predict(&[0, 1]);
        assert!(p.probs[2] > 0.99, "{p:?}");
        assert!(p.depth >= 1);
    }

    #[test]
    fn an_iid_stream_is_predicted_at_its_frequencies() {
        let mut pst = Pst::new(3, 3);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let s: Vec<u16> = (0..20_000)
            .map(|_| {
                let u = rng.next_f64();
                if u < 0.2 {
                    0
                } else if u < 0.5 {
                    1
                } else {
                    2
                }
            })
            .collect();
        learn(&mut pst, &s);
        for h in [&[][..], &[0], &[2, 1], &[1, 1, 0]] {
            let p = pst.predict(h);
            assert!((p.probs[0] - 0.2).abs() < 0.04, "{h:?}: {p:?}");
            assert!((p.probs[1] - 0.3).abs() < 0.04, "{h:?}: {p:?}");
            assert!((p.probs[2] - 0.5).abs() < 0.04, "{h:?}: {p:?}");
        }
    }

    #[test]
    fn a_second_order_dependency_uses_a_longer_context() {
        // After "0 0" comes 1, after "1 0" comes 0: the last symbol alone
        // (0) does not tell, the last two do.
        let mut pst = Pst::new(2, 3);
        let cycle = [0u16, 0, 1];
        let s: Vec<u16> = (0..600).map(|i| cycle[i % 3]).collect();
        learn(&mut pst, &s);
        let p = pst.predict(&[1, 0]);
        assert!(p.probs[0] > 0.99, "{p:?}");
        assert!(p.depth >= 2, "{p:?}");
        let p = pst.predict(&[0, 0]);
        assert!(p.probs[1] > 0.99, "{p:?}");
    }

    #[test]
    fn the_model_stays_bounded() {
        let mut pst = Pst::new(50, 5);
        let mut rng = Rng(7);
        let s: Vec<u16> = (0..50_000)
            .map(|_| (rng.next_f64() * 50.0) as u16)
            .collect();
        learn(&mut pst, &s);
        assert!(pst.nodes() <= MAX_NODES);
        let p = pst.predict(&s[s.len() - 5..]);
        assert!((p.probs.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn an_empty_model_predicts_uniformly() {
        let p = Pst::new(4, 3).predict(&[1, 2]);
        assert_eq!(p.probs, vec![0.25; 4]);
        assert_eq!(p.depth, 0);
    }
}
