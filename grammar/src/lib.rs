//! tree-sitter-vpl (placeholder until the grammar lands)
