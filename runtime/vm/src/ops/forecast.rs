//! `.forecast` in the sequence operator: the progress state after each
//! relevant event goes to a [`Forecaster`], and each prediction it makes
//! becomes a record in the forecast layout (docs/LANGUAGE.md#forecast):
//! `forecast_probability`, `forecast_confidence`, `forecast_time` (ns, the
//! expected delay to completion; no value when completion is not
//! expected), `forecast_state` (the state's label), `forecast_context_depth`,
//! `forecast_lower`, `forecast_upper`, then the event's own fields by name.

use super::Rec;
use crate::forecast::{ForecastState, Forecaster, Prediction};
use std::sync::Arc;
use varpulis_program::{Event, ForecastSpec, Program, SchemaId, Value, ValueKey};

/// The `forecast_*` fields leading the output layout.
const FORECAST_FIELDS: usize = 7;

/// The forecasting part of a sequence operator.
#[derive(Debug)]
pub struct ForecastOp {
    model: Forecaster,
    labels: Vec<Arc<str>>,
    schema: SchemaId,
    /// Per input type id: the slot of each raw output field in that type
    /// (computed on first use).
    layouts: Vec<Option<Vec<Option<u16>>>>,
}

impl ForecastOp {
    /// The forecaster of a sequence of `steps` steps.
    pub fn new(program: &Program, spec: &ForecastSpec, steps: u16) -> ForecastOp {
        ForecastOp {
            model: Forecaster::new(spec, steps),
            labels: spec.states.clone(),
            schema: spec.schema,
            layouts: vec![None; program.schemas.len()],
        }
    }

    /// What the last event did, for `:why`.
    pub fn note(&self, state: u16) -> crate::forecast::ForecastNote {
        self.model.note(state)
    }

    /// The model, for `:inspect` and metrics.
    pub fn model(&self) -> &Forecaster {
        &self.model
    }

    /// Learns the state the event `ev` of `key` left, pushing a forecast
    /// record when one is due.
    pub fn observe(
        &mut self,
        program: &Program,
        key: Option<&ValueKey>,
        state: u16,
        ev: &Arc<Event>,
        out: &mut Vec<Rec>,
    ) {
        let Some(p) = self.model.observe(key, state, ev.time) else {
            return;
        };
        out.push(Rec::new(Arc::new(self.record(program, &p, ev))));
    }

    fn record(&mut self, program: &Program, p: &Prediction, ev: &Event) -> Event {
        let label = self
            .labels
            .get(usize::from(p.state))
            .cloned()
            .unwrap_or_else(|| Arc::from(p.state.to_string()));
        let mut fields = Vec::with_capacity(FORECAST_FIELDS + ev.fields.len());
        fields.push(Some(Value::Float(p.probability)));
        fields.push(Some(Value::Float(p.confidence)));
        fields.push(p.time.map(Value::Int));
        fields.push(Some(Value::Str(label)));
        fields.push(Some(Value::Int(i64::from(p.depth))));
        fields.push(Some(Value::Float(p.lower)));
        fields.push(Some(Value::Float(p.upper)));
        self.prepare_layout(program, ev.type_id);
        if let Some(Some(layout)) = self.layouts.get(ev.type_id as usize) {
            for slot in layout {
                fields.push(slot.and_then(|s| ev.fields.get(usize::from(s)).cloned().flatten()));
            }
        }
        let mut out = Event::new(self.schema, ev.time, fields);
        out.extra.clone_from(&ev.extra);
        out
    }

    /// Works out, once per type, where the raw output fields are in events
    /// of type `ty`.
    fn prepare_layout(&mut self, program: &Program, ty: SchemaId) {
        if let Some(Some(_)) = self.layouts.get(ty as usize) {
            return;
        }
        let (Some(to), Some(from)) = (
            program.schemas.get(self.schema as usize),
            program.schemas.get(ty as usize),
        ) else {
            return;
        };
        let l: Vec<Option<u16>> = to
            .fields
            .iter()
            .skip(FORECAST_FIELDS)
            .map(|f| {
                let slot = from.fields.iter().position(|g| g.name == f.name)?;
                u16::try_from(slot).ok()
            })
            .collect();
        if let Some(e) = self.layouts.get_mut(ty as usize) {
            *e = Some(l);
        }
    }

    /// The model's state for a snapshot.
    pub fn snapshot(&self) -> ForecastState {
        self.model.snapshot()
    }

    /// Restores the model.
    pub fn restore(&mut self, st: ForecastState) {
        self.model.restore(st);
    }
}
