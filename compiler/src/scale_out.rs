//! The keying rule of per-partition state (W0113, docs/OPERATIONS.md
//! "Scaling out").
//!
//! A kafka source with `state_per_partition: true` gives each Kafka
//! partition its own engine state. Its results equal one engine's only when
//! every group of events a stateful operator keeps together lives in one
//! partition, i.e. when each stateful stream it feeds is `.partition_by(k)`
//! before its first stateful operator, with the same field `k` for every such
//! stream, and the producers key the records by `k`. This pass checks the
//! first two halves; the third is the producers' side of the contract.
//!
//! It is a file-level pass: it reads the connector declarations and the
//! checked stream models of the whole file (never another file's), after the
//! per-item checks, from their cached results.

use rustc_hash::{FxHashMap, FxHashSet};
use varpulis_syntax::ast::{ExprKind, Item, StreamDecl};
use varpulis_syntax::Span;

use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::model::{ItemModel, SourceModel, StageKind, StreamModel};

/// The name of the kafka source parameter that turns per-partition state on.
pub const STATE_PER_PARTITION: &str = "state_per_partition";

/// One checked item of the file: its tree, its model and its offset in the
/// file's (expanded) text.
pub(crate) struct FileItem<'a> {
    pub item: &'a Item,
    pub model: &'a ItemModel,
    pub offset: u32,
}

/// Whether connector parameters `params` of a `kind` connector turn
/// per-partition state on.
fn per_partition(kind: &str, params: &[varpulis_syntax::ast::Arg]) -> bool {
    kind == "kafka"
        && params.iter().any(|p| {
            p.name
                .as_ref()
                .is_some_and(|n| n.name == STATE_PER_PARTITION)
                && matches!(p.value.kind, ExprKind::Bool(true))
        })
}

/// Whether a stage keeps state across events (so its results depend on
/// which events share one engine).
fn stateful(kind: &StageKind) -> bool {
    matches!(
        kind,
        StageKind::Window(_)
            | StageKind::Aggregate { .. }
            | StageKind::TrendAggregate(_)
            | StageKind::Forecast
            | StageKind::Step { .. }
            | StageKind::Not { .. }
            | StageKind::Distinct(_)
            | StageKind::Pattern { .. }
            | StageKind::Limit(_)
            | StageKind::First
    )
}

/// Where a stream keeps state, and under which partition key.
struct Keying {
    /// The key in force at the first stateful operator (`None`: none).
    key: Option<(String, Span)>,
    /// The first stateful operator, or the source of a sequence.
    state_at: Span,
}

/// The keying of stream `s` (model `m`), or `None` if it keeps no state.
/// Spans are item-relative.
fn keying(s: &StreamDecl, m: &StreamModel) -> Option<Keying> {
    let op_span = |i: usize| s.ops.get(i).map_or(s.name.span, |o| o.span);
    let partition = |kind: &StageKind| match kind {
        StageKind::PartitionBy(k) if !k.is_empty() => Some(k.clone()),
        _ => None,
    };
    let sequence = m.is_sequence
        || matches!(
            m.source,
            SourceModel::Sequence(_) | SourceModel::Pattern { .. }
        );
    if sequence {
        // A sequence's `.partition_by` applies to the whole sequence,
        // wherever it is written.
        let key = m
            .stages
            .iter()
            .find_map(|st| partition(&st.kind).map(|k| (k, op_span(st.op))));
        return Some(Keying {
            key,
            state_at: s.source.span,
        });
    }
    let mut key = None;
    for st in &m.stages {
        if let Some(k) = partition(&st.kind) {
            key = Some((k, op_span(st.op)));
        } else if stateful(&st.kind) {
            return Some(Keying {
                key,
                state_at: op_span(st.op),
            });
        }
    }
    None
}

