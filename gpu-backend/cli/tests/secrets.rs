//! Nothing secret is committed: no private key, no token, no live API key, no key file of a
//! data folder. Reads every file `git ls-files` lists (the repository as a clone gets it).

use std::path::Path;
use std::process::Command;

use regex::Regex;

/// `ncs_` keys that are committed on purpose: examples in tests and documents, none ever issued
/// (a real key is 16 random bytes; these are counting patterns and zeros).
const PLACEHOLDER_API_KEYS: [&str; 3] = [
    "ncs_00112233445566778899aabbccddeeff",
    "ncs_0123456789abcdef0123456789abcdef",
    "ncs_00000000000000000000000000000000",
];

/// Names of the key files `h200` writes into a data folder.
const KEY_FILES: [&str; 3] = ["token-signing.json", "edge-signing.json", "seal.json"];

fn committed_files() -> Vec<String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["ls-files", "-z"])
        .output()
        .expect("git is required for this test (it lists the committed files)");
    assert!(output.status.success(), "git ls-files failed");
    String::from_utf8(output.stdout)
        .expect("UTF-8 paths")
        .split('\0')
        .filter(|p| !p.is_empty())
        .map(|p| repo.join(p).to_string_lossy().into_owned())
        .collect()
}

#[test]
fn no_private_key_token_or_api_key_is_committed() {
    let patterns = [
        ("a private key", r"-----BEGIN ([A-Z]+ )?PRIVATE KEY-----"),
        (
            "a JSON Web Token",
            r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}",
        ),
        ("an API key", r"ncs_[0-9a-f]{32}"),
        ("an AWS access key", r"AKIA[0-9A-Z]{16}"),
        ("a GitHub token", r"gh[pousr]_[A-Za-z0-9]{36}"),
        ("a Slack token", r"xox[abprs]-[A-Za-z0-9-]{10,}"),
        ("a Stripe live key", r"sk_live_[A-Za-z0-9]{16,}"),
    ]
    .map(|(what, pattern)| (what, Regex::new(pattern).expect("a valid pattern")));
    let files = committed_files();
    assert!(files.len() > 100, "the repository lists its files");
    let mut findings = Vec::new();
    for path in &files {
        let name = Path::new(path)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if KEY_FILES.contains(&name) {
            findings.push(format!("{path}: a key file of a data folder"));
        }
        let Ok(bytes) = std::fs::read(path) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        for (what, pattern) in &patterns {
            for found in pattern.find_iter(&text) {
                if PLACEHOLDER_API_KEYS.contains(&found.as_str()) {
                    continue;
                }
                let line = text[..found.start()].lines().count();
                findings.push(format!("{path}:{line}: {what}"));
            }
        }
    }
    assert!(
        findings.is_empty(),
        "secrets committed:\n{}",
        findings.join("\n")
    );
}

#[test]
fn the_scan_finds_what_it_looks_for() {
    // The patterns above, built at run time so this file holds no match itself.
    let key = format!("-----BEGIN {} KEY-----", "PRIVATE");
    let api_key = format!("ncs_{}", "3f".repeat(16));
    let pattern = Regex::new(r"-----BEGIN ([A-Z]+ )?PRIVATE KEY-----|ncs_[0-9a-f]{32}").unwrap();
    assert!(pattern.is_match(&key));
    assert!(pattern.is_match(&api_key));
    assert!(!PLACEHOLDER_API_KEYS.contains(&api_key.as_str()));
}
