//! Declaration loops (docs/LANGUAGE.md#declaration-loops): a textual macro expanded before
//! splitting and parsing.
//!
//! A line at column 0 of the form `for V in A..B:` or `for V in A..=B:` with
//! integer literals (optionally negative) is replaced by one copy of its body
//! (the following lines indented deeper than 0) per value, de-indented by the
//! first body line's indentation, with every `{V}` replaced by the value.
//! Nested loops come out at column 0 after one pass and are expanded by the
//! next (at most [`MAX_PASSES`] passes, [`MAX_ITERATIONS`] values per loop).
//! Any other `for` line is left alone: it is an ordinary `for` statement.
//!
//! A [`SourceMap`] records where every byte of the expanded text came from.
//! A loop that cannot be expanded is dropped: its header is replaced by
//! spaces of the same length (so its error has a span that maps back to the
//! header) and its body is removed.

use crate::codes;
use crate::error::SyntaxError;
use crate::span::Span;

/// Most expansion passes (nesting levels of declaration loops).
pub const MAX_PASSES: usize = 10;
/// Most values one declaration loop may take.
pub const MAX_ITERATIONS: i64 = 10_000;

/// One piece of the expanded text and where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Segment {
    /// Start in the expanded text.
    exp: u32,
    /// Length in the expanded text.
    len: u32,
    /// Start in the original text.
    orig: u32,
    /// Substituted text (a loop value): every byte maps to `orig`, the
    /// `{V}` placeholder's start. Otherwise bytes map one to one.
    subst: bool,
}

/// Maps offsets in loop-expanded text back to the original input.
///
/// The identity when the input has no declaration loops.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SourceMap {
    /// Sorted, contiguous pieces; empty means identity.
    segments: Vec<Segment>,
}

impl SourceMap {
    /// Whether the map is the identity (no loops were expanded).
    pub fn is_identity(&self) -> bool {
        self.segments.is_empty()
    }

    /// The original offset of an offset in the expanded text. Inside a copy
    /// of a loop body this is the corresponding position in the loop body;
    /// inside a substituted value it is the `{V}` placeholder.
    pub fn to_original(&self, offset: u32) -> u32 {
        if self.segments.is_empty() {
            return offset;
        }
        let i = self.segments.partition_point(|s| s.exp <= offset);
        let seg = self.segments[i.saturating_sub(1)];
        if seg.subst {
            seg.orig
        } else {
            seg.orig + (offset - seg.exp.min(offset))
        }
    }

    /// A span of the expanded text mapped to the original text.
    pub fn span_to_original(&self, span: Span) -> Span {
        let start = self.to_original(span.start);
        let end = if span.end > span.start {
            // Map the last byte, then step past it, so a span ending at a
            // segment boundary stays inside its own segment.
            self.to_original(span.end - 1) + 1
        } else {
            start
        };
        Span::new(start, end.max(start))
    }

    /// This map applied after `inner` (this: final → middle text, inner:
    /// middle → original).
    fn compose(&self, inner: &SourceMap) -> SourceMap {
        if inner.is_identity() {
            return self.clone();
        }
        let mut out: Vec<Segment> = Vec::with_capacity(self.segments.len());
        for seg in &self.segments {
            if seg.subst {
                out.push(Segment {
                    orig: inner.to_original(seg.orig),
                    ..*seg
                });
                continue;
            }
            // Walk the inner segments overlapping [seg.orig, seg.orig + len).
            let lo = seg.orig;
            let hi = seg.orig + seg.len;
            let mut i = inner
                .segments
                .partition_point(|s| s.exp <= lo)
                .saturating_sub(1);
            let mut at = lo;
            while at < hi && i < inner.segments.len() {
                let s = inner.segments[i];
                let s_end = if i + 1 < inner.segments.len() {
                    inner.segments[i + 1].exp
                } else {
                    u32::MAX
                };
                let piece_end = hi.min(s_end);
                if piece_end > at {
                    out.push(Segment {
                        exp: seg.exp + (at - lo),
                        len: piece_end - at,
                        orig: if s.subst {
                            s.orig
                        } else {
                            s.orig + (at - s.exp)
                        },
                        subst: s.subst,
                    });
                    at = piece_end;
                }
                i += 1;
            }
        }
        SourceMap { segments: out }
    }

