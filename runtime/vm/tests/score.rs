//! `.score`: the committed ONNX models (tests/corpus/run/score/, built by
//! scripts/score-models) run by tract give the scores a Rust computation
//! with the same weights gives; the engine scores batches in input order,
//! counts bad inputs and refuses models that do not fit.
#![cfg(feature = "onnx")]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use varpulis_program::{EmitSpec, OpSpec, Program, ScoreSpec, SpanId, Value, WindowSpec};
use varpulis_vm::model::onnx::OnnxModel;
use varpulis_vm::model::{self, Model, ModelError, Models};
use varpulis_vm::testing::{event, field, input, ProgramBuilder};
use varpulis_vm::{Engine, EngineConfig, LoadError};

// The weights of scripts/score-models.
const LINEAR_W: [f64; 3] = [0.5, -1.25, 2.0];
const LINEAR_B: f64 = 0.75;
const LOGISTIC_W: [f64; 2] = [1.5, -0.5];
const LOGISTIC_B: f64 = -0.25;
const TWO_W: [[f64; 2]; 2] = [[1.0, -2.0], [0.5, 3.0]];
const TWO_C: [f64; 2] = [0.125, -4.0];

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/run/score")
}

fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(models_dir().join(name)).expect("the committed model is readable")
}

/// Rows of `width` inputs, varied and with negative, fractional and large
/// values.
fn rows(n: usize, width: usize) -> Vec<f64> {
    (0..n * width)
        .map(|i| ((i as f64) * 0.37 - 5.0) * if i % 3 == 0 { 10.0 } else { 1.0 })
        .collect()
}

fn close(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "value {i}: got {g}, want {w}"
        );
    }
}

#[test]
fn linear_model_scores_match_the_weights() {
    let m = OnnxModel::from_bytes(&bytes("linear.onnx"), 3).expect("loads");
    assert_eq!((m.inputs(), m.outputs()), (3, 1));
    let x = rows(50, 3);
    let want: Vec<f64> = x
        .chunks(3)
        .map(|r| r.iter().zip(LINEAR_W).map(|(a, w)| a * w).sum::<f64>() + LINEAR_B)
        .collect();
    // float32 model: relative tolerance of a few ulps of f32.
    close(&m.run(50, &x).expect("runs"), &want, 1e-5);
}

#[test]
fn logistic_model_scores_match_the_weights() {
    let m = OnnxModel::from_bytes(&bytes("logistic.onnx"), 2).expect("loads");
    let x = rows(40, 2);
    let want: Vec<f64> = x
        .chunks(2)
        .map(|r| {
            let z = r.iter().zip(LOGISTIC_W).map(|(a, w)| a * w).sum::<f64>() + LOGISTIC_B;
            1.0 / (1.0 + (-z).exp())
        })
        .collect();
    close(&m.run(40, &x).expect("runs"), &want, 1e-5);
}

#[test]
fn double_model_with_two_outputs_matches_exactly() {
    let m = OnnxModel::from_bytes(&bytes("two.onnx"), 2).expect("loads");
    assert_eq!(m.outputs(), 2);
    let x = rows(7, 2);
    let mut want = Vec::new();
    for r in x.chunks(2) {
        for o in 0..2 {
            want.push(r[0] * TWO_W[0][o] + r[1] * TWO_W[1][o] + TWO_C[o]);
        }
    }
    close(&m.run(7, &x).expect("runs"), &want, 1e-12);
}

/// A score does not depend on the batch it ran in (so outputs do not depend
/// on how events happen to be grouped, nor on the number of workers).
#[test]
fn one_batch_gives_the_scores_of_one_row_at_a_time() {
    for (name, width) in [("linear.onnx", 3), ("logistic.onnx", 2), ("two.onnx", 2)] {
        let m = OnnxModel::from_bytes(&bytes(name), width).expect("loads");
        let x = rows(300, width);
        let batched = m.run(300, &x).expect("runs");
        let single: Vec<f64> = x
            .chunks(width)
            .flat_map(|r| m.run(1, r).expect("runs"))
            .collect();
        assert_eq!(
            batched, single,
            "{name}: batch size must not change a score"
        );
    }
}

