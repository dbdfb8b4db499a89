//! Finds the story tests that sections keep in their own crate (`modules/<crate>/e2e.rs`)
//! and declares them as modules of the end-to-end binary, so that a new section's test
//! needs no line outside its crate and the suite stays one binary.

use std::path::Path;

fn main() {
    let modules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../modules");
    println!("cargo:rerun-if-changed={}", modules.display());
    let mut found: Vec<(String, String)> = Vec::new();
    let entries = std::fs::read_dir(&modules).unwrap_or_else(|e| panic!("cannot read {}: {e}", modules.display()));
    for entry in entries.flatten() {
        let story = entry.path().join("e2e.rs");
        println!("cargo:rerun-if-changed={}", story.display());
        if story.is_file() {
            let name = entry.file_name().to_string_lossy().replace('-', "_");
            let path = story.canonicalize().unwrap_or(story).display().to_string();
            found.push((name, path));
        }
    }
    found.sort();
    let declarations: String = found.iter().map(|(name, path)| format!("#[path = {path:?}]\nmod {name};\n")).collect();
    let out = Path::new(&std::env::var("OUT_DIR").unwrap_or_else(|_| ".".to_owned())).join("sections.rs");
    std::fs::write(&out, declarations).unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}
