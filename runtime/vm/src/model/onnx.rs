//! ONNX models run by tract (pure Rust), behind the `onnx` feature.
//!
//! A model fit for `.score` has one input of shape `[N, k]` (`N` the batch:
//! symbolic, or fixed at 1 for a model that takes one row at a time; `k` the
//! number of `inputs:`), of type float or double, and either one output of
//! shape `[N, m]` or `[N]`, or `m` outputs of shape `[N]` or `[N, 1]` (`m`
//! the number of `outputs:`). The model is optimised once for a symbolic `N`
//! and then runs any batch size.

use super::Model;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

/// Why bytes do not give a model fit for `.score`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OnnxError {
    /// Not an ONNX model tract can run.
    Invalid(String),
    /// An ONNX model of another shape than `.score` needs.
    Shape(String),
}

/// How the model's outputs map to the `.score` outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outputs {
    /// One output tensor whose row `r` holds the `m` outputs of row `r`.
    Columns(usize),
    /// One output tensor per output field, one number per row.
    Separate(usize),
}

/// An optimised ONNX model.
pub struct OnnxModel {
    plan: TypedRunnableModel<TypedModel>,
    /// The same model optimised for exactly one row (an event alone in its
    /// engine step, the common case on a plain stream); `None` when `plan`
    /// already is.
    single: Option<TypedRunnableModel<TypedModel>>,
    inputs: usize,
    input_type: DatumType,
    outputs: Outputs,
    /// `Some(1)` when the model's batch dimension is fixed at one row.
    max_rows: Option<usize>,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

fn shape_text<'a>(dims: impl Iterator<Item = Option<&'a TDim>>) -> String {
    let v: Vec<String> = dims
        .map(|d| d.map_or_else(|| "?".to_string(), |d| d.to_string()))
        .collect();
    format!("[{}]", v.join(", "))
}

impl OnnxModel {
    /// Loads an ONNX model from its bytes for rows of `inputs` numbers and
    /// optimises it for any batch size.
    pub fn from_bytes(bytes: &[u8], inputs: usize) -> Result<OnnxModel, OnnxError> {
        let invalid = |e: TractError| OnnxError::Invalid(format!("{e:#}"));
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .map_err(invalid)?;
        if model.inputs.len() != 1 {
            return Err(OnnxError::Shape(format!(
                "the model has {} input tensors; `.score` feeds one, of shape [N, {inputs}]",
                model.inputs.len()
            )));
        }
        let declared = model.input_fact(0).map_err(invalid)?.clone();
        let dims: Vec<Option<TDim>> = declared.shape.dims().map(|d| d.concretize()).collect();
        let declared_text = shape_text(dims.iter().map(Option::as_ref));
        let wanted = format!("[N, {inputs}]");
        let open = declared.shape.is_open();
        let rank_ok = dims.len() == 2 || (open && dims.len() < 2);
        let width = dims.get(1).cloned().flatten();
        let width_ok = width.is_none_or(|w| w.to_i64().ok() == i64::try_from(inputs).ok());
        if !rank_ok || !width_ok {
            return Err(OnnxError::Shape(format!(
                "the model's input has shape {declared_text}, but the `.score` gives it rows of \
                 {inputs} inputs ({wanted})"
            )));
        }
        let batch = match dims.first().cloned().flatten().map(|d| d.to_i64()) {
            Some(Ok(1)) => Some(1),
            Some(Ok(n)) => {
                return Err(OnnxError::Shape(format!(
                    "the model's input has shape {declared_text}: its batch dimension is fixed \
                     at {n} rows; export it with a symbolic batch dimension ({wanted}) or 1"
                )))
            }
            _ => None,
        };
        let input_type = match declared.datum_type.concretize() {
            None | Some(DatumType::F32) => DatumType::F32,
            Some(DatumType::F64) => DatumType::F64,
            Some(t) => {
                return Err(OnnxError::Shape(format!(
                    "the model's input is of type {t:?}; `.score` gives it float or double numbers"
                )))
            }
        };
        let n = model.sym("N");
        let batch_dim = match batch {
            Some(b) => TDim::from(b),
            None => TDim::from(n.clone()),
        };
        let width_dim = TDim::from(i64::try_from(inputs).unwrap_or(i64::MAX));
        model
            .set_input_fact(
                0,
                TypedFact::dt_shape(input_type, tvec![batch_dim, width_dim]).into(),
            )
            .map_err(invalid)?;
        let typed = model.into_typed().map_err(|e| {
            OnnxError::Shape(format!(
                "the model does not accept an input of shape {wanted}: {e:#}"
            ))
        })?;
        let outputs = output_layout(&typed)?;
        let single = match batch {
            Some(_) => None,
            None => Some(
                typed
                    .concretize_dims(&SymbolValues::default().with(&n, 1))
                    .and_then(|m| m.into_optimized())
                    .and_then(|m| m.into_runnable())
                    .map_err(invalid)?,
            ),
        };
        let plan = typed
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(invalid)?;
        Ok(OnnxModel {
            plan,
            single,
            inputs,
            input_type,
            outputs,
            max_rows: batch.map(|b| b as usize),
        })
    }
}

