//! Models for `.score` (docs/LANGUAGE.md#score): what the engine needs from a
//! loaded model, the set of models a host hands to [`crate::Engine::with_models`],
//! and (behind the `onnx` feature) loading ONNX models with tract.
//!
//! The engine never reads files: the host reads each model's bytes (it knows
//! the file system), [`load`] turns them into [`Model`]s and checks their
//! shapes against the program, and the engine runs them on batches of
//! events. Loading happens once, before the first event, so a model that
//! does not fit its `.score` is an error at `run`/`simulate` start.

use std::collections::BTreeMap;
use std::sync::Arc;
use thiserror::Error;
use varpulis_program::{OpSpec, Program};

/// A loaded model: numbers in, numbers out, many rows per call.
pub trait Model: Send + Sync {
    /// How many numbers one row gives the model.
    fn inputs(&self) -> usize;

    /// How many numbers the model gives back per row.
    fn outputs(&self) -> usize;

    /// Runs the model on `rows` rows of [`Model::inputs`] numbers each
    /// (row-major) and returns `rows` rows of [`Model::outputs`] numbers,
    /// in the same order. An `Err` names what failed; the engine counts
    /// every event of the batch as a runtime error.
    fn run(&self, rows: usize, input: &[f64]) -> Result<Vec<f64>, String>;

    /// The largest number of rows one call may take (`None`: any).
    fn max_rows(&self) -> Option<usize> {
        None
    }
}

/// The models of a program, by resolved path ([`varpulis_program::ScoreSpec::path`]).
#[derive(Clone, Default)]
pub struct Models {
    by_path: BTreeMap<Arc<str>, Arc<dyn Model>>,
}

impl Models {
    /// No models (a program without `.score`).
    pub fn new() -> Models {
        Models::default()
    }

    /// Adds (or replaces) the model loaded from `path`.
    pub fn insert(&mut self, path: impl Into<Arc<str>>, model: Arc<dyn Model>) {
        self.by_path.insert(path.into(), model);
    }

    /// The model loaded from `path`.
    pub fn get(&self, path: &str) -> Option<&Arc<dyn Model>> {
        self.by_path.get(path)
    }

    /// How many models there are.
    pub fn len(&self) -> usize {
        self.by_path.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_path.is_empty()
    }
}

impl std::fmt::Debug for Models {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_path.keys()).finish()
    }
}

/// One `.score` of a program: where, which file, and its shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelUse {
    /// The stream.
    pub stream: Arc<str>,
    /// The model as written.
    pub model: Arc<str>,
    /// The file to read.
    pub path: Arc<str>,
    /// Names of the input fields, in model order.
    pub inputs: Vec<Arc<str>>,
    /// Names of the output fields, in model order.
    pub outputs: Vec<Arc<str>>,
}

/// Every `.score` of `program`, in stream and operator order.
pub fn uses(program: &Program) -> Vec<ModelUse> {
    let mut v = Vec::new();
    for st in &program.streams {
        for op in &st.ops {
            if let OpSpec::Score(s) = op {
                v.push(ModelUse {
                    stream: st.name.clone(),
                    model: s.model.clone(),
                    path: s.path.clone(),
                    inputs: s.inputs.iter().map(|(n, _)| n.clone()).collect(),
                    outputs: s.outputs.iter().map(|(n, _)| n.clone()).collect(),
                });
            }
        }
    }
    v
}

/// Why a program's models cannot be loaded.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ModelError {
    /// The host could not read the file.
    #[error("cannot read model `{model}` ({path}) of stream `{stream}`: {reason}")]
    Read {
        /// The stream.
        stream: String,
        /// The model as written.
        model: String,
        /// The file.
        path: String,
        /// The IO error.
        reason: String,
    },
    /// The bytes are not a model tract can run.
    #[error("model `{model}` ({path}) cannot be loaded: {reason}")]
    Invalid {
        /// The model as written.
        model: String,
        /// The file.
        path: String,
        /// What tract reported.
        reason: String,
    },
    /// The model's shapes do not fit the `.score` that uses it.
    #[error("model `{model}` of stream `{stream}` does not fit its `.score`: {reason}")]
    Shape {
        /// The stream.
        stream: String,
        /// The model as written.
        model: String,
        /// The shapes, found and expected.
        reason: String,
    },
    /// This build has no ONNX runtime.
    #[error(
        "stream `{stream}` scores with model `{model}`, but this build has no ONNX support: \
         rebuild varpulis with the `onnx` cargo feature (on by default)"
    )]
    NoOnnx {
        /// The stream.
        stream: String,
        /// The model as written.
        model: String,
    },
}

