//! docs/migrating.md's runnable examples: every fenced block whose info string is
//! exactly `sh example` runs with `bash -c` against the dev server over real HTTP on
//! 127.0.0.1 (DynamoDB Local as in http.rs), with only BASE, CUSTOMER, AGENT and
//! ADMIN set for it (plus PATH and HOME, to find curl and python3). Each must exit 0.

use chat_testkit::{TestTable, repo_root, token};
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Fewest examples the guide must hold: one per seed document.
const MIN_EXAMPLES: usize = 5;
/// A script that runs longer than this is killed and fails.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// A runnable block of the guide: the section it is in, its first line and its text.
struct Example {
    section: String,
    line: usize,
    script: String,
}

/// The `sh example` blocks of a Markdown text, in order.
fn examples(markdown: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut section = String::from("(before any heading)");
    let mut open: Option<Example> = None;
    let mut fence: Option<&str> = None;
    for (i, line) in markdown.lines().enumerate() {
        match open.as_mut() {
            Some(example) => {
                if line.trim_end() == "```" {
                    out.extend(open.take());
                } else {
                    example.script.push_str(line);
                    example.script.push('\n');
                }
            }
            None => {
                let trimmed = line.trim_end();
                // Other fenced blocks are skipped whole (a `#` inside is no heading).
                if let Some(f) = fence {
                    if trimmed.trim_start().starts_with(f) {
                        fence = None;
                    }
                    continue;
                }
                if trimmed == "```sh example" {
                    open = Some(Example {
                        section: section.clone(),
                        line: i + 1,
                        script: String::new(),
                    });
                } else if trimmed.trim_start().starts_with("```") {
                    fence = Some("```");
                } else if trimmed.trim_start().starts_with("~~~") {
                    fence = Some("~~~");
                } else if trimmed.starts_with('#') {
                    section = trimmed.trim_start_matches('#').trim().to_owned();
                }
            }
        }
    }
    assert!(
        open.is_none(),
        "docs/migrating.md: an `sh example` block is not closed"
    );
    out
}

/// What a script did: its exit status (None when killed), stdout and stderr.
struct Run {
    status: Option<i32>,
    timed_out: bool,
    stdout: String,
    stderr: String,
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Runs `script` with `bash -c` and exactly the given variables (plus PATH and HOME).
fn run_script(script: &str, vars: &[(&str, String)]) -> Run {
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(script)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for name in ["PATH", "HOME", "PYENV_ROOT", "LANG"] {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    for (name, value) in vars {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("run bash");
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let started = Instant::now();
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait().expect("wait for bash") {
            break (status.code(), false);
        }
        if started.elapsed() > SCRIPT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break (None, true);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        status,
        timed_out,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_of_the_migration_guide_runs_against_the_dev_server() {
    let path = repo_root().join("docs/migrating.md");
    let markdown =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let examples = examples(&markdown);
    assert!(
        examples.len() >= MIN_EXAMPLES,
        "docs/migrating.md has {} `sh example` blocks; at least {MIN_EXAMPLES} (one per seed) are required",
        examples.len()
    );

    let table = TestTable::new().await;
    let port = devserver::test_app::serve_locally(&table).await;

    let vars: Arc<Vec<(&str, String)>> = Arc::new(vec![
        ("BASE", format!("http://127.0.0.1:{port}")),
        ("CUSTOMER", token("u-100", "acme", "customer")),
        ("AGENT", token("5", "acme", "agent")),
        ("ADMIN", token("a-9", "acme", "admin")),
    ]);

    let mut failures = Vec::new();
    for (n, example) in examples.iter().enumerate() {
        let script = example.script.clone();
        let env = vars.clone();
        let run = tokio::task::spawn_blocking(move || run_script(&script, &env))
            .await
            .expect("the script's thread");
        let label = format!(
            "example {} of {} ({}, docs/migrating.md line {})",
            n + 1,
            examples.len(),
            example.section,
            example.line
        );
        if run.status == Some(0) {
            println!("ok: {label}");
            continue;
        }
        let outcome = if run.timed_out {
            format!("killed after {SCRIPT_TIMEOUT:?}")
        } else {
            format!("exit status {:?}", run.status)
        };
        let report = format!(
            "FAILED: {label}: {outcome}\n--- script ---\n{}--- stdout ---\n{}\n--- stderr ---\n{}\n",
            example.script, run.stdout, run.stderr
        );
        println!("{report}");
        failures.push(report);
    }
    assert!(
        failures.is_empty(),
        "{} of {} examples failed:\n{}",
        failures.len(),
        examples.len(),
        failures.join("\n")
    );
}

#[test]
fn only_sh_example_blocks_are_examples() {
    let md = "# A\n```sh\necho no\n```\n## B\n```sh example\necho yes\n# not a heading\n```\n\
              ```\n# not a heading either\n```\n### C\n```sh example\ntrue\n```\n";
    let found = examples(md);
    assert_eq!(found.len(), 2);
    assert_eq!((found[0].section.as_str(), found[0].line), ("B", 6));
    assert_eq!(found[0].script, "echo yes\n# not a heading\n");
    assert_eq!(found[1].section, "C");
}