#[test]
fn bytes_that_are_not_a_model_are_refused() {
    let e = OnnxModel::from_bytes(b"not a model", 3).expect_err("refused");
    assert!(matches!(e, model::onnx::OnnxError::Invalid(_)), "{e:?}");
}

/// A model that counts its runs and the rows of each.
struct Counting {
    inner: OnnxModel,
    runs: Arc<AtomicUsize>,
    rows: Arc<std::sync::Mutex<Vec<usize>>>,
}

impl Model for Counting {
    fn inputs(&self) -> usize {
        self.inner.inputs()
    }
    fn outputs(&self) -> usize {
        self.inner.outputs()
    }
    fn run(&self, rows: usize, input: &[f64]) -> Result<Vec<f64>, String> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.rows.lock().expect("not poisoned").push(rows);
        self.inner.run(rows, input)
    }
}

/// `Reading(a, b, c)`, a stream `Scored` with `ops_before` then
/// `.score(model: "linear.onnx", inputs: [a, b, c], outputs: [y]).emit()`.
fn program(ops_before: Vec<OpSpec>, inputs: usize) -> Arc<Program> {
    let mut b = ProgramBuilder::new();
    let t = b.event("Reading", &["a", "b", "c"]);
    let out = b.layout("Scored", &["a", "b", "c", "y"]);
    let names = ["a", "b", "c"];
    let mut ops = ops_before;
    ops.push(OpSpec::Score(ScoreSpec {
        model: Arc::from("linear.onnx"),
        path: Arc::from("models/linear.onnx"),
        inputs: (0..inputs)
            .map(|i| (Arc::from(names[i]), field(i as u16)))
            .collect(),
        outputs: vec![(Arc::from("y"), 3)],
        schema: out,
        span: SpanId::NONE,
    }));
    ops.push(OpSpec::Emit(EmitSpec {
        items: None,
        schema: out,
    }));
    b.stream("Scored", input(t), ops, out);
    b.build()
}

fn linear(x: [f64; 3]) -> f64 {
    x.iter().zip(LINEAR_W).map(|(a, w)| a * w).sum::<f64>() + LINEAR_B
}

fn y_of(o: &varpulis_vm::Output) -> f64 {
    match o.fields.iter().find(|(k, _)| &**k == "y") {
        Some((_, Value::Float(f))) => *f,
        other => panic!("no score: {other:?}"),
    }
}

#[test]
fn engine_scores_a_window_in_one_run_and_in_input_order() {
    let runs = Arc::new(AtomicUsize::new(0));
    let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut models = Models::new();
    models.insert(
        "models/linear.onnx",
        Arc::new(Counting {
            inner: OnnxModel::from_bytes(&bytes("linear.onnx"), 3).expect("loads"),
            runs: runs.clone(),
            rows: sizes.clone(),
        }),
    );
    let p = program(vec![OpSpec::Window(WindowSpec::Count { size: 4 })], 3);
    let mut e = Engine::with_models(p, EngineConfig::default(), &models).expect("loads");
    let mut outs = Vec::new();
    let xs: Vec<[f64; 3]> = (0..8)
        .map(|i| [i as f64, 2.0 * i as f64 - 3.0, 0.5 * i as f64])
        .collect();
    for (i, x) in xs.iter().enumerate() {
        let ev = event(
            0,
            i as i64,
            vec![
                Value::Float(x[0]),
                Value::Int(x[1] as i64),
                Value::Float(x[2]),
            ],
        );
        outs.extend(e.push(ev));
    }
    outs.extend(e.finish());
    // Two count windows of four events: two model runs of four rows.
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(*sizes.lock().expect("not poisoned"), vec![4, 4]);
    assert_eq!(outs.len(), 8);
    for (o, x) in outs.iter().zip(&xs) {
        let want = linear(*x);
        assert!((y_of(o) - want).abs() < 1e-5 * (1.0 + want.abs()), "{o:?}");
    }
    let times: Vec<i64> = outs.iter().map(|o| o.time).collect();
    assert_eq!(times, (0..8).collect::<Vec<i64>>());
}

