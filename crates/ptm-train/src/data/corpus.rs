//! Reading a text corpus: a `.txt` file, a `.jsonl` file (the `text` field of each line), or a
//! directory of those (sorted by name, so the order is the same everywhere).

use crate::error::{data, Result};
use std::path::{Path, PathBuf};

/// The documents under `path`. A `.txt` file is one document; a `.jsonl` file gives one per line.
pub fn read_texts(path: &Path) -> Result<Vec<String>> {
    if !path.exists() {
        return Err(data(path.display(), "does not exist"));
    }
    let files = if path.is_dir() {
        let mut files = vec![];
        collect(path, &mut files)?;
        files.sort();
        if files.is_empty() {
            return Err(data(path.display(), "holds no .txt or .jsonl files"));
        }
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut docs = vec![];
    for f in files {
        let text = std::fs::read(&f).map_err(|e| data(f.display(), e.to_string()))?;
        // Old corpora are Latin-1 in places; decode leniently rather than refuse the file.
        let text = String::from_utf8_lossy(&text).into_owned();
        if f.extension().is_some_and(|e| e == "jsonl") {
            for (i, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let v: serde_json::Value = serde_json::from_str(line)
                    .map_err(|e| data(format!("{}:{}", f.display(), i + 1), e.to_string()))?;
                let t = v.get("text").and_then(|t| t.as_str()).ok_or_else(|| {
                    data(
                        format!("{}:{}", f.display(), i + 1),
                        "no string field \"text\"",
                    )
                })?;
                docs.push(t.to_string());
            }
        } else {
            docs.push(text);
        }
    }
    Ok(docs)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| data(dir.display(), e.to_string()))?;
    for e in entries {
        let p = e.map_err(|e| data(dir.display(), e.to_string()))?.path();
        if p.is_dir() {
            collect(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "txt" || e == "jsonl") {
            out.push(p);
        }
    }
    Ok(())
}
