//! A syntax error inside a block keeps the enclosing declaration recognisable,
//! so editors still highlight and fold it. (Recovery is best effort: VPL has
//! no reserved words, so a declaration keyword inside an error region can
//! still be read as an identifier.)

use tree_sitter::Parser;

fn top_level_kinds(source: &str) -> Vec<String> {
    let mut parser = Parser::new();
    parser
        .set_language(&tree_sitter_vpl::language())
        .expect("the VPL grammar matches the tree-sitter runtime ABI");
    let tree = parser
        .parse(source, None)
        .expect("parsing without a timeout or cancellation always returns a tree");
    let root = tree.root_node();
    let mut cursor = root.walk();
    root.named_children(&mut cursor)
        .map(|node| node.kind().to_string())
        .collect()
}

#[test]
fn an_error_in_a_function_body_leaves_a_function_declaration() {
    let source = "\
fn f(x: int) -> int:
    let y = x +
    if y > 1:
        return $y
    y

stream T = Reading.emit(ok: true)
";
    let kinds = top_level_kinds(source);
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("function_declaration"),
        "{kinds:?}"
    );
}
