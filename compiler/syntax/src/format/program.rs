//! The whole file: items, declaration loops and the comments between them.
//!
//! A *group* is a run of own-line comments plus the item or loop they
//! precede. Groups are separated by one blank line when either neighbour
//! spans several lines or the source had a blank line there; consecutive
//! one-line declarations keep the author's choice. Inside a group, blank
//! lines of the source are kept (runs collapse to one).

use super::items::item_span;
use super::loops;
use super::printer::Fmt;
use crate::span::Span;

/// A top-level piece of the output.
enum Unit<'p> {
    Item(&'p crate::ast::ItemNode, Span),
    Loop(loops::Loop),
}

impl Unit<'_> {
    fn start(&self) -> u32 {
        match self {
            Unit::Item(_, span) => span.start,
            Unit::Loop(l) => l.range.start as u32,
        }
    }
}

/// Prints `parse` (the parse of `orig`, free of errors) canonically.
pub(super) fn print(orig: &str, parse: &crate::Parse) -> String {
    let mut f = Fmt::new(orig, &parse.text);
    let mut loops = loops::find(orig);
    let loop_of = |loops: &[loops::Loop], pos: u32| {
        loops
            .iter()
            .position(|l| l.range.contains(&(pos as usize)) || l.range.start == pos as usize)
    };
    let mut units: Vec<Unit<'_>> = Vec::new();
    for node in &parse.items {
        let span = item_span(&node.item);
        let exp_start = node.offset + span.start;
        let orig_start = parse.source_map.to_original(exp_start);
        if parse.source_map.is_identity() {
            // No loops: nothing to skip.
        } else if let Some(k) = loop_of(&loops, orig_start) {
            // An item of the loop's last expansion may go on below the
            // loop, in column-0 lines the expander copied as they are
            // (`.where(...)` under the loop continues only the last copy).
            // Those lines are kept verbatim after the loop.
            let exp_end = node.offset + span.end;
            if exp_end > exp_start {
                let orig_end = parse.source_map.to_original(exp_end - 1) as usize + 1;
                // To the end of its line, so a trailing comment stays on it.
                let line_end = orig
                    .get(orig_end..)
                    .and_then(|rest| rest.find('\n'))
                    .map_or(orig.len(), |n| orig_end + n);
                loops[k].extend_to(line_end);
            }
            continue;
        }
        // Outside declaration loops the text is copied verbatim, so the
        // whole item moves by the same amount.
        let end = orig_start + span.len();
        units.push(Unit::Item(node, Span::new(orig_start, end)));
    }
    units.extend(loops.into_iter().map(Unit::Loop));
    units.sort_by_key(Unit::start);

    let mut prev_multi = false;
    for unit in &units {
        let start = unit.start();
        // The comments above the unit.
        let first_comment = f.next;
        while f.comments.get(f.next).is_some_and(|c| c.start < start) {
            f.next += 1;
        }
        let leading: Vec<Span> = f.comments[first_comment..f.next].to_vec();
        let saved = std::mem::take(&mut f.out);
        match unit {
            Unit::Item(node, abs) => {
                let exp_start = node.offset + item_span(&node.item).start;
                f.base = node.offset;
                f.shift = i64::from(abs.start) - i64::from(exp_start);
                f.item(&node.item);
            }
            Unit::Loop(l) => {
                f.out.push_str(&l.render(orig));
                while f
                    .comments
                    .get(f.next)
                    .is_some_and(|c| (c.start as usize) < l.end())
                {
                    f.next += 1;
                }
            }
        }
        let body = std::mem::replace(&mut f.out, saved);
        let multi = body.trim_end().contains('\n');
        let group_start = leading.first().map_or(start, |c| c.start);
        if f.blank_before(group_start) || prev_multi || multi {
            f.blank();
        }
        for (i, c) in leading.iter().enumerate() {
            if i > 0 && f.blank_before(c.start) {
                f.blank();
            }
            let text = orig.get(c.range()).unwrap_or("").trim_end();
            f.line(0, text, None);
        }
        if !leading.is_empty() && f.blank_before(start) {
            f.blank();
        }
        f.out.push_str(&body);
        f.block_start = false;
        prev_multi = multi;
    }
    // Comments after the last declaration.
    if let Some(&c) = f.comments.get(f.next) {
        if f.blank_before(c.start) || prev_multi {
            f.blank();
        }
        f.flush(u32::MAX, 0, true);
    }
    f.out
}
