//! The tests' independent Kafka client: Python `confluent-kafka` (bundled
//! librdkafka), run through the scripts in `tests/clients/`.

use super::Broker;

/// The Python that has confluent-kafka: `$SSE_KAFKA_PYTHON` (set by
/// examples/test.sh), else the venv that script makes, else `python3`.
fn python() -> String {
    std::env::var("SSE_KAFKA_PYTHON").unwrap_or_else(|_| {
        let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/target/python/bin/python3");
        if std::path::Path::new(venv).exists() {
            venv.to_owned()
        } else {
            "python3".to_owned()
        }
    })
}

/// `tests/clients/<script>` with `args`, run by the Python that has the
/// test clients.
fn client_command(script: &str, args: &[&str]) -> std::process::Command {
    let path = format!("{}/tests/clients/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut command = std::process::Command::new(python());
    command.arg(path).args(args);
    command
}

/// Runs `tests/clients/<script>` with the Python that has confluent-kafka,
/// `stdin` on its standard input; returns its output lines.
pub fn run_python_client(script: &str, args: &[&str], stdin: &str) -> Vec<String> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = client_command(script, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("run {script} (examples/test.sh installs confluent-kafka): {e}")
        });
    // Written from another thread, so a client that answers as it reads
    // never blocks on a full pipe.
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_owned();
    let writer = std::thread::spawn(move || input.write_all(stdin.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Produces `records` (JSON objects as `tests/clients/produce_records.py`
/// reads them) with Python confluent-kafka, one at a time; returns the
/// offset of each.
pub fn produce_with_confluent_records(
    broker: &Broker,
    topic: &str,
    records: &[serde_json::Value],
) -> Vec<i64> {
    let input: String = records.iter().map(|r| format!("{r}\n")).collect();
    let addr = broker.addr.to_string();
    let offsets: Vec<i64> = run_python_client("produce_records.py", &[&addr, topic], &input)
        .iter()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            v["offset"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(offsets.len(), records.len());
    offsets
}

/// Starts `tests/clients/<script>` with the Python that has the test
/// clients, its output piped; the caller reads and ends it.
pub fn spawn_python_client(script: &str, args: &[&str]) -> std::process::Child {
    use std::process::Stdio;
    client_command(script, args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("run {script} (examples/test.sh installs its Python): {e}"))
}
