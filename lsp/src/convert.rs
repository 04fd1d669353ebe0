//! Compiler results → LSP types. Protocol knowledge stays here; the
//! compiler answers in byte spans and plain structs.

use std::str::FromStr;

use tower_lsp_server::ls_types::{
    self as lsp, CodeDescription, CompletionItemKind, DiagnosticRelatedInformation,
    DiagnosticSeverity, Documentation, FoldingRangeKind, Location, MarkupContent, MarkupKind,
    NumberOrString, SemanticToken, SemanticTokenModifier, SemanticTokenType, SemanticTokensLegend,
    Uri,
};
use varpulis_compiler::ide::{
    CompletionKind, Fold, FoldKind, Highlight, HighlightClass, OutlineItem, SymbolKind,
};
use varpulis_compiler::{Diagnostic, Severity};

use crate::position::Lines;

/// Where each error code is explained.
pub const DOCS_BASE: &str = "https://varpulis.dev/errors/";

/// A compiler diagnostic as an LSP diagnostic: the primary label is the
/// range, secondary labels are related information, notes and help follow
/// the message, the code links to its explanation.
pub fn diagnostic(uri: &Uri, lines: &Lines<'_>, d: &Diagnostic) -> lsp::Diagnostic {
    let mut message = d.message.clone();
    if !d.primary.message.is_empty() {
        message.push_str(&format!("\n{}", d.primary.message));
    }
    for n in &d.notes {
        message.push_str(&format!("\nnote: {n}"));
    }
    if let Some(h) = &d.help {
        message.push_str(&format!("\nhelp: {h}"));
    }
    let related: Vec<DiagnosticRelatedInformation> = d
        .secondary
        .iter()
        .map(|l| DiagnosticRelatedInformation {
            location: Location::new(uri.clone(), lines.range(l.span)),
            message: if l.message.is_empty() {
                "related".to_string()
            } else {
                l.message.clone()
            },
        })
        .collect();
    lsp::Diagnostic {
        range: lines.range(d.primary.span),
        severity: Some(match d.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
            Severity::Note => DiagnosticSeverity::INFORMATION,
        }),
        code: Some(NumberOrString::String(d.code.to_string())),
        code_description: Uri::from_str(&format!("{DOCS_BASE}{}", d.code))
            .ok()
            .map(|href| CodeDescription { href }),
        source: Some("varpulis".to_string()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        tags: None,
        data: None,
    }
}

/// Markdown content.
pub fn markdown(value: String) -> MarkupContent {
    MarkupContent {
        kind: MarkupKind::Markdown,
        value,
    }
}

/// Markdown documentation.
pub fn documentation(value: String) -> Documentation {
    Documentation::MarkupContent(markdown(value))
}

/// The completion icon of a candidate.
pub fn completion_kind(k: CompletionKind) -> CompletionItemKind {
    match k {
        CompletionKind::Operator => CompletionItemKind::METHOD,
        CompletionKind::Field => CompletionItemKind::FIELD,
        CompletionKind::Alias | CompletionKind::Local => CompletionItemKind::VARIABLE,
        CompletionKind::Decl(s) => match s {
            SymbolKind::Event => CompletionItemKind::STRUCT,
            SymbolKind::Function => CompletionItemKind::FUNCTION,
            SymbolKind::Constant => CompletionItemKind::CONSTANT,
            SymbolKind::Connector => CompletionItemKind::INTERFACE,
            SymbolKind::Context => CompletionItemKind::MODULE,
            SymbolKind::Type => CompletionItemKind::TYPE_PARAMETER,
            _ => CompletionItemKind::VARIABLE,
        },
        CompletionKind::Builtin | CompletionKind::Aggregate => CompletionItemKind::FUNCTION,
        CompletionKind::Type => CompletionItemKind::TYPE_PARAMETER,
        CompletionKind::Keyword => CompletionItemKind::KEYWORD,
        CompletionKind::Snippet => CompletionItemKind::SNIPPET,
    }
}

/// The outline icon of a declaration.
pub fn symbol_kind(k: SymbolKind) -> lsp::SymbolKind {
    match k {
        SymbolKind::Event => lsp::SymbolKind::STRUCT,
        SymbolKind::Stream | SymbolKind::Pattern => lsp::SymbolKind::EVENT,
        SymbolKind::Function => lsp::SymbolKind::FUNCTION,
        SymbolKind::Variable | SymbolKind::Local | SymbolKind::Alias => lsp::SymbolKind::VARIABLE,
        SymbolKind::Constant => lsp::SymbolKind::CONSTANT,
        SymbolKind::Connector => lsp::SymbolKind::INTERFACE,
        SymbolKind::Context => lsp::SymbolKind::NAMESPACE,
        SymbolKind::Type => lsp::SymbolKind::TYPE_PARAMETER,
        SymbolKind::Field => lsp::SymbolKind::FIELD,
        SymbolKind::Builtin | SymbolKind::Operator => lsp::SymbolKind::METHOD,
        SymbolKind::Keyword => lsp::SymbolKind::KEY,
    }
}