/// How the typed model's outputs give one number per output field and row.
fn output_layout(typed: &TypedModel) -> Result<Outputs, OnnxError> {
    let mut shapes = Vec::new();
    for i in 0..typed.outputs.len() {
        let f = typed
            .output_fact(i)
            .map_err(|e| OnnxError::Invalid(format!("{e:#}")))?;
        shapes.push(f.shape.dims().to_vec());
    }
    let text = shapes
        .iter()
        .map(|s| shape_text(s.iter().map(Some)))
        .collect::<Vec<_>>()
        .join(", ");
    let bad = || {
        OnnxError::Shape(format!(
            "the model's outputs have shapes {text}; `.score` reads one output of shape \
             [N, m] or [N], or m outputs of shape [N] or [N, 1]"
        ))
    };
    let width = |s: &[TDim]| -> Option<usize> {
        match s {
            [_] => Some(1),
            [_, w] => w.to_i64().ok().and_then(|w| usize::try_from(w).ok()),
            _ => None,
        }
    };
    match shapes.as_slice() {
        [] => Err(bad()),
        [one] => width(one).map(Outputs::Columns).ok_or_else(bad),
        many => {
            if many.iter().all(|s| width(s) == Some(1)) {
                Ok(Outputs::Separate(many.len()))
            } else {
                Err(bad())
            }
        }
    }
}

impl Model for OnnxModel {
    fn inputs(&self) -> usize {
        self.inputs
    }

    fn outputs(&self) -> usize {
        match self.outputs {
            Outputs::Columns(m) | Outputs::Separate(m) => m,
        }
    }

    fn max_rows(&self) -> Option<usize> {
        self.max_rows
    }

    fn run(&self, rows: usize, input: &[f64]) -> Result<Vec<f64>, String> {
        let err = |e: TractError| format!("{e:#}");
        let tensor = match self.input_type {
            DatumType::F64 => Tensor::from_shape(&[rows, self.inputs], input).map_err(err)?,
            _ => {
                let v: Vec<f32> = input.iter().map(|x| *x as f32).collect();
                Tensor::from_shape(&[rows, self.inputs], &v).map_err(err)?
            }
        };
        let plan = match (&self.single, rows) {
            (Some(single), 1) => single,
            _ => &self.plan,
        };
        let out = plan.run(tvec!(tensor.into())).map_err(err)?;
        let column = |t: &TValue| -> Result<Vec<f64>, String> {
            let t = t.cast_to::<f64>().map_err(err)?;
            let s = t.as_slice::<f64>().map_err(err)?;
            Ok(s.to_vec())
        };
        let m = self.outputs();
        let result = match self.outputs {
            Outputs::Columns(_) => column(out.first().ok_or("the model gave no output")?)?,
            Outputs::Separate(_) => {
                let cols = out.iter().map(column).collect::<Result<Vec<_>, _>>()?;
                let mut v = Vec::with_capacity(rows * m);
                for r in 0..rows {
                    for c in &cols {
                        v.push(*c.get(r).ok_or("the model gave too few rows")?);
                    }
                }
                v
            }
        };
        if result.len() != rows * m {
            return Err(format!(
                "the model gave {} numbers for {rows} rows of {m} outputs",
                result.len()
            ));
        }
        Ok(result)
    }
}
