//! Records the commit the binary is built from, for `--version` and
//! `sse_kafka_build_info`: `SSE_KAFKA_COMMIT` when the build sets it (a
//! package built outside a checkout), else the checkout's `HEAD`, else
//! `unknown`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=SSE_KAFKA_COMMIT");
    let commit = std::env::var("SSE_KAFKA_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(from_git)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=SSE_KAFKA_COMMIT={commit}");
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn from_git() -> Option<String> {
    let dir = git(&["rev-parse", "--git-dir"])?;
    // A checkout moves HEAD; a commit moves the branch HEAD names (its
    // file, or packed-refs once git has packed it).
    println!("cargo:rerun-if-changed={dir}/HEAD");
    let branch = git(&["symbolic-ref", "-q", "HEAD"]).map(|b| format!("{dir}/{b}"));
    match branch {
        Some(file) if std::path::Path::new(&file).exists() => {
            println!("cargo:rerun-if-changed={file}");
        }
        _ => println!("cargo:rerun-if-changed={dir}/packed-refs"),
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}