#[test]
fn an_event_without_a_numeric_input_is_a_counted_error_naming_the_field() {
    let mut models = Models::new();
    models.insert(
        "models/linear.onnx",
        Arc::new(OnnxModel::from_bytes(&bytes("linear.onnx"), 3).expect("loads")),
    );
    let mut e =
        Engine::with_models(program(vec![], 3), EngineConfig::default(), &models).expect("loads");
    let bad = event(
        0,
        1,
        vec![
            Value::Float(1.0),
            Value::Str(Arc::from("x")),
            Value::Float(2.0),
        ],
    );
    assert!(e.push(bad).is_empty());
    let mut missing = event(0, 2, vec![Value::Float(1.0)]);
    missing.fields.truncate(1);
    assert!(e.push(missing).is_empty());
    let good = e.push(event(
        0,
        3,
        vec![Value::Float(1.0), Value::Float(1.0), Value::Float(1.0)],
    ));
    assert_eq!(good.len(), 1);
    assert_eq!(e.metrics().runtime_errors, 2);
    assert_eq!(e.metrics().errors_per_stream, vec![2]);
    let errs = e.take_errors();
    assert_eq!(errs[0].kind.code(), "R0009");
    assert!(errs[0].detail.contains("input `b`"), "{}", errs[0].detail);
    assert!(errs[0].detail.contains("found str"), "{}", errs[0].detail);
    assert!(errs[1].detail.contains("input `b`"), "{}", errs[1].detail);
    assert!(errs[1].detail.contains("missing"), "{}", errs[1].detail);
}

#[test]
fn a_model_of_another_shape_is_a_load_error_naming_model_and_shapes() {
    let p = program(vec![], 2);
    let e = model::load(&p, &mut |path| {
        assert_eq!(path, "models/linear.onnx");
        Ok(bytes("linear.onnx"))
    })
    .expect_err("refused");
    let msg = e.to_string();
    assert!(matches!(e, ModelError::Shape { .. }), "{msg}");
    assert!(msg.contains("linear.onnx"), "{msg}");
    assert!(msg.contains("[N, 3]"), "{msg}");
    assert!(msg.contains("[N, 2]"), "{msg}");
}

#[test]
fn a_missing_file_or_model_is_a_load_error() {
    let p = program(vec![], 3);
    let e = model::load(&p, &mut |_| {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such file",
        ))
    })
    .expect_err("refused");
    assert!(
        e.to_string().contains("cannot read model `linear.onnx`"),
        "{e}"
    );
    let e = Engine::with_config(p, EngineConfig::default())
        .err()
        .expect("no model");
    assert!(matches!(e, LoadError::Model(_)), "{e}");
    assert!(e.to_string().contains("linear.onnx"), "{e}");
}

#[test]
fn load_reads_each_model_once() {
    let p = program(vec![], 3);
    let mut reads = 0;
    let models = model::load(&p, &mut |_| {
        reads += 1;
        Ok(bytes("linear.onnx"))
    })
    .expect("loads");
    assert_eq!((reads, models.len()), (1, 1));
    Engine::with_models(p, EngineConfig::default(), &models).expect("runs");
}

/// The committed models are what scripts/score-models builds (when python3
/// with the `onnx` package is here; otherwise the committed bytes stand).
#[test]
fn committed_models_are_what_the_script_builds() {
    let have = std::process::Command::new("python3")
        .args(["-c", "import onnx"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        eprintln!("python3 with onnx not found: the committed models are not rebuilt");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/score-models");
    let st = std::process::Command::new("python3")
        .arg(&script)
        .arg(dir.path())
        .status()
        .expect("runs the script");
    assert!(st.success());
    for name in ["linear.onnx", "logistic.onnx", "two.onnx"] {
        let fresh = std::fs::read(dir.path().join(name)).expect("built");
        assert!(
            fresh == bytes(name),
            "{name} differs from what scripts/score-models builds: run it and commit the result"
        );
    }
}
