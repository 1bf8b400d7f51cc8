//! No error code is a string literal outside the [`ErrorCode`] enum.
//!
//! Rust: the service, the agent, the CLI and the apps name codes as `ErrorCode::Variant`; a
//! string literal equal to a code in their sources fails this test, unless it is one of the few
//! words listed below that belong to another vocabulary. TypeScript: the desktop UI's codes are
//! type-checked against the generated `ErrorCode` union by `tsc` (the UI build). Plain script: the
//! self-service page's script compares codes as text, so every code it compares must be one the
//! enum has.

use keywarden_protocol::ErrorCode;
use std::path::{Path, PathBuf};

/// Words that are codes and also something else, where they are that something else.
const OTHER_VOCABULARIES: &[(&str, &str, &str)] = &[
    (
        "crates/server/src/recovery/mod.rs",
        "cancelled",
        "a recovery's stored status",
    ),
    (
        "crates/server/src/mds.rs",
        "internal",
        "a FIDO metadata transport",
    ),
    (
        "crates/server/src/trust/verify.rs",
        "internal",
        "a browser's transport hint",
    ),
    (
        "crates/agent/src/error.rs",
        "cancelled",
        "the agent's own sentence",
    ),
    (
        "crates/cli/src/main.rs",
        "server_locked",
        "a key of the CLI's status JSON",
    ),
];

/// The checkout, as cargo names it when it runs the test (not where the binary was built: a
/// shared build cache may hand this binary to another clone).
fn root() -> PathBuf {
    let manifest =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    Path::new(&manifest).join("../..")
}

fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, ext, out);
        } else if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
}

/// The text between each pair of `quote` characters on a line (good enough for source lines
/// that hold codes; escaped quotes do not occur around codes).
fn literals(line: &str, quote: char) -> Vec<&str> {
    line.split(quote).skip(1).step_by(2).collect()
}

fn relative(p: &Path) -> String {
    let root = root().canonicalize().expect("root");
    let p = p.canonicalize().expect("file");
    p.strip_prefix(&root)
        .expect("inside the checkout")
        .to_string_lossy()
        .replace('\\', "/")
}

#[test]
fn rust_sources_name_codes_only_through_the_enum() {
    let root = root();
    let mut sources = Vec::new();
    for dir in std::fs::read_dir(root.join("crates"))
        .expect("crates")
        .flatten()
    {
        files(&dir.path().join("src"), "rs", &mut sources);
    }
    files(&root.join("src-tauri/src"), "rs", &mut sources);
    assert!(sources.len() > 50, "found only {} sources", sources.len());
    let mut stray = Vec::new();
    for file in &sources {
        let rel = relative(file);
        if rel.ends_with("protocol/src/error_code.rs") {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("read");
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for lit in literals(line, '"') {
                let is_code = ErrorCode::ALL.iter().any(|c| c.as_str() == lit);
                let elsewhere = OTHER_VOCABULARIES
                    .iter()
                    .any(|(f, w, _)| rel == *f && lit == *w);
                if is_code && !elsewhere {
                    stray.push(format!("{rel}:{}: \"{lit}\"", n + 1));
                }
            }
        }
    }
    assert!(
        stray.is_empty(),
        "error codes written as text; use ErrorCode::…:\n{}",
        stray.join("\n")
    );
}

#[test]
fn the_words_kept_as_text_are_still_there_and_still_codes() {
    // An entry that no longer matches anything is dead weight that could hide a future stray.
    for (file, word, why) in OTHER_VOCABULARIES {
        assert!(
            ErrorCode::ALL.iter().any(|c| c.as_str() == *word),
            "{word} ({why}) is not a code any more; drop it from the list"
        );
        let text = std::fs::read_to_string(root().join(file)).expect("read");
        assert!(
            text.contains(&format!("\"{word}\"")),
            "{file} no longer has \"{word}\" ({why}); drop it from the list"
        );
    }
}

#[test]
fn the_self_service_script_compares_only_codes_the_enum_has() {
    let mut scripts = Vec::new();
    files(&root().join("crates/server/src"), "js", &mut scripts);
    assert!(!scripts.is_empty(), "the self-service script is missing");
    let mut compared = 0;
    for file in &scripts {
        let text = std::fs::read_to_string(file).expect("read");
        for (n, line) in text.lines().enumerate() {
            if !line.contains("code ===") && !line.contains("code !==") {
                continue;
            }
            for lit in literals(line, '\'') {
                compared += 1;
                assert!(
                    ErrorCode::ALL.iter().any(|c| c.as_str() == lit),
                    "{}:{}: '{lit}' is not an ErrorCode",
                    relative(file),
                    n + 1
                );
            }
        }
    }
    assert!(
        compared > 0,
        "the script compares no code: the check reads nothing"
    );
}
