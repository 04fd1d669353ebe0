//! Terminal rendering with ariadne: the only module that uses ariadne.
//!
//! Each report's header carries the code and message; the source box shows
//! `file:line:col` of the primary label. Colour is optional so snapshot tests
//! can render plain text.

use ariadne::{Color, Config, IndexType, Label, Report, ReportKind};

use crate::diagnostic::{Diagnostic, Severity};

/// Renders `diags` of the file `path` with contents `text`.
pub fn render(path: &str, text: &str, diags: &[Diagnostic], color: bool) -> String {
    let mut out = Vec::new();
    for d in diags {
        render_one(path, text, d, color, &mut out);
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn clamp(text: &str, span: varpulis_syntax::Span) -> std::ops::Range<usize> {
    let start = (span.start as usize).min(text.len());
    let end = (span.end as usize).clamp(start, text.len());
    start..end
}

fn render_one(path: &str, text: &str, d: &Diagnostic, color: bool, out: &mut Vec<u8>) {
    let kind = match d.severity {
        Severity::Error => ReportKind::Error,
        Severity::Warning => ReportKind::Warning,
        Severity::Note => ReportKind::Advice,
    };
    let (primary_color, secondary_color) = match d.severity {
        Severity::Error => (Color::Red, Color::Blue),
        Severity::Warning => (Color::Yellow, Color::Blue),
        Severity::Note => (Color::Cyan, Color::Blue),
    };
    let id = path.to_string();
    let config = Config::default()
        .with_color(color)
        .with_index_type(IndexType::Byte);
    let mut report = Report::build(kind, (id.clone(), clamp(text, d.primary.span)))
        .with_config(config)
        .with_code(d.code)
        .with_message(&d.message);
    let mut primary = Label::new((id.clone(), clamp(text, d.primary.span))).with_order(0);
    if !d.primary.message.is_empty() {
        primary = primary.with_message(&d.primary.message);
    }
    if color {
        primary = primary.with_color(primary_color);
    }
    report.add_label(primary);
    for (i, l) in d.secondary.iter().enumerate() {
        let mut label = Label::new((id.clone(), clamp(text, l.span))).with_order(i as i32 + 1);
        if !l.message.is_empty() {
            label = label.with_message(&l.message);
        }
        if color {
            label = label.with_color(secondary_color);
        }
        report.add_label(label);
    }
    for n in &d.notes {
        report.add_note(n);
    }
    if let Some(h) = &d.help {
        report.add_help(h);
    }
    // Writing into a Vec cannot fail; an error would only lose this report.
    let _ = report
        .finish()
        .write(ariadne::sources(vec![(id, text)]), &mut *out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes;
    use varpulis_syntax::Span;

    fn check(text: &str, d: Diagnostic) -> String {
        render("rules.vpl", text, &[d], false)
    }

    #[test]
    fn header_shows_code_and_position() {
        let out = check(
            "stream S = R\n    .where(x > 1)\n",
            Diagnostic::new(
                codes::UNKNOWN_FIELD,
                "unknown field `x` on `R`",
                Span::new(24, 25),
            )
            .with_label("here")
            .with_help("did you mean `y`?"),
        );
        assert!(out.contains("[E0202]"), "{out}");
        assert!(out.contains("rules.vpl:2:12"), "{out}");
        assert!(out.contains("did you mean `y`?"), "{out}");
        assert!(!out.contains('\u{1b}'), "no colour codes: {out}");
    }
}