    /// The position in this map's expanded text of `offset` in its input
    /// text (first copy wins), for carrying error positions forward.
    fn forward(&self, offset: u32) -> u32 {
        for seg in &self.segments {
            if !seg.subst && seg.orig <= offset && offset <= seg.orig + seg.len {
                return seg.exp + (offset - seg.orig);
            }
        }
        offset
    }
}

/// A parsed loop header.
struct Header<'a> {
    var: &'a str,
    from: i64,
    to: i64,
}

/// The pieces of a loop header as written: `for VAR in FROM..TO:` or
/// `..=`, then an optional trailing comment. Shared with the formatter, which
/// reprints headers without evaluating them.
pub(crate) struct HeaderText<'a> {
    /// The loop variable.
    pub var: &'a str,
    /// The lower bound's digits (with an optional `-`).
    pub from: &'a str,
    /// `..=` rather than `..`.
    pub inclusive: bool,
    /// The upper bound's digits (with an optional `-`).
    pub to: &'a str,
    /// A trailing `#` or `//` comment, or empty.
    pub comment: &'a str,
}

/// Splits `for V in A..B:` / `for V in A..=B:` (at column 0, optional
/// trailing comment) into its pieces; `None` if the line is not a
/// declaration loop header.
pub(crate) fn header_text(line: &str) -> Option<HeaderText<'_>> {
    let rest = line.strip_prefix("for")?;
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    let rest = rest.trim_start();
    let var_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    if var_len == 0 || rest.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    let (var, rest) = rest.split_at(var_len);
    let rest = rest.trim_start().strip_prefix("in")?;
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    let rest = rest.trim_start();
    let (from, rest) = int_prefix(rest)?;
    let (inclusive, rest) = if let Some(r) = rest.strip_prefix("..=") {
        (true, r)
    } else {
        (false, rest.strip_prefix("..")?)
    };
    let (to, rest) = int_prefix(rest)?;
    let comment = rest.trim_start().strip_prefix(':')?.trim();
    if !(comment.is_empty() || comment.starts_with('#') || comment.starts_with("//")) {
        return None;
    }
    Some(HeaderText {
        var,
        from,
        inclusive,
        to,
        comment,
    })
}

/// Parses a loop header (see [`header_text`]). `None` if the line is not a
/// declaration loop; `Err` if it is one with unusable bounds.
fn header(line: &str) -> Option<Result<Header<'_>, String>> {
    let h = header_text(line)?;
    let (Ok(from), Ok(to)) = (h.from.parse::<i64>(), h.to.parse::<i64>()) else {
        return Some(Err(
            "a loop bound does not fit in a 64-bit integer".to_string()
        ));
    };
    let to = if h.inclusive {
        match to.checked_add(1) {
            Some(t) => t,
            None => return Some(Err("the loop's upper bound is too large".to_string())),
        }
    } else {
        to
    };
    Some(Ok(Header {
        var: h.var,
        from,
        to,
    }))
}

/// An optionally negative integer literal at the start of `s`.
fn int_prefix(s: &str) -> Option<(&str, &str)> {
    let sign = usize::from(s.starts_with('-'));
    let digits = s[sign..].bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    Some(s.split_at(sign + digits))
}

/// The lines of `text` with their start offsets (line text excludes `\n`).
fn lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        out.push((start, line.strip_suffix('\n').unwrap_or(line)));
        start += line.len();
    }
    out
}