/// W0113 diagnostics of the file (absolute spans in the expanded text).
pub(crate) fn diagnostics(items: &[FileItem<'_>]) -> Vec<Diagnostic> {
    let sources: FxHashSet<&str> = items
        .iter()
        .filter_map(|i| match i.item {
            Item::Connector(k) if per_partition(&k.kind.name, &k.params) => {
                Some(k.name.name.as_str())
            }
            _ => None,
        })
        .collect();
    if sources.is_empty() {
        return Vec::new();
    }
    let streams: Vec<(&StreamDecl, &StreamModel, u32)> = items
        .iter()
        .filter_map(|i| match (i.item, i.model) {
            (Item::Stream(s), ItemModel::Stream(m)) => Some((s, m, i.offset)),
            _ => None,
        })
        .collect();
    // The per-partition connector feeding each stream, directly
    // (`T.from(C)`) or through other streams; declaration order does not
    // matter, so iterate to a fixed point.
    let mut fed: FxHashMap<&str, &str> = FxHashMap::default();
    loop {
        let mut changed = false;
        for (s, m, _) in &streams {
            let name = s.name.name.as_str();
            if fed.contains_key(name) {
                continue;
            }
            let root = match &m.source {
                SourceModel::From { connector, .. } => sources.get(connector.as_str()).copied(),
                SourceModel::Stream { name: up, .. } => fed.get(up.as_str()).copied(),
                _ => None,
            };
            if let Some(root) = root {
                fed.insert(name, root);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut out = Vec::new();
    // The first key seen per connector: the field its records are keyed by.
    let mut record_key: FxHashMap<&str, (String, String, Span)> = FxHashMap::default();
    for (s, m, offset) in &streams {
        let Some(&root) = fed.get(s.name.name.as_str()) else {
            continue;
        };
        let Some(k) = keying(s, m) else { continue };
        let stream = &s.name.name;
        let contract = format!(
            "`{root}` has `{STATE_PER_PARTITION}: true`: each Kafka partition keeps its own state, \
             so the events one state groups must all be in one partition"
        );
        match (k.key, record_key.get(root)) {
            (None, _) => out.push(
                Diagnostic::new(
                    codes::PARTITION_NOT_RECORD_KEY,
                    format!("`{stream}` keeps state per Kafka partition without a partition key"),
                    k.state_at.shifted(*offset),
                )
                .with_label("this state would mix every key of one partition, and miss the other partitions' events")
                .with_note(contract)
                .with_help(match record_key.get(root) {
                    Some((key, _, _)) => format!(
                        "write `.partition_by({key})` before it: the records are keyed by `{key}`"
                    ),
                    None => "write `.partition_by(field)` before it, with the field the producers key the records by".to_string(),
                }),
            ),
            (Some((key, span)), None) => {
                record_key.insert(root, (key, stream.clone(), span.shifted(*offset)));
            }
            (Some((key, span)), Some((first, first_stream, first_span))) if key != *first => out.push(
                Diagnostic::new(
                    codes::PARTITION_NOT_RECORD_KEY,
                    format!("`{stream}` partitions by `{key}`, but the records of `{root}` are keyed by `{first}`"),
                    span.shifted(*offset),
                )
                .with_label(format!("events of one `{key}` may be in several Kafka partitions"))
                .with_secondary(*first_span, format!("`{first_stream}` partitions the same records by `{first}`"))
                .with_note(format!("{contract}; a record has one key, so every stateful stream of `{root}` must partition by the same field"))
                .with_help(format!("partition by `{first}` here, or read these events from a topic keyed by `{key}`")),
            ),
            (Some(_), Some(_)) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::Compiler;

    const HEAD: &str = "event Order:\n    customer: str\n    merchant: str\n    amount: float\n\n";

    /// The W0113 diagnostics of `HEAD` + `body` as `line:col message`.
    fn w0113(body: &str) -> Vec<String> {
        let text = format!("{HEAD}{body}");
        let mut c = Compiler::new();
        c.set_file("t.vpl", &text);
        let index = crate::render::LineIndex::new(&text);
        c.check("t.vpl")
            .iter()
            .filter(|d| d.code == "W0113")
            .map(|d| {
                let (l, col) = index.position(d.primary.span.start);
                format!("{l}:{col} {}", d.message)
            })
            .collect()
    }

    const SCALED: &str = "connector In = kafka (brokers: \"k:9092\", topic: \"orders\", state_per_partition: true)\n";

    #[test]
    fn a_partitioned_stream_checks_clean() {
        let body = format!(
            "{SCALED}stream Spend = Order.from(In)\n    .partition_by(customer)\n    .window(5m)\n    .aggregate(total: sum(amount))\n\n\
             stream Big = Order.from(In)\n    .where(amount > 100.0)\n    .emit(customer: customer)\n"
        );
        assert_eq!(w0113(&body), Vec::<String>::new());
    }

    #[test]
    fn unpartitioned_state_is_reported_at_its_first_stateful_operator() {
        let body = format!(
            "{SCALED}stream Spend = Order.from(In)\n    .where(amount > 1.0)\n    .window(5m)\n    .aggregate(total: sum(amount))\n"
        );
        assert_eq!(
            w0113(&body),
            vec!["9:5 `Spend` keeps state per Kafka partition without a partition key"]
        );
    }

    #[test]
    fn a_partition_key_after_the_window_does_not_count() {
        let body = format!(
            "{SCALED}stream Spend = Order.from(In)\n    .window(5m)\n    .partition_by(customer)\n    .aggregate(total: sum(amount))\n"
        );
        let got = w0113(&body);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("8:5 "), "{got:?}");
    }

    #[test]
    fn two_keys_on_one_topic_are_reported_at_the_second() {
        let body = format!(
            "{SCALED}stream PerCustomer = Order.from(In)\n    .partition_by(customer)\n    .window(5m)\n    .aggregate(total: sum(amount))\n\n\
             stream PerMerchant = Order.from(In)\n    .partition_by(merchant)\n    .window(5m)\n    .aggregate(total: sum(amount))\n"
        );
        assert_eq!(
            w0113(&body),
            vec!["13:5 `PerMerchant` partitions by `merchant`, but the records of `In` are keyed by `customer`"]
        );
    }

    #[test]
    fn streams_derived_from_the_source_follow_the_rule() {
        let body = format!(
            "{SCALED}stream Big = Order.from(In)\n    .where(amount > 100.0)\n\n\
             stream Counted = Big\n    .window(10)\n    .aggregate(n: count())\n"
        );
        assert_eq!(
            w0113(&body),
            vec!["11:5 `Counted` keeps state per Kafka partition without a partition key"]
        );
    }

    #[test]
    fn sequences_need_the_key_too() {
        let seq = "stream Twice = Orders as a\n    -> Orders where customer == a.customer as b\n    .within(5m)\n";
        let unkeyed = format!("{SCALED}stream Orders = Order.from(In)\n\n{seq}");
        assert_eq!(
            w0113(&unkeyed),
            vec!["9:16 `Twice` keeps state per Kafka partition without a partition key"]
        );
        let keyed =
            format!("{SCALED}stream Orders = Order.from(In)\n\n{seq}    .partition_by(customer)\n");
        assert_eq!(w0113(&keyed), Vec::<String>::new());
    }

    #[test]
    fn other_sources_and_plain_kafka_sources_are_not_checked() {
        let plain = "connector In = kafka (brokers: \"k:9092\", topic: \"orders\")\n\
                     stream Spend = Order.from(In)\n    .window(5m)\n    .aggregate(total: sum(amount))\n";
        assert_eq!(w0113(plain), Vec::<String>::new());
        let off = "connector In = kafka (brokers: \"k:9092\", topic: \"orders\", state_per_partition: false)\n\
                   stream Spend = Order.from(In)\n    .window(5m)\n    .aggregate(total: sum(amount))\n";
        assert_eq!(w0113(off), Vec::<String>::new());
        let events = format!(
            "{SCALED}stream Spend = Order\n    .window(5m)\n    .aggregate(total: sum(amount))\n"
        );
        assert_eq!(w0113(&events), Vec::<String>::new());
    }
}
