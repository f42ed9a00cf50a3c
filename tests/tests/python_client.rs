//! The official Python client (`pip install kubernetes`) against a real cluster: every object
//! we return must pass its strict models. The script is `tests/python/client_check.py`.

use coxswain_testkit::{stderr, stdout, TestCluster};

#[test]
fn the_official_python_client_works_unchanged() {
    let c = TestCluster::start(2);
    let script = format!("{}/python/client_check.py", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(&c.server)
        .output()
        .expect("python3 runs");
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "the Python client check failed (is `pip install kubernetes` done? .ci/run does it):\n{text}\n{}",
        stderr(&out)
    );
    assert!(text.contains(" passed, 0 failed"), "{text}");
}