/// Reads and loads every model `program` scores with. `read` gets the
/// resolved path ([`varpulis_program::ScoreSpec::path`]) and returns the
/// file's bytes; each file is read and loaded once. Every use is checked
/// against its model: as many inputs and outputs as the `.score` names.
pub fn load(
    program: &Program,
    read: &mut dyn FnMut(&str) -> std::io::Result<Vec<u8>>,
) -> Result<Models, ModelError> {
    let mut models = Models::new();
    for u in uses(program) {
        if !cfg!(feature = "onnx") {
            return Err(ModelError::NoOnnx {
                stream: u.stream.to_string(),
                model: u.model.to_string(),
            });
        }
        let model = match models.get(&u.path) {
            Some(m) => m.clone(),
            None => {
                let bytes = read(&u.path).map_err(|e| ModelError::Read {
                    stream: u.stream.to_string(),
                    model: u.model.to_string(),
                    path: u.path.to_string(),
                    reason: e.to_string(),
                })?;
                let m = from_bytes(&u, &bytes)?;
                models.insert(u.path.clone(), m.clone());
                m
            }
        };
        check(&u, model.as_ref())?;
    }
    Ok(models)
}

/// Checks that `model` has the arity `u` asks for.
pub fn check(u: &ModelUse, model: &dyn Model) -> Result<(), ModelError> {
    let shape = |what: &str, names: &[Arc<str>], n: usize| ModelError::Shape {
        stream: u.stream.to_string(),
        model: u.model.to_string(),
        reason: format!(
            "the model takes rows of {n} {what} (shape [N, {n}]) but the `.score` names {} ({})",
            names.len(),
            names.iter().map(|s| &**s).collect::<Vec<_>>().join(", ")
        ),
    };
    if model.inputs() != u.inputs.len() {
        return Err(shape("inputs", &u.inputs, model.inputs()));
    }
    if model.outputs() != u.outputs.len() {
        return Err(ModelError::Shape {
            stream: u.stream.to_string(),
            model: u.model.to_string(),
            reason: format!(
                "the model gives {} outputs per row (shape [N, {}]) but the `.score` names {} ({})",
                model.outputs(),
                model.outputs(),
                u.outputs.len(),
                u.outputs
                    .iter()
                    .map(|s| &**s)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    Ok(())
}

#[cfg(feature = "onnx")]
fn from_bytes(u: &ModelUse, bytes: &[u8]) -> Result<Arc<dyn Model>, ModelError> {
    onnx::OnnxModel::from_bytes(bytes, u.inputs.len())
        .map(|m| Arc::new(m) as Arc<dyn Model>)
        .map_err(|e| match e {
            onnx::OnnxError::Invalid(reason) => ModelError::Invalid {
                model: u.model.to_string(),
                path: u.path.to_string(),
                reason,
            },
            onnx::OnnxError::Shape(reason) => ModelError::Shape {
                stream: u.stream.to_string(),
                model: u.model.to_string(),
                reason,
            },
        })
}

#[cfg(not(feature = "onnx"))]
fn from_bytes(u: &ModelUse, _bytes: &[u8]) -> Result<Arc<dyn Model>, ModelError> {
    Err(ModelError::NoOnnx {
        stream: u.stream.to_string(),
        model: u.model.to_string(),
    })
}

#[cfg(feature = "onnx")]
pub mod onnx;

#[cfg(all(test, not(feature = "onnx")))]
mod tests {
    use super::*;
    use varpulis_program::{InputRef, ScoreSpec, SourceSpec, SpanId, StreamPlan, StreamTime};

    /// Without the `onnx` feature a program with `.score` is refused before
    /// its model is read, naming the feature.
    #[test]
    fn without_onnx_a_score_is_refused_naming_the_feature() {
        let mut p = Program::default();
        p.streams.push(StreamPlan {
            name: Arc::from("Scored"),
            source: SourceSpec::Input(InputRef::Event(0)),
            ops: vec![OpSpec::Score(ScoreSpec {
                model: Arc::from("m.onnx"),
                path: Arc::from("m.onnx"),
                inputs: Vec::new(),
                outputs: Vec::new(),
                schema: 0,
                span: SpanId::NONE,
            })],
            output_schema: 0,
            visible: false,
            time: StreamTime::default(),
            bounds: Vec::new(),
            span: SpanId::NONE,
        });
        let e = load(&p, &mut |_| panic!("the file is not read")).expect_err("refused");
        assert!(e.to_string().contains("`onnx` cargo feature"), "{e}");
    }
}