/// A nested document symbol.
#[allow(deprecated)] // `deprecated` is a required field of the protocol type.
pub fn document_symbol(lines: &Lines<'_>, o: &OutlineItem) -> lsp::DocumentSymbol {
    let children: Vec<lsp::DocumentSymbol> = o
        .children
        .iter()
        .map(|c| document_symbol(lines, c))
        .collect();
    lsp::DocumentSymbol {
        name: o.name.clone(),
        detail: o.detail.clone(),
        kind: symbol_kind(o.kind),
        tags: None,
        deprecated: None,
        range: lines.range(o.span),
        selection_range: lines.range(o.name_span),
        children: (!children.is_empty()).then_some(children),
    }
}

/// A folding range.
pub fn folding_range(lines: &Lines<'_>, f: &Fold) -> lsp::FoldingRange {
    let r = lines.range(f.span);
    lsp::FoldingRange {
        start_line: r.start.line,
        start_character: None,
        end_line: r.end.line,
        end_character: None,
        kind: Some(match f.kind {
            FoldKind::Region => FoldingRangeKind::Region,
            FoldKind::Comment => FoldingRangeKind::Comment,
        }),
        collapsed_text: None,
    }
}

/// Semantic token types, indexed by [`token_type`].
const TOKEN_TYPES: &[SemanticTokenType] = &[
    SemanticTokenType::STRUCT,
    SemanticTokenType::VARIABLE,
    SemanticTokenType::FUNCTION,
    SemanticTokenType::INTERFACE,
    SemanticTokenType::NAMESPACE,
    SemanticTokenType::TYPE,
    SemanticTokenType::PROPERTY,
    SemanticTokenType::PARAMETER,
    SemanticTokenType::METHOD,
    SemanticTokenType::KEYWORD,
    SemanticTokenType::COMMENT,
    SemanticTokenType::STRING,
    SemanticTokenType::NUMBER,
    SemanticTokenType::OPERATOR,
    SemanticTokenType::EVENT,
];

/// Semantic token modifiers (bit `i` = entry `i`).
const TOKEN_MODIFIERS: &[SemanticTokenModifier] = &[
    SemanticTokenModifier::DECLARATION,
    SemanticTokenModifier::READONLY,
    SemanticTokenModifier::DEFAULT_LIBRARY,
];

/// The legend announced in the server capabilities.
pub fn legend() -> SemanticTokensLegend {
    SemanticTokensLegend {
        token_types: TOKEN_TYPES.to_vec(),
        token_modifiers: TOKEN_MODIFIERS.to_vec(),
    }
}

/// The legend index and modifier bits of a highlight.
fn token_type(h: &Highlight) -> (u32, u32) {
    let decl = u32::from(h.definition);
    match h.class {
        HighlightClass::Symbol(k) => match k {
            SymbolKind::Event => (0, decl),
            SymbolKind::Stream | SymbolKind::Pattern => (14, decl),
            SymbolKind::Variable => (1, decl),
            SymbolKind::Local => (1, decl),
            SymbolKind::Constant => (1, decl | 2),
            SymbolKind::Function => (2, decl),
            SymbolKind::Builtin => (2, 4),
            SymbolKind::Connector => (3, decl),
            SymbolKind::Context => (4, decl),
            SymbolKind::Type => (5, decl),
            SymbolKind::Field => (6, decl),
            SymbolKind::Alias => (7, decl),
            SymbolKind::Operator => (8, 4),
            SymbolKind::Keyword => (9, 0),
        },
        HighlightClass::Comment => (10, 0),
        HighlightClass::String => (11, 0),
        HighlightClass::Number => (12, 0),
        HighlightClass::Operator => (13, 0),
    }
}

/// Encodes highlights as LSP relative tokens; multi-line tokens (block
/// comments) are split per line, as clients without multiline support need.
pub fn semantic_tokens(text: &str, lines: &Lines<'_>, hs: &[Highlight]) -> Vec<SemanticToken> {
    let mut out = Vec::with_capacity(hs.len());
    let (mut last_line, mut last_col) = (0u32, 0u32);
    for h in hs {
        let (ty, mods) = token_type(h);
        let mut start = h.span.start;
        let end = h.span.end;
        while start < end {
            let line_end = text
                .get(start as usize..end as usize)
                .and_then(|s| s.find('\n'))
                .map_or(end, |i| start + i as u32);
            let a = lines.position(start);
            let b = lines.position(line_end);
            if b.character > a.character {
                let delta_line = a.line - last_line;
                let delta_start = if delta_line == 0 {
                    a.character - last_col
                } else {
                    a.character
                };
                out.push(SemanticToken {
                    delta_line,
                    delta_start,
                    length: b.character - a.character,
                    token_type: ty,
                    token_modifiers_bitset: mods,
                });
                last_line = a.line;
                last_col = a.character;
            }
            start = line_end + 1;
        }
    }
    out
}
