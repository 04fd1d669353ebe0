//! Lowering `.pattern(name: events => test)` (docs/LANGUAGE.md#pattern-window-test):
//! the test becomes a chunk whose local 0 holds the window's events, and the
//! output layout is the input's fields then `pattern` and `window_events`.
//! The checker guarantees the shape (right after `.window`, one named
//! lambda with one parameter).

use std::sync::Arc;

use varpulis_program::{OpSpec, PatternTest, SchemaOrigin};
use varpulis_syntax::ast::Arg;
use varpulis_syntax::Span;

use super::expr::ChunkBuilder;
use super::stream::Chain;
use super::Lowerer;
use crate::check::lambda::lambda_of;
use crate::codes;

impl Lowerer<'_> {
    pub(crate) fn window_pattern(&mut self, ch: &mut Chain, args: &[Arg], span: Span) {
        let shape = match args {
            [a] => a.name.as_ref().zip(lambda_of(&a.value)),
            _ => None,
        };
        // The chunk spans the whole lambda (`events => ...`), for `:inspect`.
        let lambda_span = args.first().map_or(span, |a| a.value.span);
        let Some((name, (param, test))) = shape else {
            self.error(
                codes::ARGUMENT_TYPE,
                "`.pattern` needs `name: events => condition`",
                span,
            );
            return;
        };
        if !matches!(ch.ops.last(), Some(OpSpec::Window(_))) {
            self.error(
                codes::PATTERN_WITHOUT_WINDOW,
                "`.pattern` must come right after `.window`",
                span,
            );
            return;
        }
        if !ch.env.scopes.iter().all(Vec::is_empty) {
            self.unsupported("`.pattern` here", span);
            return;
        }
        let mut b = ChunkBuilder::new(self.span_id(lambda_span));
        let events = b.new_local();
        ch.env.scopes.push(vec![(param.name.clone(), events)]);
        self.expr(&mut b, &mut ch.env, test);
        ch.env.scopes.pop();
        let chunk = b.finish();
        let input = ch.env.layout.unwrap_or(0);
        let (type_name, mut fields, undeclared) = match self.program.schemas.get(input as usize) {
            Some(s) => (
                s.name.to_string(),
                s.fields
                    .iter()
                    .map(|f| f.name.to_string())
                    .collect::<Vec<_>>(),
                s.origin == SchemaOrigin::Undeclared,
            ),
            None => (ch.name.clone(), Vec::new(), false),
        };
        if undeclared {
            // Undeclared fields reach the test only through the overflow.
            self.keep_extra(input);
        }
        fields.push(crate::check::window_pattern::PATTERN_FIELD.to_string());
        fields.push(crate::check::window_pattern::COUNT_FIELD.to_string());
        let schema = self.stream_schema(ch.sid, &type_name, fields);
        ch.ops.push(OpSpec::Pattern(PatternTest {
            name: Arc::from(name.name.as_str()),
            test: chunk,
            schema,
        }));
        ch.env.layout = Some(schema);
    }
}
