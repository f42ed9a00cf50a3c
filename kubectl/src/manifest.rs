//! Reading manifests: files, directories or stdin (`-`), multi-document YAML or JSON, and
//! `kind: List`, into plain JSON objects.

use anyhow::{bail, Context};
use serde::Deserialize;
use serde_json::Value;
use std::io::Read;
use std::path::Path;

/// One object from a manifest, with where it came from.
pub struct Doc {
    /// The file it came from (`-` for stdin).
    pub source: String,
    /// The object.
    pub object: Value,
}

fn parse(text: &str, source: &str) -> anyhow::Result<Vec<Doc>> {
    let mut out = Vec::new();
    for d in serde_yaml::Deserializer::from_str(text) {
        let v = Value::deserialize(d).with_context(|| format!("error parsing {source}"))?;
        match v {
            Value::Null => {}
            Value::Object(ref m) if m.get("kind").and_then(Value::as_str) == Some("List") => {
                for item in m
                    .get("items")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    out.push(Doc {
                        source: source.to_string(),
                        object: item.clone(),
                    });
                }
            }
            Value::Object(_) => out.push(Doc {
                source: source.to_string(),
                object: v,
            }),
            _ => bail!("error parsing {source}: a manifest document must be an object"),
        }
    }
    Ok(out)
}

/// Read every document from `paths` (files, directories of .yaml/.yml/.json, or `-`).
pub fn read(paths: &[String]) -> anyhow::Result<Vec<Doc>> {
    let mut docs = Vec::new();
    for p in paths {
        if p == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading stdin")?;
            docs.extend(parse(&s, "STDIN")?);
            continue;
        }
        let path = Path::new(p);
        if path.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(path)
                .with_context(|| format!("reading directory {p}"))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|e| {
                    matches!(
                        e.extension().and_then(|x| x.to_str()),
                        Some("yaml" | "yml" | "json")
                    )
                })
                .collect();
            entries.sort();
            for e in entries {
                let s = std::fs::read_to_string(&e)
                    .with_context(|| format!("reading {}", e.display()))?;
                docs.extend(parse(&s, &e.display().to_string())?);
            }
        } else {
            let s = std::fs::read_to_string(path)
                .with_context(|| format!("the path \"{p}\" does not exist"))?;
            docs.extend(parse(&s, p)?);
        }
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_and_lists() {
        let docs = parse(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\n{\"kind\": \"List\", \"items\": [{\"kind\": \"Pod\"}, {\"kind\": \"Pod\"}]}\n",
            "f.yaml",
        )
        .unwrap();
        assert_eq!(docs.len(), 3);
        assert!(parse("- 1\n- 2\n", "bad.yaml").is_err());
    }
}
