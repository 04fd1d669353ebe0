//! The registry of every diagnostic code.
//!
//! Ranges (STYLE.md): E01xx syntax (owned by `varpulis-syntax`, imported from
//! its `codes::ALL_CODES`), E02xx names, E03xx types, E04xx patterns, time,
//! windows and operators, E05xx sources, sinks and connector configuration,
//! W01xx warnings. A number is never reused: retire a code by keeping its row.
//!
//! Every code has an explanation page `docs/errors/<CODE>.md`, embedded at
//! build time (see `build.rs`) and returned by [`explain`].

use std::sync::OnceLock;

use crate::diagnostic::Severity;

macro_rules! codes {
    ($( $(#[$doc:meta])* $name:ident = $code:literal, $title:literal; )*) => {
        $( $(#[$doc])* pub const $name: &str = $code; )*
        /// The compiler's own codes (not E01xx) with their titles, in order.
        const COMPILER_CODES: &[(&str, &str)] = &[ $( ($code, $title), )* ];
    };
}

codes! {
    /// A name in a function body or initialiser that is not declared.
    UNKNOWN_NAME = "E0201", "unknown name";
    /// A field that the event or stream in scope does not have.
    UNKNOWN_FIELD = "E0202", "unknown field";
    /// A source or step naming no event type, stream or pattern.
    UNKNOWN_SOURCE = "E0203", "unknown event type or stream";
    /// A call to a function that is neither user-defined nor built in.
    UNKNOWN_FUNCTION = "E0204", "unknown function";
    /// A pipeline operator name that does not exist.
    UNKNOWN_OPERATOR = "E0205", "unknown operator";
    /// `.to(X)` / `.from(X)` / `.enrich(X)` naming no declared connector.
    UNKNOWN_CONNECTOR = "E0206", "unknown connector";
    /// `.context(x)` or `emit(context: x)` naming no declared context.
    UNKNOWN_CONTEXT = "E0207", "unknown context";
    /// Two top-level declarations with the same name.
    DUPLICATE_DECLARATION = "E0208", "duplicate declaration";
    /// A sequence alias used where it is not (yet) bound.
    UNBOUND_ALIAS = "E0209", "unbound alias";
    /// Two steps of one sequence binding the same alias.
    DUPLICATE_ALIAS = "E0210", "duplicate alias";
    /// A written type naming no built-in type, event type or alias.
    UNKNOWN_TYPE = "E0211", "unknown type";
    /// A named argument that the operator or function does not take.
    UNKNOWN_ARGUMENT = "E0212", "unknown named argument";
    /// Streams, events, functions or globals defined in terms of themselves.
    CYCLIC_DEFINITION = "E0213", "cyclic definition";
    /// `x := e` where `x` is a `let` or `const`.
    ASSIGN_IMMUTABLE = "E0214", "assignment to an immutable variable";
    /// A field declared or produced twice.
    DUPLICATE_FIELD = "E0215", "duplicate field";
    /// An output item of `.select`, `.emit` or `.aggregate` without a name.
    UNNAMED_OUTPUT = "E0216", "output field without a name";

    /// An operator applied to values of types it does not accept.
    MISMATCHED_TYPES = "E0301", "mismatched types";
    /// `.where`, `.having`, `.on`, `if` or a step filter that is not boolean.
    NON_BOOLEAN_CONDITION = "E0302", "condition is not a boolean";
    /// A call or operator with too many or too few arguments.
    WRONG_ARITY = "E0303", "wrong number of arguments";
    /// An argument of the wrong type or kind.
    ARGUMENT_TYPE = "E0304", "argument of the wrong type";
    /// `if c then a else b` whose branches have different types.
    BRANCH_MISMATCH = "E0305", "`if` branches have different types";
    /// A function body whose value does not match its declared return type.
    RETURN_TYPE = "E0306", "return value of the wrong type";
    /// An initialiser that does not match the variable's declared type.
    DECLARED_TYPE = "E0307", "value does not match the declared type";
    /// Member access or indexing on a value that has no fields or elements.
    NO_SUCH_MEMBER = "E0308", "value has no such member";
    /// A call whose callee is not a function.
    NOT_CALLABLE = "E0309", "not a function";

    /// `.window(...)` arguments of the wrong kind.
    INVALID_WINDOW = "E0401", "invalid window arguments";
    /// More than one `.window` in a stream.
    DUPLICATE_WINDOW = "E0402", "duplicate window";
    /// More than one `.aggregate` in a stream.
    DUPLICATE_AGGREGATE = "E0403", "duplicate aggregate";
    /// `.having` with no `.aggregate` before it.
    HAVING_BEFORE_AGGREGATE = "E0404", "`.having` before `.aggregate`";
    /// `.within` or `.not` in a stream that is not a sequence.
    WITHIN_OUTSIDE_SEQUENCE = "E0405", "sequence operator outside a sequence";
    /// An aggregate function (`sum`, `count`, ...) outside `.aggregate`.
    AGGREGATE_OUTSIDE_AGGREGATE = "E0406", "aggregate function outside `.aggregate`";
    /// An `.aggregate` item that computes no aggregate.
    NOT_AN_AGGREGATE = "E0407", "aggregate item is not an aggregate";
    /// A deadline or lateness argument that is not a duration.
    EXPECTED_DURATION = "E0408", "expected a duration";
    /// An operator that parses but that the engine does not run yet.
    UNSUPPORTED_OPERATOR = "E0409", "operator not supported yet";
    /// A construct that parses but that the engine does not run yet.
    UNSUPPORTED_CONSTRUCT = "E0410", "construct not supported yet";
    /// `join(...)` without a `.on(...)` condition.
    JOIN_WITHOUT_ON = "E0411", "join without `.on`";
    /// `.on(...)` in a stream whose source is not a join.
    ON_WITHOUT_JOIN = "E0412", "`.on` outside a join";
    /// `.partition_by` whose argument is not a field name.
    INVALID_PARTITION_KEY = "E0413", "invalid partition key";
    /// `.timeouts()` not first, or on a source that runs no sequence with a
    /// deadline.
    INVALID_TIMEOUT_STREAM = "E0414", "invalid timeout stream";
    /// `.limit_runs(...)` with a bound that is not a positive integer, a
    /// `total:` below the per-key bound, or an unknown `on_full:` policy.
    INVALID_RUN_LIMIT = "E0415", "invalid run limit";
    /// `.late()` not first, or on a source that has no single plain input.
    INVALID_LATE_STREAM = "E0416", "invalid late stream";
    /// `max_keys:`/`max:`, `evict:` or `idle:` with a value of the wrong
    /// kind, or on a `.partition_by` that a sequence owns.
    INVALID_STATE_BOUND = "E0417", "invalid state bound";
    /// `.order_by`, `.collect`, `.any` or `.all` not right after `.window`
    /// (or another of them).
    GROUP_WITHOUT_WINDOW = "E0418", "window group operator without a window";
    /// `.pattern(...)` that does not come right after a `.window(...)`.
    PATTERN_WITHOUT_WINDOW = "E0425", "`.pattern` without a window";

    /// `.to(X)` / `.from(X)` where `X` is declared but is not a connector.
    NOT_A_CONNECTOR = "E0501", "not a connector";
    /// A connector parameter whose value has the wrong kind.
    CONNECTOR_PARAM_KIND = "E0502", "connector parameter of the wrong kind";
    /// A `config:` connector entry without a `type:` parameter.
    MISSING_CONNECTOR_TYPE = "E0503", "connector without a type";
    /// A `config:` connector whose `type:` names no connector kind.
    UNKNOWN_CONNECTOR_KIND = "E0504", "unknown connector kind";
    /// A sink-only connector kind declared under `sources:`.
    CONNECTOR_WRONG_SECTION = "E0505", "connector in the wrong section";
    /// `.enrich(X, ...)` on a connector whose kind cannot answer lookups.
    NOT_A_LOOKUP_CONNECTOR = "E0506", "connector cannot answer lookups";

    /// A source or step type that is not declared with `event`.
    UNDECLARED_EVENT_TYPE = "W0101", "undeclared event type";
    /// `.aggregate` without a `.window` before it.
    AGGREGATE_WITHOUT_WINDOW = "W0102", "aggregate without window";
    /// `.partition_by` after `.window`, which does not partition the window.
    PARTITION_AFTER_WINDOW = "W0103", "`.partition_by` after `.window`";
    /// A sequence or pattern without `within`: partial matches never expire.
    UNBOUNDED_SEQUENCE = "W0104", "sequence without `within`";
    /// Legacy `config` blocks are accepted and ignored.
    CONFIG_DEPRECATED = "W0105", "`config` is deprecated";
    /// Top-level statements other than declarations are ignored.
    TOP_LEVEL_STATEMENT = "W0106", "top-level statement ignored";
    /// `.tap(...)` does nothing.
        TAP_NO_OP = "W0107", "`.tap` does nothing";
    /// `import` is not resolved by the checker: imported names are unchecked.
    UNRESOLVED_IMPORT = "W0108", "import not resolved";
    /// A Kleene step without a filter over a type another step also reads:
    /// its runs accumulate every event.
    ACCEPT_ALL_KLEENE = "W0109", "accept-all Kleene step";
    /// `skip_till_any_match` with a Kleene step and no `.limit_runs`: runs
    /// fork on every event.
    COMBINATORIAL_PATTERN = "W0110", "pattern can explode combinatorially";
    /// A parameter a connector of this kind does not read (a typo, most
    /// likely); starting the connector would fail.
    UNKNOWN_CONNECTOR_PARAM = "W0111", "unknown connector parameter";
    /// `.partition_by` without `max_keys:` or `idle:` before a count window:
    /// every key keeps an open window for ever.
    UNBOUNDED_PARTITION = "W0112", "partitioned state without a bound";
    /// A stream fed by a kafka source with `state_per_partition: true` keeps
    /// state that is not partitioned by the one field the topic's records are
    /// keyed by: per-partition results would differ from one engine's.
    PARTITION_NOT_RECORD_KEY = "W0113", "per-partition state not keyed by the record key";
}

/// One registry row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeInfo {
    /// The code, e.g. `E0201`.
    pub code: &'static str,
    /// A short lowercase title.
    pub title: &'static str,
    /// Errors reject the program; warnings do not.
    pub severity: Severity,
}

fn severity_of(code: &str) -> Severity {
    if code.starts_with('W') {
        Severity::Warning
    } else {
        Severity::Error
    }
}

/// Every code (syntax codes first), in numeric order.
pub fn all() -> &'static [CodeInfo] {
    static ALL: OnceLock<Vec<CodeInfo>> = OnceLock::new();
    ALL.get_or_init(|| {
        varpulis_syntax::codes::ALL_CODES
            .iter()
            .chain(COMPILER_CODES)
            .map(|&(code, title)| CodeInfo {
                code,
                title,
                severity: severity_of(code),
            })
            .collect()
    })
}

/// The registry row of `code`.
pub fn info(code: &str) -> Option<CodeInfo> {
    all().iter().copied().find(|c| c.code == code)
}

/// The severity of `code` (error for unknown codes).
pub fn severity(code: &str) -> Severity {
    severity_of(code)
}

// `ERROR_PAGES: &[(&str, &str)]`, generated by build.rs from docs/errors/*.md.
include!(concat!(env!("OUT_DIR"), "/error_pages.rs"));

/// The explanation page of `code` (markdown), as printed by `varpulis explain`.
pub fn explain(code: &str) -> Option<&'static str> {
    let code = code.trim().to_ascii_uppercase();
    info(&code)?;
    ERROR_PAGES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, page)| *page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_sorted_and_in_their_ranges() {
        let all = all();
        for pair in all.windows(2) {
            assert!(
                pair[0].code < pair[1].code,
                "{} / {}",
                pair[0].code,
                pair[1].code
            );
        }
        for c in all {
            let ok = ["E01", "E02", "E03", "E04", "E05", "W01"]
                .iter()
                .any(|p| c.code.starts_with(p));
            assert!(ok, "{} outside the ranges", c.code);
        }
    }

    #[test]
    fn explain_finds_pages_case_insensitively() {
        assert!(explain("e0202").is_some_and(|p| p.starts_with("# E0202")));
        assert!(explain("E9999").is_none());
    }
}