/// Whether a `/* */` comment is still open at the end of `line`, given
/// whether one was open at its start. Strings and `#`/`//` line comments are
/// skipped, so their `/*` open nothing.
pub(crate) fn in_block_comment_after(line: &str, mut open: bool) -> bool {
    let b = line.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < b.len() {
        let next = b.get(i + 1).copied();
        if open {
            if b[i] == b'*' && next == Some(b'/') {
                open = false;
                i += 2;
            } else {
                i += 1;
            }
            continue;
        }
        if let Some(q) = quote {
            if b[i] == b'\\' {
                i += 2;
                continue;
            }
            if b[i] == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match (b[i], next) {
            (b'"' | b'\'', _) => quote = Some(b[i]),
            (b'#', _) | (b'/', Some(b'/')) => break,
            (b'/', Some(b'*')) => {
                open = true;
                i += 2;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    open
}

/// Columns of leading spaces and tabs.
pub(crate) fn indentation(line: &str) -> usize {
    line.bytes()
        .take_while(|b| *b == b' ' || *b == b'\t')
        .count()
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// Output of one pass.
struct Pass {
    text: String,
    map: SourceMap,
    /// Errors with spans in the pass's output text, plus the offset of the
    /// loop header in the pass's input text (for de-duplication).
    errors: Vec<(SyntaxError, u32)>,
    expanded: bool,
}

/// Builds the expanded text and its segments.
struct Writer {
    text: String,
    segments: Vec<Segment>,
}

impl Writer {
    fn copy(&mut self, src: &str, orig: usize) {
        if src.is_empty() {
            return;
        }
        let exp = self.text.len() as u32;
        self.text.push_str(src);
        let orig = orig as u32;
        if let Some(last) = self.segments.last_mut() {
            if !last.subst && last.exp + last.len == exp && last.orig + last.len == orig {
                last.len += src.len() as u32;
                return;
            }
        }
        self.segments.push(Segment {
            exp,
            len: src.len() as u32,
            orig,
            subst: false,
        });
    }

    fn subst(&mut self, value: &str, placeholder: usize) {
        let exp = self.text.len() as u32;
        self.text.push_str(value);
        self.segments.push(Segment {
            exp,
            len: value.len() as u32,
            orig: placeholder as u32,
            subst: true,
        });
    }

    /// Copies `line` (at `orig` in the input) with `{var}` replaced.
    fn line_with(&mut self, line: &str, orig: usize, placeholder: &str, value: &str) {
        let mut at = 0;
        while let Some(found) = line[at..].find(placeholder) {
            let pos = at + found;
            self.copy(&line[at..pos], orig + at);
            self.subst(value, orig + pos);
            at = pos + placeholder.len();
        }
        self.copy(&line[at..], orig + at);
    }
}

fn expand_once(text: &str) -> Pass {
    let lines = lines(text);
    let mut w = Writer {
        text: String::with_capacity(text.len()),
        segments: Vec::new(),
    };
    let mut errors = Vec::new();
    let mut expanded = false;
    let mut i = 0;
    while i < lines.len() {
        let (start, line) = lines[i];
        let parsed = header(line);
        let Some(parsed) = parsed else {
            w.copy(&text[start..start + line.len()], start);
            if start + line.len() < text.len() {
                w.copy("\n", start + line.len());
            }
            i += 1;
            continue;
        };
        expanded = true;
        // The body: following lines indented deeper than 0 (blank lines
        // inside it included, trailing blank lines excluded).
        let mut j = i + 1;
        let mut last_body = i;
        let mut in_comment = false;
        while j < lines.len() {
            let l = lines[j].1;
            // A line that continues a block comment opened in the body is
            // part of the body, whatever its indentation.
            let continues_comment = in_comment;
            in_comment = in_block_comment_after(l, in_comment);
            if is_blank(l) {
                j += 1;
                continue;
            }
            if indentation(l) == 0 && !continues_comment {
                break;
            }
            last_body = j;
            j += 1;
        }
        let header_span = |w: &Writer| {
            let s = w.text.len() as u32;
            Span::new(s, s + line.len() as u32)
        };
        let fail =
            |w: &mut Writer, errors: &mut Vec<(SyntaxError, u32)>, msg: String, help: &str| {
                let span = header_span(w);
                errors.push((
                    SyntaxError::new(codes::INVALID_DECL_LOOP, msg, span)
                        .with_label("this declaration loop")
                        .with_help(help.to_string()),
                    start as u32,
                ));
                // Keep the header's bytes (as spaces) so the error maps back to it.
                w.copy(&" ".repeat(line.len()), start);
                w.copy("\n", start + line.len());
            };
        let header = match parsed {
            Ok(h) => h,
            Err(msg) => {
                fail(
                    &mut w,
                    &mut errors,
                    msg,
                    "use integer bounds such as `for i in 0..10:`",
                );
                i = last_body + 1;
                continue;
            }
        };
        if last_body == i {
            fail(
                &mut w,
                &mut errors,
                "declaration loop has no body".to_string(),
                "indent the declarations to repeat under the `for` line",
            );
            i += 1;
            continue;
        }
        let count = header.to.saturating_sub(header.from);
        if count > MAX_ITERATIONS {
            fail(
                &mut w,
                &mut errors,
                format!("declaration loop runs {count} times, more than {MAX_ITERATIONS}"),
                "split the range into smaller loops or generate fewer declarations",
            );
            i = last_body + 1;
            continue;
        }
        let body = &lines[i + 1..=last_body];
        let strip = body
            .iter()
            .find(|(_, l)| !is_blank(l))
            .map_or(0, |(_, l)| indentation(l));
        let placeholder = format!("{{{}}}", header.var);
        let mut v = header.from;
        while v < header.to {
            let value = v.to_string();
            for &(ls, l) in body {
                let cut = indentation(l).min(strip);
                w.line_with(&l[cut..], ls + cut, &placeholder, &value);
                w.copy("\n", ls + l.len());
            }
            v += 1;
        }
        i = last_body + 1;
    }
    // `copy` maps the spaces of failed headers one to one onto the header.
    Pass {
        text: w.text,
        map: SourceMap {
            segments: w.segments,
        },
        errors,
        expanded,
    }
}

/// Expands the declaration loops of `text`.
///
/// Returns the expanded text (equal to `text` when there are no loops), the
/// map back to `text`, and errors (spans in the expanded text) for loops
/// that could not be expanded.
pub fn expand_decl_loops(text: &str) -> (String, SourceMap, Vec<SyntaxError>) {
    if !has_loop_header(text) {
        return (text.to_string(), SourceMap::default(), Vec::new());
    }
    let mut current = text.to_string();
    let mut map = SourceMap::default();
    let mut maps: Vec<SourceMap> = Vec::new();
    // Errors with their pass index and original header offset.
    let mut found: Vec<(SyntaxError, usize, u32)> = Vec::new();
    let mut passes = 0;
    loop {
        if passes == MAX_PASSES {
            if has_loop_header(&current) {
                let pos = line_of_first_header(&current);
                let end = current[pos..].find('\n').map_or(current.len(), |n| pos + n);
                found.push((
                    SyntaxError::new(
                        codes::INVALID_DECL_LOOP,
                        format!("declaration loops nested more than {MAX_PASSES} deep"),
                        Span::new(pos as u32, end as u32),
                    )
                    .with_label("still a loop after the last expansion pass")
                    .with_help("flatten the nesting of the declaration loops"),
                    maps.len(),
                    map.to_original(pos as u32),
                ));
            }
            break;
        }
        let pass = expand_once(&current);
        if !pass.expanded {
            break;
        }
        passes += 1;
        for (err, header_at) in pass.errors {
            let original = map.to_original(header_at);
            found.push((err, maps.len() + 1, original));
        }
        map = pass.map.compose(&map);
        maps.push(pass.map);
        current = pass.text;
    }
    // Carry each error's span forward to the final text; one per header.
    let mut errors: Vec<SyntaxError> = Vec::new();
    let mut seen: Vec<u32> = Vec::new();
    for (mut err, pass_index, original) in found {
        if seen.contains(&original) {
            continue;
        }
        seen.push(original);
        for later in maps.iter().skip(pass_index) {
            err.span = Span::new(later.forward(err.span.start), later.forward(err.span.end));
        }
        errors.push(err);
    }
    errors.sort_by_key(|e| e.span.start);
    (current, map, errors)
}

fn has_loop_header(text: &str) -> bool {
    lines(text).iter().any(|(_, l)| header(l).is_some())
}

fn line_of_first_header(text: &str) -> usize {
    lines(text)
        .iter()
        .find(|(_, l)| header(l).is_some())
        .map_or(0, |(s, _)| *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: &str) {
        let (out, map, errors) = expand_decl_loops(text);
        let mut rendered = out.clone();
        for e in &errors {
            let orig = map.span_to_original(e.span);
            rendered.push_str(&format!(
                "!{} {} @{:?}\n",
                e.code,
                e.message,
                &text[orig.range()]
            ));
        }
        assert_eq!(rendered, expected, "expanding {text:?}");
    }

    #[test]
    fn loops_expand_and_substitute() {
        check(
            "for z in 1..=2:\n    stream Hot{z} = R\n        .where(zone == {z})\nlet x = 1\n",
            "stream Hot1 = R\n    .where(zone == 1)\nstream Hot2 = R\n    .where(zone == 2)\nlet x = 1\n",
        );
        check(
            "for i in 0..2:\n  let a{i} = {i}\n",
            "let a0 = 0\nlet a1 = 1\n",
        );
    }

    #[test]
    fn nested_loops_expand_in_later_passes() {
        check(
            "for i in 0..2:\n    for j in 0..{i}:\n        let v{i}{j} = 1\n",
            "let v10 = 1\n",
        );
    }

    #[test]
    fn non_literal_for_lines_are_statements() {
        let text = "for x in xs:\n    print(x)\n";
        check(text, text);
        let text = "fn f():\n    for i in 0..3:\n        print(i)\n";
        check(text, text);
    }

    #[test]
    fn bad_loops_are_reported_once_at_the_header() {
        check(
            "for i in 0..20000:\n    let a{i} = 1\nlet b = 2\n",
            "                  \nlet b = 2\n!E0113 declaration loop runs 20000 times, more than 10000 @\"for i in 0..20000:\"\n",
        );
        check(
            "for i in 0..2:\nlet b = 2\n",
            "              \nlet b = 2\n!E0113 declaration loop has no body @\"for i in 0..2:\"\n",
        );
        check(
            "for i in 0..3:\n    for j in 0..99999:\n        let x = 1\n",
            "                  \n                  \n                  \n!E0113 declaration loop runs 99999 times, more than 10000 @\"for j in 0..99999:\"\n",
        );
    }

    #[test]
    fn source_map_points_into_the_loop_body() {
        let text = "let a = 0\nfor z in 1..=2:\n    stream S{z} = R\n";
        let (out, map, _) = expand_decl_loops(text);
        assert_eq!(out, "let a = 0\nstream S1 = R\nstream S2 = R\n");
        let second = out.rfind("stream").expect("two copies") as u32;
        assert_eq!(
            map.to_original(second),
            text.find("stream").expect("body") as u32
        );
        let value = out.rfind("S2").expect("S2") as u32 + 1;
        assert_eq!(
            map.to_original(value),
            text.find("{z}").expect("placeholder") as u32
        );
        assert_eq!(map.to_original(3), 3);
    }

    #[test]
    fn too_deep_nesting_is_reported() {
        let mut text = String::new();
        for d in 0..12 {
            text.push_str(&" ".repeat(d * 2));
            text.push_str(&format!("for v{d} in 0..1:\n"));
        }
        text.push_str(&" ".repeat(24));
        text.push_str("let x = 1\n");
        let (_, _, errors) = expand_decl_loops(&text);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].message.contains("nested more than 10"));
    }
}
