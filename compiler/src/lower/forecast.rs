//! `.forecast(...)` after an in-stream sequence → [`ForecastSpec`]
//! (docs/LANGUAGE.md#forecast). The checker has reported bad arguments and
//! placements; here the arguments are read again with the same rules
//! ([`crate::forecast::settings`]), the defaults filled in and the output
//! layout built.

use std::sync::Arc;

use varpulis_program::{ForecastHorizon, ForecastSpec, SchemaId, SeqStep};
use varpulis_syntax::ast::{OpKind, StreamDecl};

use super::Lowerer;
use crate::forecast::{self, Horizon};

impl Lowerer<'_> {
    /// Lowers the `.forecast` at `decl.ops[at]` of a sequence with `steps`
    /// (their layouts in `layouts`, aliases named by `alias_names`) and
    /// deadline `within`.
    pub(crate) fn forecast_spec(
        &mut self,
        steps: &[SeqStep],
        layouts: &[SchemaId],
        alias_names: &[Arc<str>],
        within: Option<i64>,
        decl: &StreamDecl,
        at: usize,
    ) -> Option<ForecastSpec> {
        let op = decl.ops.get(at)?;
        let OpKind::Call { args, .. } = &op.kind else {
            return None;
        };
        let (s, _) = forecast::settings(args);
        let horizon = match s.horizon {
            Some(Horizon::Events(n)) => ForecastHorizon::Events(n),
            Some(Horizon::Time(d)) => ForecastHorizon::Time(i64::try_from(d).unwrap_or(i64::MAX)),
            None => match within {
                Some(w) => ForecastHorizon::Time(w),
                None => ForecastHorizon::Events(u32::try_from(steps.len()).unwrap_or(1).max(1)),
            },
        };
        // State i: i steps bound; the last state is the completed match.
        let mut states: Vec<Arc<str>> = vec![Arc::from("start")];
        for (i, step) in steps.iter().enumerate().take(steps.len().saturating_sub(1)) {
            let label = step
                .alias
                .and_then(|a| alias_names.get(usize::from(a)).cloned())
                .or_else(|| {
                    let l = layouts.get(i)?;
                    Some(self.program.schemas.get(*l as usize)?.name.clone())
                })
                .unwrap_or_else(|| Arc::from(format!("step {}", i + 1)));
            states.push(label);
        }
        states.push(Arc::from("complete"));
        let mut names: Vec<String> = forecast::FIELDS
            .iter()
            .map(|(n, _)| n.to_string())
            .collect();
        for l in layouts {
            for n in self.field_names(*l) {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
        let sid = self.stream_ids.get(&decl.name.name).copied().unwrap_or(0);
        let schema = self.stream_schema(sid, &format!("{}.forecast", decl.name.name), names);
        Some(ForecastSpec {
            confidence: s.confidence,
            horizon,
            warmup: s.warmup,
            max_depth: s.max_depth,
            hawkes: s.hawkes,
            conformal: s.conformal,
            states,
            schema,
        })
    }
}
