//! One Prometheus exposition from every pipeline's: each sample gains a `pipeline` label, and
//! each metric family is written once (with its HELP and TYPE) followed by the samples of
//! every pipeline, as the text format requires.

use std::collections::BTreeMap;

#[derive(Default)]
struct Family {
    help: Option<String>,
    kind: Option<String>,
    samples: Vec<String>,
}

/// Adds `pipeline="NAME"` to a sample line (`name{a="b"} 1` or `name 1`).
fn label_sample(line: &str, pipeline: &str) -> String {
    let escaped = pipeline
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    match (line.find('{'), line.find(' ')) {
        (Some(brace), Some(space)) if brace < space => {
            let (name, rest) = line.split_at(brace);
            let inner = &rest[1..];
            if inner.starts_with('}') {
                format!("{name}{{pipeline=\"{escaped}\"{inner}")
            } else {
                format!("{name}{{pipeline=\"{escaped}\",{inner}")
            }
        }
        (_, Some(space)) => {
            let (name, rest) = line.split_at(space);
            format!("{name}{{pipeline=\"{escaped}\"}}{rest}")
        }
        _ => line.to_string(),
    }
}

/// Merges `(pipeline, exposition text)` pairs into one exposition, families in the order
/// they first appear.
pub fn merge(parts: &[(String, String)]) -> String {
    let mut order: Vec<String> = Vec::new();
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for (pipeline, text) in parts {
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                current = name.to_string();
                let family = families.entry(current.clone()).or_insert_with(|| {
                    order.push(name.to_string());
                    Family::default()
                });
                family.help.get_or_insert_with(|| help.to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
                current = name.to_string();
                let family = families.entry(current.clone()).or_insert_with(|| {
                    order.push(name.to_string());
                    Family::default()
                });
                family.kind.get_or_insert_with(|| kind.to_string());
            } else if !line.is_empty() && !line.starts_with('#') {
                let name = line
                    .split(['{', ' '])
                    .next()
                    .unwrap_or_default()
                    .to_string();
                // Histogram series (`_bucket`, `_sum`, `_count`) belong to the family above.
                let key = if families.contains_key(&name) || current.is_empty() {
                    name
                } else {
                    current.clone()
                };
                let family = families.entry(key.clone()).or_insert_with(|| {
                    order.push(key.clone());
                    Family::default()
                });
                family.samples.push(label_sample(line, pipeline));
            }
        }
    }
    let mut out = String::new();
    for name in order {
        let Some(f) = families.get(&name) else {
            continue;
        };
        if let Some(help) = &f.help {
            out.push_str(&format!("# HELP {name} {help}\n"));
        }
        if let Some(kind) = &f.kind {
            out.push_str(&format!("# TYPE {name} {kind}\n"));
        }
        for s in &f.samples {
            out.push_str(s);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_written_once_with_every_pipelines_samples() {
        let a = "# HELP varpulis_x X.\n# TYPE varpulis_x counter\nvarpulis_x 1\n# HELP varpulis_y Y.\n# TYPE varpulis_y counter\nvarpulis_y{stream=\"S\"} 2\n";
        let b = "# HELP varpulis_x X.\n# TYPE varpulis_x counter\nvarpulis_x 3\n";
        let text = merge(&[("a".into(), a.into()), ("b\"q".into(), b.into())]);
        assert_eq!(
            text,
            "# HELP varpulis_x X.\n# TYPE varpulis_x counter\nvarpulis_x{pipeline=\"a\"} 1\nvarpulis_x{pipeline=\"b\\\"q\"} 3\n# HELP varpulis_y Y.\n# TYPE varpulis_y counter\nvarpulis_y{pipeline=\"a\",stream=\"S\"} 2\n"
        );
    }
}
